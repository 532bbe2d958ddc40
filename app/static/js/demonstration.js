/* The demonstration view of /label: the conversation, a markdown editor with a live preview, "start from a sampled
   output" when the task offers some, a draft kept in this browser, submit (then the next task) and revising one's
   own demonstrations within the window. ranking.js serves the tasks, the lease, skip and the status line, and hands
   a demonstration task here (init gives the hooks). Text reaches the page as textContent or sanitised markdown. */
(function () {
  "use strict";
  const root = document.getElementById("ranker");
  if (!root || !document.getElementById("demo-task")) return;
  const $ = (id) => document.getElementById(id);
  const MD = window.ranklabMarkdown;
  const CONV = window.ranklabConversation;
  const LABELS = "ABCDEFGHI";
  const DRAFT_PREFIX = "ranklab-draft-"; // ranking.js drops stranded drafts of either kind under this prefix
  let hooks = null; // {api, next, sayBefore, setStatus, sessionLost, renew}
  let task = null; // the served task (with key, started; revisionId when correcting a submitted demonstration)
  let busy = false;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function draftKey() { return DRAFT_PREFIX + task.assignment_id; }
  function source() {
    const chosen = document.querySelector('input[name="demo-source"]:checked');
    return chosen && chosen.value ? Number(chosen.value) : null;
  }
  function textOf(id) { const c = (task.completions || []).find((x) => x.id === id); return c ? c.text : null; }

  function saveDraft() {
    if (!task || task.revisionId) return;
    const content = $("demo-text").value;
    try {
      if (!content && source() === null) localStorage.removeItem(draftKey());
      else localStorage.setItem(draftKey(), JSON.stringify({ type: "demonstration", content, source_completion_id: source(),
        key: task.key, saved_at: Date.now(), labeler: root.dataset.user }));
    } catch (e) { /* storage full or off: no draft */ }
  }
  function dropDraft() { if (task && !task.revisionId) { try { localStorage.removeItem(draftKey()); } catch (e) { /* none */ } } }
  function restoreDraft() {
    let draft = null;
    try { draft = JSON.parse(localStorage.getItem(draftKey()) || "null"); } catch (e) { draft = null; }
    if (!draft || draft.type !== "demonstration") return false;
    $("demo-text").value = draft.content || "";
    pickSource(draft.source_completion_id);
    if (draft.key) task.key = draft.key; // a retried submit is a replay, never a second demonstration
    return true;
  }

  function pickSource(id) {
    for (const radio of document.querySelectorAll('input[name="demo-source"]')) radio.checked = radio.value === (id ? String(id) : "");
  }

  function preview() { MD.preview($("demo-preview"), $("demo-text").value || ""); }

  function buildSources(completions) {
    const list = $("demo-source-list");
    list.replaceChildren();
    const scratch = el("label", { class: "inline" });
    scratch.append(el("input", { type: "radio", name: "demo-source", value: "", checked: "" }), document.createTextNode(" Write from scratch"));
    list.append(scratch);
    completions.forEach((c, i) => {
      const lab = el("label", { class: "inline" });
      lab.append(el("input", { type: "radio", name: "demo-source", value: String(c.id) }),
                 document.createTextNode(" Start from output " + LABELS[i]));
      list.append(lab, el("div", { class: "demo-source-text muted" }, c.text));
    });
    $("demo-sources").hidden = completions.length === 0;
  }

  // Choosing an output puts its text in the editor, unless the labeler has written something of their own there.
  function onSource(e) {
    if (!e.target.matches('input[name="demo-source"]')) return;
    const now = $("demo-text").value;
    const own = now.trim() && !(task.completions || []).some((c) => c.text === now);
    const id = source();
    if (id !== null && !own) { $("demo-text").value = textOf(id); preview(); }
    else if (id !== null) hooks.setStatus("Your text was kept (it is recorded as a rewrite of output " +
      LABELS[task.completions.findIndex((c) => c.id === id)] + "); clear the editor to start from that output's text.");
    saveDraft();
  }

  /** Show a demonstration task (or, with `revision`, one's submitted demonstration to correct). */
  function show(served, revision) {
    task = served;
    if (revision) task.source_completion_id = revision.source_completion_id; // a correction keeps what it rewrote
    $("demo-title").textContent = revision ? "Correct your demonstration" : "Write the assistant's next answer";
    CONV.render($("demo-conversation"), served.prompt.messages, MD);
    buildSources(revision ? [] : served.completions || []);
    $("demo-text").value = revision ? revision.content : "";
    $("demo-submit").textContent = revision ? "Save the correction (Ctrl+Enter)" : "Submit and next (Ctrl+Enter)";
    $("demo-cancel").hidden = !revision;
    const back = revision ? false : restoreDraft();
    preview();
    $("demo-task").hidden = false;
    if (back) hooks.setStatus("Your unsent answer to this task is back.");
  }

  function hide() { $("demo-task").hidden = true; task = null; }

  async function submit() {
    if (!task || busy) return;
    const content = $("demo-text").value;
    if (!content.trim()) { hooks.setStatus("Write the assistant's answer before submitting.", true); return; }
    busy = true;
    try {
      if (task.revisionId) { await saveRevision(content); return; }
      const url = root.dataset.demoSubmitUrl.replace("{id}", String(task.assignment_id));
      const body = { content, source_completion_id: source(), idempotency_key: task.key };
      let { status, data } = await hooks.api("POST", url, body);
      if (status === 410) {
        const back = await hooks.renew();
        if (back && back.status === 200) ({ status, data } = await hooks.api("POST", url, body));
      }
      if (status === 201 || status === 200) {
        const written = data && data.screening_demonstrations_written, counter = $("screening-demos-done");
        if (typeof written === "number" && counter) {  // the screening card's "Demonstrations: n of m written"
          counter.textContent = String(Math.min(written, Number(counter.dataset.required)));
        }
        dropDraft();
        loadHistory();
        await hooks.next();
        hooks.sayBefore("Demonstration saved. " + (hooks.hasTask() ? "Here is the next task." : "Nothing else to do right now."));
      } else if (status === 401) { saveDraft(); hooks.sessionLost(); }
      else { hooks.setStatus((data && data.detail) || "could not save (" + status + ")", true); }
    } catch (e) {
      hooks.setStatus("Network problem; your answer is still here, submit again to retry.", true);
    } finally { busy = false; }
  }

  async function saveRevision(content) {
    const url = root.dataset.demoReviseUrl.replace("{id}", String(task.revisionId));
    const { status, data } = await hooks.api("PUT", url, { content, source_completion_id: task.source_completion_id || null });
    if (status !== 200) { hooks.setStatus((data && data.detail) || "could not save the correction (" + status + ")", true); return; }
    loadHistory();
    await hooks.next();
    hooks.sayBefore("Correction saved.");
  }

  // The labeler's recent demonstrations: review status, and a Revise button while the window is open.
  async function loadHistory() {
    const { status, data } = await hooks.api("GET", root.dataset.demoHistoryUrl);
    if (status !== 200) return;
    const items = data.map((d) => {
      const li = el("li", { "data-id": String(d.id) });
      li.append(el("span", { class: "history-prompt" }, d.prompt_excerpt), document.createTextNode(" "));
      const said = d.status === "rejected" && d.review_reason ? "rejected: " + d.review_reason : d.status;
      li.append(el("span", { class: "muted small" }, new Date(d.created_at).toLocaleTimeString() + " · " + said));
      if (d.revisable_until) {
        const button = el("button", { type: "button", class: "revise-demo" }, "Revise (until " +
          new Date(d.revisable_until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ")");
        button.addEventListener("click", () => hooks.revise(d));
        li.append(document.createTextNode(" "), button);
      }
      return li;
    });
    $("demo-history-list").replaceChildren(...items);
    $("demo-history").hidden = items.length === 0;
  }

  function init(given) {
    hooks = given;
    $("demo-text").addEventListener("input", () => { preview(); saveDraft(); });
    $("demo-text").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
    });
    $("demo-sources").addEventListener("change", onSource);
    $("demo-submit").addEventListener("click", submit);
    $("demo-cancel").addEventListener("click", () => { hooks.setStatus(""); hooks.next(); });
    loadHistory();
  }

  window.ranklabDemonstration = { init, show, hide, dropDraft };
})();
