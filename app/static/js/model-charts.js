/* The models page's pictures of learning, drawn with the vendored Chart.js from #model-charts-data (prepared by
   app/services/model_charts.py; nothing is computed here but the drawing). */
(function () {
  "use strict";
  var source = document.getElementById("model-charts-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var palette = ["#2563c9", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0f766e", "#a16207", "#be185d"];
  var METHOD_COLOURS = { ppo: "#2563c9", dpo: "#c2410c" };
  var pct = function (v) { return v === null || v === undefined ? null : Math.round(v * 1000) / 10; };

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: true }, config.options || {});
    new Chart(canvas, config);
  }

  // 1. reward vs KL: policy versions by method, SFT baselines at KL 0, best-of-n curves
  (function () {
    var chart = data.reward_kl;
    var methods = {};
    chart.points.forEach(function (p) { (methods[p.method] = methods[p.method] || []).push(p); });
    var datasets = Object.keys(methods).sort().map(function (method) {
      return {
        label: method.toUpperCase() + " policy versions", type: "scatter", pointRadius: 6, pointStyle: "circle",
        backgroundColor: METHOD_COLOURS[method] || palette[3], borderColor: METHOD_COLOURS[method] || palette[3],
        data: methods[method].map(function (p) {
          return { x: p.kl, y: p.score, version: p.version, name: p.name + (p.reward_version ? " (RM v" + p.reward_version + ")" : "") };
        }),
      };
    });
    if (chart.baselines.length) {
      datasets.push({
        label: "SFT baseline", type: "scatter", pointRadius: 7, pointStyle: "rectRot", backgroundColor: "#1d2330",
        data: chart.baselines.map(function (b) {
          return { x: 0, y: b.score, version: b.version, name: b.name + (b.reward_version ? " under RM v" + b.reward_version : "") };
        }),
      });
    }
    chart.best_of_n.forEach(function (curve, i) {
      datasets.push({
        label: curve.label, type: "line", showLine: true, borderDash: [5, 4], pointRadius: 3, fill: false,
        borderColor: palette[(i + 2) % palette.length], backgroundColor: palette[(i + 2) % palette.length],
        data: curve.points.map(function (p) { return { x: p.kl, y: p.score, n: p.n }; }),
      });
    });
    draw("reward-kl-chart", {
      type: "scatter", data: { datasets: datasets },
      options: {
        scales: {
          x: { title: { display: true, text: "KL from the SFT model (nats)" }, beginAtZero: true },
          y: { title: { display: true, text: chart.score } },
        },
        plugins: { tooltip: { callbacks: { label: function (item) {
          var p = item.raw;
          var who = p.n !== undefined ? "best-of-" + p.n : "v" + p.version + " " + (p.name || "");
          return who + ": KL " + p.x.toFixed(3) + ", " + chart.score + " " + p.y.toFixed(3);
        } } } },
      },
    });
  })();

  // 2. reward-model accuracy per version (round), validation and held-out labelers, with 95% intervals
  (function () {
    var rows = data.rm_accuracy.rows;
    var series = [["validation", "validation"], ["held_out", "held-out labelers"]];
    var ranges = {};
    var datasets = series.map(function (pair, i) {
      ranges[pair[1]] = rows.map(function (r) {
        var a = r[pair[0]];
        return a && a.low !== null && a.high !== null ? [a.low, a.high] : null;
      });
      return {
        label: pair[1], backgroundColor: palette[i] + "cc", borderColor: palette[i],
        data: rows.map(function (r) { return r[pair[0]] ? r[pair[0]].value : null; }),
      };
    });
    draw("rm-accuracy-chart", {
      type: "bar", data: { labels: rows.map(function (r) { return r.label; }), datasets: datasets },
      options: {
        scales: { y: { min: 0, max: 1, title: { display: true, text: "pairwise accuracy (chance 0.5)" } } },
        plugins: { errorBars: { ranges: ranges, factor: 1 } },
      },
      plugins: [window.ranklabErrorBars],
    });
  })();

  // 3. human evaluation: win rate against the parent (with its interval) and the per-criterion rates
  (function () {
    var human = data.human;
    var wins = human.wins;
    draw("human-win-chart", {
      type: "bar",
      data: { labels: wins.map(function (w) { return w.label + " (" + w.method + ")"; }), datasets: [{
        label: "win rate against the parent", backgroundColor: palette[2] + "cc", borderColor: palette[2],
        data: wins.map(function (w) { return w.win_rate; }),
      }] },
      options: {
        scales: { y: { min: 0, max: 1, title: { display: true, text: "share of comparisons won (ties half)" } } },
        plugins: { errorBars: { ranges: { "win rate against the parent": wins.map(function (w) { return [w.low, w.high]; }) }, factor: 1 } },
      },
      plugins: [window.ranklabErrorBars],
    });
    var versions = human.criteria;
    var datasets = human.flags.map(function (flag, i) {
      return {
        label: human.flag_titles[flag], yAxisID: "y", order: 1, backgroundColor: palette[(i + 1) % palette.length] + "cc",
        data: versions.map(function (v) { return pct(v.flags[flag].share); }),
      };
    });
    datasets.push({
      label: "mean rating (1–7)", type: "line", yAxisID: "rating", order: 0, borderColor: "#1d2330", backgroundColor: "#1d2330",
      pointRadius: 5, data: versions.map(function (v) { return v.mean_rating; }),
    });
    draw("human-criteria-chart", {
      type: "bar", data: { labels: versions.map(function (v) { return v.label; }), datasets: datasets },
      options: { scales: {
        y: { min: 0, max: 100, position: "left", title: { display: true, text: "outputs flagged (%)" } },
        rating: { min: 1, max: 7, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "mean rating" } },
      } },
    });
  })();
  document.body.dataset.modelCharts = "drawn";
})();
