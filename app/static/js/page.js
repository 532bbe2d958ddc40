/* Every page: a region that scrolls (a wide table in its card, a long text) can be focused, so it can be scrolled
   from the keyboard (WCAG 2.1.1); checked on load, on resize, and when a page's script changes what it shows. */
(function () {
  "use strict";
  const SCROLLERS = ".card, .output-text, .reader-cols, .prompt-text, .scroll-x, .markdown pre, .markdown table, " +
    ".turn-text, .demo-preview, .demo-source-text";
  function markScrollable() {
    for (const node of document.querySelectorAll(SCROLLERS)) {
      const style = getComputedStyle(node);
      const scrolls = (node.scrollWidth > node.clientWidth + 1 && /auto|scroll/.test(style.overflowX)) ||
        (node.scrollHeight > node.clientHeight + 1 && /auto|scroll/.test(style.overflowY));
      if (scrolls && !node.hasAttribute("tabindex")) { node.setAttribute("tabindex", "0"); node.dataset.scrollFocus = "1"; }
      if (!scrolls && node.dataset.scrollFocus) { node.removeAttribute("tabindex"); delete node.dataset.scrollFocus; }
    }
  }
  let pending = null;
  const soon = () => { cancelAnimationFrame(pending); pending = requestAnimationFrame(markScrollable); };
  window.addEventListener("load", soon);
  window.addEventListener("resize", soon);
  new MutationObserver(soon).observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["hidden", "class"] });
  window.ranklabMarkScrollable = markScrollable;
})();
