// Draws every <canvas data-chart="name"> from the JSON in #chart-data with the vendored Chart.js.
(function () {
  "use strict";
  var palette = ["#2f6fdf", "#e07b39", "#1e8e4e", "#9b59b6", "#c0392b"];
  var source = document.getElementById("chart-data");
  var specs = source ? JSON.parse(source.textContent || "{}") : {};
  var drawn = 0;

  function datasets(spec) {
    return Object.keys(spec.series).map(function (name, i) {
      var values = spec.series[name].map(function (v) {
        return v === null ? null : (spec.percent ? Math.round(v * 1000) / 10 : v);
      });
      return {
        label: name, data: values, spanGaps: true, borderColor: palette[i % palette.length],
        backgroundColor: palette[i % palette.length] + (spec.type === "bar" ? "cc" : "33"),
      };
    });
  }

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = specs[canvas.dataset.chart];
    if (!spec || typeof Chart === "undefined") return;
    var scale = spec.percent ? { min: 0, max: 100, ticks: { callback: function (v) { return v + "%"; } } } : { beginAtZero: true };
    new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets(spec) },
      options: { responsive: true, animation: false, scales: { y: scale },
                 plugins: { errorBars: spec.errors ? { ranges: spec.errors, factor: spec.percent ? 100 : 1 } : null } },
      plugins: [window.ranklabErrorBars],
    });
    drawn += 1;
  });
  document.body.dataset.chartsDrawn = String(drawn);
})();
