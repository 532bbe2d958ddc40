/* A prompt's conversation on a page: who said what (System / User / Assistant), every turn as sanitised markdown
   through markdown.js, and the turns before the last two folded into a disclosure. A plain one-message prompt shows
   as its text alone, exactly as before conversations. Used by the ranking and demonstration views of /label, and
   (enhance) by the researcher pages, whose turns the server renders as text first (templates/_conversation.html). */
(function () {
  "use strict";
  const LABELS = { system: "System", user: "User", assistant: "Assistant" };
  const SHOWN_OPEN = 2;
  const FOLD_CHARS = 1500; // earlier turns longer than this together start folded

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function turn(message, MD) {
    const box = el("div", "turn turn-" + message.role);
    box.dataset.role = message.role;
    box.append(el("span", "turn-role", LABELS[message.role] || message.role));
    const text = el("div", "turn-text");
    MD.show(text, message.content);
    box.append(text);
    return box;
  }

  /** Show `messages` in `node` (rendered through `MD`, window.ranklabMarkdown). */
  function render(node, messages, MD) {
    node.replaceChildren();
    node.classList.remove("conversation");
    if (!messages || !messages.length) return;
    if (messages.length === 1 && messages[0].role === "user") { MD.show(node, messages[0].content); return; }
    node.classList.remove("markdown", "raw-text");
    node.classList.add("conversation");
    const cut = Math.max(0, messages.length - SHOWN_OPEN);
    if (cut > 0) {
      const earlier = el("details", "turns-earlier");
      const chars = messages.slice(0, cut).reduce((n, m) => n + m.content.length, 0);
      earlier.open = chars <= FOLD_CHARS;
      earlier.append(el("summary", "", "Earlier turns (" + cut + ")"));
      for (const m of messages.slice(0, cut)) earlier.append(turn(m, MD));
      node.append(earlier);
    }
    for (const m of messages.slice(cut)) node.append(turn(m, MD));
  }

  /** Server-rendered turns (plain text in .turn-text[data-markdown]) become markdown, when the renderer is loaded. */
  function enhance(MD) {
    for (const node of document.querySelectorAll(".turn-text[data-markdown]")) {
      const text = node.textContent;
      node.removeAttribute("data-markdown");
      MD.show(node, text);
    }
  }

  window.ranklabConversation = { render, enhance };
  if (window.ranklabMarkdown && document.querySelector(".turn-text[data-markdown]")) enhance(window.ranklabMarkdown);
})();
