/* A Chart.js plugin that draws 95% intervals as whiskers over bars or points (shared by the dashboards and the
   models page). Per chart: options.plugins.errorBars = {ranges: {dataset label: [[low, high] or null, ...]},
   factor: what to multiply the range by to reach the axis' units (100 for a percent axis)}. The canvas records how
   many whiskers it drew in data-error-bars. */
(function () {
  "use strict";
  window.ranklabErrorBars = {
    id: "errorBars",
    afterDatasetsDraw: function (chart) {
      var spec = chart.config.options.plugins.errorBars;
      if (!spec || !spec.ranges) return;
      var ctx = chart.ctx, y = chart.scales.y, factor = spec.factor || 1, whiskers = 0;
      chart.data.datasets.forEach(function (dataset, d) {
        var ranges = spec.ranges[dataset.label];
        var meta = chart.getDatasetMeta(d);
        if (!ranges || meta.hidden) return;
        meta.data.forEach(function (element, i) {
          var r = ranges[i];
          if (!r || r[0] === null || r[1] === null || r[0] === undefined || r[1] === undefined) return;
          var top = y.getPixelForValue(r[1] * factor), bottom = y.getPixelForValue(r[0] * factor), w = 5;
          ctx.save();
          ctx.strokeStyle = "#1d2330";
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.moveTo(element.x, top); ctx.lineTo(element.x, bottom);
          ctx.moveTo(element.x - w, top); ctx.lineTo(element.x + w, top);
          ctx.moveTo(element.x - w, bottom); ctx.lineTo(element.x + w, bottom);
          ctx.stroke();
          ctx.restore();
          whiskers += 1;
        });
      });
      chart.canvas.dataset.errorBars = String(whiskers);
    },
  };
})();
