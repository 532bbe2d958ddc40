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

  // 95% intervals as whiskers over bars: spec.errors = {series name: [[low, high] or null, ...]} (fractions).
  var errorBars = {
    id: "errorBars",
    afterDatasetsDraw: function (chart) {
      var spec = chart.config.options.plugins.errorBars;
      if (!spec) return;
      var ctx = chart.ctx, y = chart.scales.y, whiskers = 0;
      chart.data.datasets.forEach(function (dataset, d) {
        var ranges = spec[dataset.label];
        var meta = chart.getDatasetMeta(d);
        if (!ranges || meta.hidden) return;
        meta.data.forEach(function (bar, i) {
          var r = ranges[i];
          if (!r || r[0] === null || r[1] === null) return;
          var top = y.getPixelForValue(r[1] * 100), bottom = y.getPixelForValue(r[0] * 100), w = 5;
          ctx.save();
          ctx.strokeStyle = "#1d2330";
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.moveTo(bar.x, top); ctx.lineTo(bar.x, bottom);
          ctx.moveTo(bar.x - w, top); ctx.lineTo(bar.x + w, top);
          ctx.moveTo(bar.x - w, bottom); ctx.lineTo(bar.x + w, bottom);
          ctx.stroke();
          ctx.restore();
          whiskers += 1;
        });
      });
      chart.canvas.dataset.errorBars = String(whiskers);
    },
  };

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = specs[canvas.dataset.chart];
    if (!spec || typeof Chart === "undefined") return;
    var scale = spec.percent ? { min: 0, max: 100, ticks: { callback: function (v) { return v + "%"; } } } : { beginAtZero: true };
    new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets(spec) },
      options: { responsive: true, animation: false, scales: { y: scale }, plugins: { errorBars: spec.errors || null } },
      plugins: [errorBars],
    });
    drawn += 1;
  });
  document.body.dataset.chartsDrawn = String(drawn);
})();
