/* Markdown in prompts and outputs, rendered safely: marked with raw HTML shown as text (never parsed), then
   DOMPurify with a short allow-list (no images, which would fetch from anywhere; no forms, no styles).
   A page-wide toggle shows the raw text instead; the choice is kept in this browser. */
(function () {
  "use strict";
  const STORE = "ranklab-raw-text";
  const ALLOWED_TAGS = ["p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "h1", "h2",
    "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "hr", "span", "input"];
  const escape = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const ready = typeof window.marked !== "undefined" && typeof window.DOMPurify !== "undefined";
  if (ready) {
    window.marked.use({ gfm: true, breaks: true, renderer: { html: (token) => escape(token.text) } });
    window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A") { node.setAttribute("rel", "noopener noreferrer nofollow"); node.setAttribute("target", "_blank"); }
      if (node.tagName === "INPUT") { node.setAttribute("disabled", ""); node.setAttribute("tabindex", "-1"); }
    });
  }
  let rendered = []; // [node, text] of the current task, re-rendered when the toggle flips
  let rawMode = false;
  try { rawMode = localStorage.getItem(STORE) === "1"; } catch (e) { rawMode = false; }

  function raw() { return rawMode; }

  function paint(node, text, always) {
    if ((raw() && !always) || !ready) {
      node.classList.remove("markdown");
      node.classList.add("raw-text");
      node.textContent = text;
      return;
    }
    const html = window.marked.parse(text);
    node.classList.remove("raw-text");
    node.classList.add("markdown");
    node.innerHTML = window.DOMPurify.sanitize(html, {
      ALLOWED_TAGS, ALLOWED_ATTR: ["href", "title", "align", "start", "type", "checked", "disabled"],
      ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
    });
  }

  window.ranklabMarkdown = {
    /** Forget what the last task showed. */
    clear() { rendered = []; },
    /** Show `text` in `node` (as markdown unless the reader chose raw text). */
    show(node, text) {
      rendered.push([node, text]);
      paint(node, text);
    },
    /** Show `text` in `node` as markdown even in raw mode, without keeping it for the toggle (a live preview). */
    preview(node, text) { paint(node, text, true); },
    raw,
    /** Flip between rendered markdown and raw text everywhere on the page. */
    toggle() {
      rawMode = !rawMode;
      try { localStorage.setItem(STORE, rawMode ? "1" : "0"); } catch (e) { /* kept for this page only */ }
      for (const [node, text] of rendered) paint(node, text);
      return raw();
    },
  };
})();
