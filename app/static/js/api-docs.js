/* /api/docs: Swagger UI, vendored (app/static/vendor/swagger-ui), on this site's OpenAPI document.

   "Try it out" works with the login cookie (a requestInterceptor adds the session's CSRF token to writes) and with a
   bearer token from the Authorize button (the schema declares the OAuth2 password flow).

   Two accessibility repairs on our side (tests/browser/test_accessibility.py sweeps the page with axe-core; the
   colours are in css/api-docs.css):
   - Swagger UI writes each operation's path as a deep link (<a>) inside the button that opens the operation: a
     control inside a control, which keyboards and screen readers cannot reach on its own. Its DeepLink component is
     replaced through the plugin API by plain text (React keeps rendering it, so nothing is patched afterwards);
     deepLinking still writes the open operation into the address bar, to copy from there.
   - "Try it out" renders the request body's textarea and the enum parameters' selects without a name, and code
     blocks that scroll but cannot take the focus (so a keyboard cannot scroll them). A MutationObserver names each
     such control after its parameter and makes scrolling code blocks focusable; it only adds attributes React does
     not set, so React's later renders keep them, and a re-created element is repaired again.
*/
(function () {
  "use strict";

  function plainPathText(system) {
    return {
      components: {
        DeepLink: function (props) {
          return system.React.createElement("span", null, props.text);
        },
      },
    };
  }

  function hasName(el) {
    if (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")) return true;
    if (el.labels && el.labels.length) return true;
    return Boolean((el.getAttribute("title") || "").trim() || (el.getAttribute("placeholder") || "").trim());
  }

  function controlName(el) {
    const row = el.closest("tr[data-param-name]");
    if (row) return row.dataset.paramName + (row.dataset.paramIn ? " (" + row.dataset.paramIn + ")" : "");
    if (el.closest(".opblock-section-request-body, .body-param")) return "Request body";
    const op = el.closest(".opblock");
    const path = op && op.querySelector(".opblock-summary-path");
    return path ? "Value for " + path.textContent.replace(/\u200b/g, "") : "Value";
  }

  function scrolls(el) {
    const style = window.getComputedStyle(el);
    return /auto|scroll/.test(style.overflowX + " " + style.overflowY);
  }

  function repair(root) {
    root.querySelectorAll("textarea, select, input:not([type=hidden])").forEach(function (el) {
      if (!hasName(el)) el.setAttribute("aria-label", controlName(el));
    });
    root.querySelectorAll("pre:not([tabindex])").forEach(function (pre) {
      if (scrolls(pre)) pre.setAttribute("tabindex", "0");
    });
  }

  const root = document.getElementById("swagger-ui");
  let pending = false;
  new MutationObserver(function () {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      repair(root);
    });
  }).observe(root, { childList: true, subtree: true });

  // "Try it out" with the login cookie: writes carry the session's CSRF token, as the site's own pages send it
  // (a request authorised with a bearer token through Authorize needs none, and gets it harmlessly).
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  function withCsrf(request) {
    if (csrf && !/^(GET|HEAD|OPTIONS)$/i.test(request.method || "GET")) request.headers["X-CSRF-Token"] = csrf;
    return request;
  }

  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    plugins: [plainPathText],
    requestInterceptor: withCsrf,
  });
})();
