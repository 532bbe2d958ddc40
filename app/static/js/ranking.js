/* The ranking page: fetch a task, rank by drag-and-drop or keyboard, submit, fetch the next.
   Task text goes into the page with textContent, or as sanitised markdown through markdown.js, never raw. */
(function () {
  "use strict";
  const root = document.getElementById("ranker");
  if (!root) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const FLAGS = JSON.parse(root.dataset.flags);
  const LABELS = "ABCDEFGHI";
  const $ = (id) => document.getElementById(id);
  const MD = window.ranklabMarkdown;
  const DEMO = window.ranklabDemonstration; // the demonstration view (demonstration.js)
  function textBox(text) { const node = el("div", { class: "output-text" }); MD.show(node, text); return node; }
  let current = null; // {assignment_id, prompt, completions, expires_at, key, started}
  let lastSlot = null; // slot index where an output was last placed (for "tie with previous")
  let busy = false;
  // The lease is renewed while the page is in use (a key, a click, a touch, scrolling or pointer movement since the
  // last renewal), at most every RENEW_MS, and at once when it is near its end; WARN_MS before the end a countdown
  // shows, in the bar and in a notice that stays on screen.
  const RENEW_MS = window.RANKLAB_RENEW_MS || 60000;
  const WARN_MS = 5 * 60000;
  let lastActivity = 0, lastRenew = 0, renewing = false;
  const DRAFT_PREFIX = "ranklab-draft-";

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(message, isError) {
    $("status").textContent = message || "";
    $("status").classList.toggle("error", !!isError);
    $("status").classList.remove("ok");
  }

  // Said to a screen reader (a polite live region): where an output went.
  function announce(message) {
    const box = $("announce");
    box.textContent = "";
    requestAnimationFrame(() => { box.textContent = message; });
  }
  function labelOf(card) { return card.querySelector(".output-label").textContent; }
  function placedText(card) {
    const slot = card.parentElement;
    if (!slot || slot.dataset.slot === "pool") return labelOf(card) + " unranked";
    const others = Array.from(slot.querySelectorAll(".output"), labelOf).filter((l) => l !== labelOf(card));
    return labelOf(card) + " → rank " + (Number(slot.dataset.slot) + 1) + (others.length ? ", tied with " + others.join(", ") : "");
  }

  // What was done, said once the next task is in place: the new task's own message (its draft is back) follows it
  // rather than replacing it; a problem loading the next task is said alone.
  function sayBefore(message) {
    const said = $("status");
    if (!said.classList.contains("error")) setStatus([message, said.textContent].filter(Boolean).join(" "));
  }

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function api(method, url, body) {
    const resp = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if (resp.status !== 204) {
      try { data = await resp.json(); } catch (e) { data = null; }
    }
    return { status: resp.status, data };
  }

  // "1 line · 42 characters": a one-liner and a 20,000-character essay must not look alike.
  function lengthLabel(text) {
    const lines = text.split("\n").length;
    return lines.toLocaleString("en") + (lines === 1 ? " line" : " lines") + " · " +
      text.length.toLocaleString("en") + (text.length === 1 ? " character" : " characters");
  }

  // The fold button only where the text scrolls inside its card (measured once the task is on screen).
  function markLongOutputs() {
    for (const card of cards()) {
      const text = card.querySelector(".output-text");
      card.querySelector(".expand").hidden = !card.classList.contains("expanded") && text.scrollHeight <= text.clientHeight + 1;
    }
  }

  // Side-by-side reading: every output in its own column, whole, in the order the labeler sees them.
  function buildReader(task) {
    const columns = task.completions.map((completion, index) => {
      const col = el("article", { class: "reader-col", "data-id": String(completion.id) });
      col.append(el("h3", {}, "Output " + LABELS[index]), el("p", { class: "muted small" }, lengthLabel(completion.text)));
      col.append(textBox(completion.text));
      return col;
    });
    $("reader-cols").replaceChildren(...columns);
  }

  function toggleReader(open) {
    const show = open === undefined ? $("reader").hidden : open;
    $("reader").hidden = !show;
    $("reader-button").setAttribute("aria-pressed", String(show));
    $("reader-button").textContent = show ? "Close side-by-side" : "Read side by side";
  }

  function buildCard(completion, index) {
    const card = el("article", { class: "output", tabindex: "0", "data-id": String(completion.id) });
    const head = el("div", { class: "output-head" });
    head.append(el("span", { class: "drag-handle", title: "Drag to a rank", "aria-hidden": "true" }, "⠿"));
    head.append(el("span", { class: "output-label" }, "Output " + LABELS[index]));
    head.append(el("span", { class: "output-length muted" }, lengthLabel(completion.text)));
    head.append(el("span", { class: "output-rank" }, "unranked"));
    // A rank picker for touch screens: no dragging across a long page on a phone.
    const picker = el("select", { class: "rank-select", "aria-label": "Rank of output " + LABELS[index] });
    picker.append(el("option", { value: "" }, "rank…"));
    for (let r = 1; r <= current.completions.length; r++) picker.append(el("option", { value: String(r) }, String(r)));
    picker.addEventListener("change", () => {
      if (picker.value) placeAt(card, Number(picker.value) - 1); else unrank(card);
    });
    head.append(picker);
    const expand = el("button", { type: "button", class: "expand", "aria-expanded": "false" }, "show all");
    expand.addEventListener("click", () => {
      const open = card.classList.toggle("expanded");
      expand.textContent = open ? "fold" : "show all";
      expand.setAttribute("aria-expanded", String(open));
    });
    head.append(expand);
    card.append(head, textBox(completion.text));
    const tools = el("div", { class: "output-tools" });
    const rating = el("span", { class: "rating", role: "group", "aria-label": "Rating of output " + LABELS[index] });
    rating.append(el("span", { class: "rating-title" }, "Rating:"));
    for (let r = 1; r <= 7; r++) {
      const lab = el("label", { title: "rate " + r });
      const input = el("input", { type: "radio", name: "rating-" + completion.id, value: String(r) });
      lab.append(input, document.createTextNode(String(r)));
      rating.append(lab);
    }
    const flags = el("details", { class: "flag-box" });
    flags.append(el("summary", {}, "Flags"));
    const list = el("div", { class: "flags" });
    for (const f of FLAGS) {
      const lab = el("label", {});
      lab.append(el("input", { type: "checkbox", "data-flag": f.name }), document.createTextNode(f.label + " (" + f.key + ")"));
      list.append(lab);
    }
    flags.append(list);
    tools.append(rating, flags);
    card.append(tools);
    card.addEventListener("focus", () => select(card));
    return card;
  }

  function makeSortable(node) {
    // Handle + touch delay: scrolling a phone screen never reorders; fallback mode behaves the same everywhere.
    Sortable.create(node, {
      group: "ranking", handle: ".drag-handle", animation: 120, forceFallback: true,
      delay: 150, delayOnTouchOnly: true, touchStartThreshold: 5,
      onStart: freezeLayout, onEnd: (evt) => { thawLayout(); settleDrop(evt.item); },
      onAdd: (evt) => { if (evt.to.dataset.slot !== "pool") lastSlot = Number(evt.to.dataset.slot); refresh(); },
      onSort: refresh,
    });
  }

  // While an output is dragged, nothing moves under the pointer: the pool and every slot keep at least the height
  // they had when the drag began (the output leaving them does not shrink them), and the placeholder shown in a
  // slot is a thin bar (CSS), so hovering over a slot does not push the slots below it down.
  function freezeLayout() {
    // Where the ranking column scrolls inside its own box (K=9 with long outputs), a rank below its fold cannot be
    // reached by dragging (the page scrolls, not the box): ranked outputs then fold to their head rows (CSS) so every
    // rank is in view. Otherwise nothing moves at all (the page itself scrolls while dragging near its edge).
    const col = document.querySelector(".ranking-col");
    root.classList.toggle("compact", col.scrollHeight > col.clientHeight + 1);
    root.classList.add("dragging");
    document.addEventListener("pointermove", previewDrop, true);
    document.addEventListener("mousemove", previewDrop, true);
    for (const node of [$("pool"), ...slotNodes()]) node.style.minHeight = node.getBoundingClientRect().height + "px";
  }

  // Where the pointer is released is where the output goes: Sortable ignores moves while its animation runs, so
  // on a busy machine its placeholder can trail a slot behind; the release point, read (capture phase, before
  // Sortable handles it) against the layout the labeler sees, decides.
  let dropTarget = null;
  function slotAt(e) {
    const p = e.changedTouches && e.changedTouches.length ? e.changedTouches[0] : e.touches && e.touches.length ? e.touches[0] : e;
    return [...slotNodes(), $("pool")].find((node) => {
      const r = node.getBoundingClientRect();
      return p.clientX >= r.left && p.clientX <= r.right && p.clientY >= r.top && p.clientY <= r.bottom;
    }) || null;
  }
  function notePointerUp(e) {
    if (!root.classList.contains("dragging")) return;
    dropTarget = slotAt(e);
  }

  // Before release: the rank the output would land in is outlined, and one that already holds an output says
  // that dropping there makes a tie.
  function previewDrop(e) {
    const over = slotAt(e);
    for (const slot of slotNodes()) {
      const others = slot.querySelectorAll(".output:not(.sortable-chosen):not(.sortable-ghost)").length;
      slot.classList.toggle("drop-here", slot === over);
      slot.classList.toggle("drop-tie", slot === over && others > 0);
    }
  }
  function clearPreview() {
    document.removeEventListener("pointermove", previewDrop, true);
    document.removeEventListener("mousemove", previewDrop, true);
    for (const slot of slotNodes()) slot.classList.remove("drop-here", "drop-tie");
  }
  for (const type of ["mouseup", "pointerup", "touchend"]) window.addEventListener(type, notePointerUp, true);

  function settleDrop(card) {
    const target = dropTarget;
    dropTarget = null;
    if (!target || !card || target === card.parentElement) return;
    target.append(card);
    if (target.dataset.slot !== "pool") lastSlot = Number(target.dataset.slot);
    refresh();
    announce(placedText(card));
  }

  function thawLayout() {
    clearPreview();
    root.classList.remove("dragging", "compact");
    for (const node of [$("pool"), ...slotNodes()]) node.style.minHeight = "";
  }

  function buildSlots(k) {
    const slots = $("slots");
    slots.replaceChildren();
    for (let i = 0; i < k; i++) {
      const row = el("li", { class: "slot-row" });
      row.append(el("span", { class: "slot-label" }, "Rank " + (i + 1) + (i === 0 ? " (best)" : i === k - 1 ? " (worst)" : "")));
      const slot = el("div", { class: "slot", "data-slot": String(i) });
      row.append(slot);
      slots.append(row);
      makeSortable(slot);
    }
  }

  function cards() { return Array.from(document.querySelectorAll("#task .output")); }
  function slotNodes() { return Array.from(document.querySelectorAll("#slots .slot")); }
  function selected() { return document.querySelector("#task .output.selected"); }

  function select(card, keepScroll) {
    for (const c of cards()) c.classList.toggle("selected", c === card);
    if (card && document.activeElement !== card) card.focus({ preventScroll: !!keepScroll });
  }

  function refresh() {
    for (const slot of slotNodes()) {
      const n = slot.querySelectorAll(".output").length;
      slot.classList.toggle("tied", n > 1);
      for (const card of slot.querySelectorAll(".output")) {
        card.querySelector(".output-rank").textContent = "rank " + (Number(slot.dataset.slot) + 1) + (n > 1 ? " (tie)" : "");
        card.querySelector(".rank-select").value = String(Number(slot.dataset.slot) + 1);
      }
    }
    for (const card of $("pool").querySelectorAll(".output")) {
      card.querySelector(".output-rank").textContent = "unranked";
      card.querySelector(".rank-select").value = "";
    }
    markLongOutputs();
    saveDraft();
  }

  function placeAt(card, slotIndex) {
    const slot = slotNodes()[slotIndex];
    if (!slot || !card) return;
    slot.append(card);
    lastSlot = slotIndex;
    refresh();
    announce(placedText(card));
    const next = cards().find((c) => c.parentElement.id === "pool");
    select(next || card);
  }

  function unrank(card) { if (card) { $("pool").append(card); refresh(); announce(placedText(card)); select(card); } }

  function rate(card, value) {
    const input = card && card.querySelector('input[type=radio][value="' + value + '"]');
    if (input) input.checked = true;
  }

  function toggleFlag(card, name) {
    const box = card && card.querySelector('input[data-flag="' + name + '"]');
    if (box) { box.checked = !box.checked; card.querySelector(".flag-box").open = true; }
  }

  // --- the draft: everything typed or placed, kept in this browser until the ranking is stored
  function draftKey() { return DRAFT_PREFIX + current.assignment_id; }

  function saveDraft() {
    if (!current || current.revisionId || current.task_type === "demonstration") return;
    const body = collect();
    const draft = { buckets: slotNodes().map((slot) => Array.from(slot.querySelectorAll(".output"), (c) => Number(c.dataset.id))),
                    ratings: body.ratings, flags: body.flags, note: body.note, not_rankable: body.not_rankable,
                    key: current.key, saved_at: Date.now(), labeler: root.dataset.user };
    const empty = !draft.buckets.some((b) => b.length) && !Object.keys(draft.ratings).length &&
      !Object.keys(draft.flags).length && !draft.note && !draft.not_rankable;
    try {
      if (empty) localStorage.removeItem(draftKey()); else localStorage.setItem(draftKey(), JSON.stringify(draft));
    } catch (e) { /* storage full or off: no draft */ }
  }

  function dropDraft() { if (current) { try { localStorage.removeItem(draftKey()); } catch (e) { /* no storage */ } } }

  function restoreDraft() {
    if (current.revisionId) return false;
    let draft = null;
    try { draft = JSON.parse(localStorage.getItem(draftKey()) || "null"); } catch (e) { draft = null; }
    if (!draft) return false;
    applyState(draft);
    if (draft.key) current.key = draft.key; // the same idempotency key: a retried submit is a replay, never a double
    return true;
  }

  // Drafts of other tasks of this labeler left in this browser: on a new task they are stranded (the server gives a
  // lapsed task back while nobody else took it, so a task that did not come back went to another labeler). They are
  // dropped, and the labeler is told.
  function dropStrandedDrafts() {
    let dropped = 0;
    try {
      for (const key of Object.keys(localStorage)) {
        if (!key.startsWith(DRAFT_PREFIX) || key === draftKey()) continue;
        let draft = null;
        try { draft = JSON.parse(localStorage.getItem(key)); } catch (e) { draft = null; }
        if (draft && draft.labeler && draft.labeler !== root.dataset.user) continue; // someone else's, same browser
        localStorage.removeItem(key);
        dropped += 1;
      }
    } catch (e) { /* no storage */ }
    return dropped;
  }

  // Put a ranking on the board: {buckets, ratings, flags, note, not_rankable} (a draft, or a stored ranking).
  function applyState(draft) {
    const byId = new Map(cards().map((c) => [c.dataset.id, c]));
    (draft.buckets || []).forEach((bucket, i) => {
      for (const id of bucket) { const card = byId.get(String(id)); if (card && slotNodes()[i]) slotNodes()[i].append(card); }
    });
    for (const [id, value] of Object.entries(draft.ratings || {})) rate(byId.get(id), value);
    for (const [id, names] of Object.entries(draft.flags || {})) for (const name of names) toggleFlag(byId.get(id), name);
    $("note").value = draft.note || "";
    $("not-rankable").checked = !!draft.not_rankable;
  }

  // --- the lease: renewed while in use, a countdown near its end, taken back after it ran out if still free
  function touch() { lastActivity = Date.now(); }

  function leaseUrl() { return root.dataset.leaseUrl.replace("{id}", String(current.assignment_id)); }

  async function renew() {
    if (!current || current.revisionId || renewing) return null;
    renewing = true;
    const asked = current.assignment_id;
    try {
      const { status, data } = await api("POST", leaseUrl());
      if (status === 200 && current && current.assignment_id === asked) {
        current.expires_at = data.expires_at;
        lastRenew = Date.now();
        tick();
      }
      return { status, data };
    } catch (e) {
      return { status: 0, data: null };
    } finally { renewing = false; }
  }

  // The warning near and after the lease's end stays on screen however far the labeler has scrolled.
  function leaseAlert(text) {
    if (text && $("lease-alert").hidden) announce(text); // said once when it appears, not at every second
    $("lease-alert").hidden = !text;
    $("lease-alert-text").textContent = text || "";
  }

  function tick() {
    if (!current) { $("lease").textContent = ""; leaseAlert(""); return; }
    const left = new Date(current.expires_at).getTime() - Date.now();
    const lease = $("lease");
    if (current.revisionId) {
      leaseAlert("");
      lease.classList.remove("lease-warning");
      lease.textContent = left > 0 ? "revisable until " + new Date(current.expires_at).toLocaleTimeString()
                                   : "the time to revise this ranking is over";
      return;
    }
    lease.classList.toggle("lease-warning", left < WARN_MS);
    if (left <= 0) {
      lease.textContent = "The lease ran out; your ranking is kept here and Submit tries to take the task back.";
    } else if (left < WARN_MS) {
      const s = Math.ceil(left / 1000);
      lease.textContent = "Lease ends in " + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") +
        " · reading, scrolling or any key keeps it";
    } else {
      lease.textContent = "lease until " + new Date(current.expires_at).toLocaleTimeString();
    }
    leaseAlert(left < WARN_MS ? lease.textContent : "");
    const used = lastActivity > lastRenew;
    if (used && document.visibilityState !== "hidden" && (Date.now() - lastRenew >= RENEW_MS || left < WARN_MS)) renew();
  }

  // The prompt as the labeler reads it: its conversation's turns (conversation.js); one user turn shows as before.
  function showPrompt(prompt) {
    window.ranklabConversation.render($("prompt-text"), prompt.messages || [{ role: "user", content: prompt.text }], MD);
    $("conversation-help").hidden = !$("prompt-text").classList.contains("conversation");
  }

  // A demonstration task (or one's demonstration to correct) goes to demonstration.js; lease, skip and status stay here.
  function showDemonstration(task, revision) {
    setStatus("");
    current = Object.assign({}, task, { task_type: "demonstration", key: newKey(), started: Date.now() });
    if (revision) Object.assign(current, { revisionId: revision.id, assignment_id: null, expires_at: revision.revisable_until });
    lastRenew = Date.now();
    for (const id of ["lost", "empty", "task"]) $(id).hidden = true;
    $("skip-button").hidden = !!revision;
    MD.clear();
    DEMO.show(current, revision);
    if (!revision && dropStrandedDrafts()) sayBefore("Your unsent work on an earlier task was dropped: its lease ran out.");
    tick();
    window.scrollTo(0, 0);
  }

  // Researchers are told what they rank (labelers never: hidden gold must look like any task).
  const KIND_NOTES = {
    gold: "Gold task: your ranking becomes the gold answer labelers are scored against.",
    screening: "Screening task: your ranking is the answer new labelers are screened against.",
  };

  function show(task, revision) {
    if (DEMO) DEMO.hide();
    if (task.task_type === "demonstration") { showDemonstration(task); return; }
    setStatus(""); // a new task starts with a clean status line: what was done is said once, by the caller
    current = Object.assign({}, task, { key: newKey(), started: Date.now() });
    $("revising").hidden = !revision;
    $("skip-button").hidden = !!revision;
    $("submit-button").textContent = revision ? "Save the revision (Enter)" : "Submit and next (Enter)";
    if (revision) Object.assign(current, { revisionId: revision.ranking.id, assignment_id: null, expires_at: revision.revisable_until });
    lastRenew = Date.now();
    $("lost").hidden = true;
    lastSlot = null;
    MD.clear();
    showPrompt(task.prompt);
    $("task-kind").hidden = !KIND_NOTES[task.kind];
    $("task-kind").textContent = KIND_NOTES[task.kind] || "";
    const pool = $("pool");
    pool.replaceChildren(...task.completions.map(buildCard));
    buildSlots(task.completions.length);
    $("note").value = "";
    $("not-rankable").checked = false;
    buildReader(task);
    $("empty").hidden = true;
    $("task").hidden = false;
    if (revision) {
      const r = revision.ranking;
      applyState({ buckets: r.ranking, ratings: r.ratings, flags: r.flags, note: r.note, not_rankable: r.not_rankable });
    } else {
      const back = restoreDraft();
      const dropped = dropStrandedDrafts();
      setStatus([back ? "Your unsent ranking of this task is back." : "",
                 dropped ? "Your unsent ranking of an earlier task was dropped: its lease ran out and another labeler " +
                           "has that task now." : ""].filter(Boolean).join(" "));
    }
    refresh();
    tick();
    markLongOutputs();
    // a new task starts at its prompt (on a phone, focusing the first output would scroll the prompt away)
    select(cards()[0], true);
    window.scrollTo(0, 0);
  }

  // With nothing to rank, look again now and then: new tasks arrive as sampling jobs run, and a task that another
  // labeler's request held for a moment may be free a second later.
  const RECHECK_MS = window.RANKLAB_RECHECK_MS || 15000;
  let recheck = null;

  async function loadNext() {
    clearTimeout(recheck);
    const { status, data } = await api("GET", root.dataset.nextUrl);
    if (status === 204) {
      setStatus("");
      current = null;
      $("task").hidden = true;
      if (DEMO) DEMO.hide();
      $("empty").hidden = false;
      recheck = setTimeout(loadNext, RECHECK_MS);
      return;
    }
    if (status === 401) { sessionLost(); return; }
    if (status === 403) { outcome("You cannot rank right now", (data && data.detail) || "ask a researcher"); return; }
    if (status !== 200) { setStatus((data && data.detail) || "could not load a task", true); return; }
    show(data);
  }

  // The end of the road for now (screening went to review, the account was paused): no task, no Submit, the reason.
  function outcome(title, text) {
    clearTimeout(recheck);
    current = null;
    $("task").hidden = true;
    if (DEMO) DEMO.hide();
    $("empty").hidden = true;
    $("lost").hidden = true;
    $("outcome").replaceChildren(el("h2", {}, title), el("p", {}, text));
    $("outcome").hidden = false;
    // nothing to rank: no task tools, no progress beside a verdict
    for (const node of document.querySelectorAll(".ranker-bar, #screening")) node.hidden = true;
    setStatus("");
    tick();
    window.scrollTo(0, 0);
  }

  // After a stored ranking: screening progress, a pass said out loud, a failed gate explained.
  function afterScreening(data) {
    if (!root.dataset.screening) return false;
    if (data.labeler_status === "pending_review") {
      outcome("Screening finished: a researcher will review your answers",
              "You have ranked every screening task, but your rankings did not agree closely enough with the " +
              "researchers' to start straight away. A researcher will look at your answers and get back to you; " +
              "until then there is nothing more to rank.");
      return true;
    }
    if (data.labeler_status === "active") {
      root.dataset.screening = "";
      $("screening").hidden = true;
      return false;
    }
    if (data.screening_done !== null && data.screening_done !== undefined) {
      $("screening-done").textContent = String(data.screening_done);
      $("screening-progress").value = data.screening_done;
    }
    return false;
  }

  function collect() {
    const ranking = slotNodes()
      .map((slot) => Array.from(slot.querySelectorAll(".output"), (c) => Number(c.dataset.id)))
      .filter((bucket) => bucket.length > 0);
    const ratings = {}, flags = {};
    for (const card of cards()) {
      const id = card.dataset.id;
      const checked = card.querySelector("input[type=radio]:checked");
      if (checked) ratings[id] = Number(checked.value);
      const names = Array.from(card.querySelectorAll("input[data-flag]:checked"), (b) => b.dataset.flag);
      if (names.length) flags[id] = names;
    }
    const notRankable = $("not-rankable").checked;
    const unranked = $("pool").querySelectorAll(".output").length;
    return { ranking: notRankable && unranked ? [] : ranking, not_rankable: notRankable, ratings, flags,
             note: $("note").value, idempotency_key: current.key, unranked };
  }

  async function submit() {
    if (!current || busy) return;
    const body = collect();
    if (body.unranked && !body.not_rankable) {
      setStatus("Rank every output (or mark the task not rankable): " + body.unranked + " left.", true);
      return;
    }
    delete body.unranked;
    if (current.revisionId) { await saveRevision(body); return; }
    busy = true;
    try {
      const url = root.dataset.submitUrl.replace("{id}", String(current.assignment_id));
      let { status, data } = await api("POST", url, body);
      if (status === 410) {
        const back = await renew();
        if (back && back.status === 200) ({ status, data } = await api("POST", url, body));
      }
      if (status === 201 || status === 200) {
        dropDraft();
        $("today-count").textContent = String(data.submitted_today);
        const passed = !!root.dataset.screening && data.labeler_status === "active";
        if (afterScreening(data)) return;
        loadHistory();
        await loadNext();
        const next = current ? "Here is the next one." : "Nothing else to rank right now.";
        sayBefore(passed ? "You passed screening: from now on you rank real tasks. " + next : "Saved. " + next);
        $("status").classList.toggle("ok", passed && !$("status").classList.contains("error"));
      } else if (status === 401) {
        sessionLost();
      } else if (status === 410) {
        saveDraft();
        $("lost").hidden = false;
        setStatus("The lease ran out and another labeler has this task now, so this ranking cannot be stored. " +
                  "It stays on screen until you go on.", true);
      } else {
        setStatus((data && data.detail) || "could not save (" + status + ")", true);
      }
    } catch (e) {
      setStatus("Network problem; your ranking is still here, press Enter to try again.", true);
    } finally { busy = false; }
  }

  // --- the labeler's recent rankings, and correcting one of them within its window
  async function loadHistory() {
    const { status, data } = await api("GET", root.dataset.historyUrl);
    if (status !== 200) return;
    const items = data.map((r) => {
      const li = el("li", { "data-id": String(r.id) });
      li.append(el("span", { class: "history-prompt" }, r.prompt_excerpt), document.createTextNode(" "));
      li.append(el("span", { class: "muted small" }, new Date(r.created_at).toLocaleTimeString() +
        (r.not_rankable ? " · not rankable" : "")));
      if (r.revisable_until) {
        const button = el("button", { type: "button", class: "revise" },
          "Revise (until " + new Date(r.revisable_until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ")");
        button.addEventListener("click", () => startRevision(r.id));
        li.append(document.createTextNode(" "), button);
      }
      return li;
    });
    $("history-list").replaceChildren(...items);
    $("history-empty").hidden = items.length > 0;
  }

  async function startRevision(id) {
    clearTimeout(recheck);
    saveDraft(); // the task in hand waits, with its draft, until the revision is saved or cancelled
    const { status, data } = await api("GET", root.dataset.rankingUrl.replace("{id}", String(id)));
    if (status !== 200) { setStatus((data && data.detail) || "could not open that ranking", true); return; }
    show({ assignment_id: null, prompt: data.prompt, completions: data.completions }, data);
    setStatus("Revising a ranking you submitted; Save keeps the correction, Cancel goes back.");
  }

  async function saveRevision(body) {
    busy = true;
    try {
      delete body.idempotency_key;
      const url = root.dataset.rankingUrl.replace("{id}", String(current.revisionId));
      const { status, data } = await api("PUT", url, body);
      if (status !== 200) { setStatus((data && data.detail) || "could not save the revision (" + status + ")", true); return; }
      loadHistory();
      await loadNext();
      sayBefore("Revision saved.");
    } finally { busy = false; }
  }

  // Signed out (the session ended, or the labeler logged out in another tab): the draft stays in this browser and
  // comes back on this task after logging in again, which brings the labeler back here.
  function sessionLost() {
    saveDraft();
    setStatus("Your session has ended; your ranking is kept in this browser. ", true);
    const link = el("a", { href: root.dataset.loginUrl, id: "login-again" }, "Log in again to submit it");
    $("status").append(link);
  }

  async function skip(reason) {
    const url = root.dataset.skipUrl.replace("{id}", String(current.assignment_id));
    const { status, data } = await api("POST", url, { reason });
    if (status !== 200) { setStatus((data && data.detail) || "could not skip", true); return; }
    dropDraft();
    await loadNext();
    sayBefore("Skipped.");
  }

  function onKey(e) {
    if (!current || $("task").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
    const inField = e.target.matches("textarea, select, input:not([type=radio]):not([type=checkbox])");
    if (inField) { if (e.key === "Escape") e.target.blur(); return; }
    // a focused link, button or disclosure keeps Enter and Space for itself; a dialog keeps every key
    if (e.target.closest("dialog")) return;
    if ((e.key === "Enter" || e.key === " ") && e.target.matches("a, button, summary, [role=button]")) return;
    const card = selected();
    const all = cards();
    if (e.key === "ArrowDown" || e.key === "j") { select(all[Math.min(all.indexOf(card) + 1, all.length - 1)]); }
    else if (e.key === "ArrowUp" || e.key === "k") { select(all[Math.max(all.indexOf(card) - 1, 0)]); }
    else if (e.shiftKey && /^Digit[1-7]$/.test(e.code)) { rate(card, e.code.slice(5)); }
    else if (/^[1-9]$/.test(e.key)) { placeAt(card, Number(e.key) - 1); }
    else if (e.key === "0" || e.key === "Backspace") { unrank(card); }
    else if (e.key === "t") { if (lastSlot !== null) placeAt(card, lastSlot); }
    else if (e.key === "n") { $("not-rankable").checked = !$("not-rankable").checked; }
    else if (e.key === "Enter") { submit(); }
    else {
      const flag = FLAGS.find((f) => f.key === e.key);
      if (!flag) return;
      toggleFlag(card, flag.name);
    }
    e.preventDefault();
    saveDraft();
  }

  document.addEventListener("keydown", onKey);
  // In use: a key, a click, typing, and reading too (scrolling the page or an output, moving the pointer).
  for (const type of ["keydown", "pointerdown", "input", "change"]) document.addEventListener(type, touch, true);
  for (const type of ["scroll", "wheel", "touchmove", "mousemove"]) {
    document.addEventListener(type, touch, { capture: true, passive: true });
  }
  for (const type of ["input", "change"]) root.addEventListener(type, () => saveDraft());
  $("lost-next").addEventListener("click", () => { dropDraft(); setStatus(""); $("lost").hidden = true; loadNext(); });
  setInterval(tick, 1000);
  makeSortable($("pool"));
  $("submit-button").addEventListener("click", submit);
  $("retry-button").addEventListener("click", loadNext);
  $("reader-button").addEventListener("click", () => toggleReader());
  const showRaw = (on) => { $("raw-button").setAttribute("aria-pressed", String(on)); };
  showRaw(MD.raw());
  $("raw-button").addEventListener("click", () => { showRaw(MD.toggle()); markLongOutputs(); });
  $("skip-button").addEventListener("click", () => { if (current) $("skip-dialog").showModal(); });
  $("skip-dialog").addEventListener("close", () => {
    const chosen = document.querySelector('input[name="skip-choice"]:checked');
    const detail = $("skip-reason").value.trim();
    const reason = chosen && detail ? chosen.value + ": " + detail : detail || (chosen ? chosen.value : "");
    if ($("skip-dialog").returnValue === "skip") {
      if (reason) skip(reason); else setStatus("Not skipped: choose or write a reason.", true);
    }
    $("skip-reason").value = "";
    if (chosen) chosen.checked = false;
  });
  $("revise-cancel").addEventListener("click", () => { setStatus(""); loadNext(); });
  if (DEMO) {
    DEMO.init({ api, next: loadNext, sayBefore, setStatus, sessionLost, renew, hasTask: () => !!current,
      revise: (d) => { clearTimeout(recheck); saveDraft();
        showDemonstration({ assignment_id: null, prompt: { messages: d.messages }, completions: [] }, d); } });
  }
  loadHistory();
  loadNext();
})();
