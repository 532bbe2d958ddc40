/* /api/docs: Swagger UI, vendored (app/static/vendor/swagger-ui), on this site's OpenAPI document. */
(function () {
  "use strict";
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: root.dataset.openapiUrl, domNode: root, deepLinking: true });
})();
