// Jobs, schedules and models pages: live progress by polling the JSON API, metric charts, cancel, forms.
(function () {
  "use strict";
  var FINISHED = ["succeeded", "failed", "cancelled"];
  var palette = ["#2f6fdf", "#e07b39", "#1e8e4e", "#9b59b6", "#c0392b", "#16a085"];
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function api(method, url, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf, Accept: "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (resp) {
      if (resp.status === 204) return { ok: true, data: null };
      return resp.json().then(function (data) { return { ok: resp.ok, data: data }; });
    });
  }

  function parseJson(text, errorBox) {
    try {
      return JSON.parse(text || "{}");
    } catch (e) {
      errorBox.textContent = "params is not valid JSON: " + e.message;
      return null;
    }
  }

  // ---- jobs list: queue form and live table ----
  var queueForm = document.getElementById("queue-job");
  var paramForm = window.ranklabParamForm;
  if (queueForm) {
    // each kind has its own params form (generated from its JSON Schema); only the chosen kind's counts
    var kindSelect = queueForm.elements.kind;
    var showKind = function () {
      queueForm.querySelectorAll("fieldset[data-kind]").forEach(function (set) {
        var mine = set.dataset.kind === kindSelect.value;
        set.hidden = !mine;
        set.disabled = !mine;
      });
      document.getElementById("queue-error").textContent = "";
      paramForm.syncRaw(queueForm);
    };
    if (kindSelect.tagName === "SELECT") { kindSelect.addEventListener("change", showKind); showKind(); }
    queueForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var box = document.getElementById("queue-error");
      box.textContent = "";
      var params = paramForm.params(queueForm, box);
      if (params === null) return;
      api("POST", queueForm.dataset.api, { kind: queueForm.elements.kind.value, params: params }).then(function (r) {
        if (r.ok) window.location.href = queueForm.dataset.jobUrl + "/" + r.data.id;
        else box.textContent = r.data.detail || "the job was not queued";
      });
    });
  }

  var table = document.getElementById("jobs-table");
  function refreshTable() {
    api("GET", table.dataset.api + "?limit=100").then(function (r) {
      if (!r.ok) return;
      var busy = false;
      r.data.forEach(function (job) {
        var row = table.querySelector('tr[data-job-id="' + job.id + '"]');
        if (FINISHED.indexOf(job.status) < 0) busy = true;
        if (!row) return;
        var status = row.querySelector(".status");
        status.textContent = job.status;
        status.className = "status status-" + job.status;
        row.querySelector("progress").value = Math.round(job.progress * 100);
        row.querySelector(".pct").textContent = Math.round(job.progress * 100) + "%";
      });
      if (busy) setTimeout(refreshTable, 3000);
    });
  }
  if (table && table.querySelector(".status-queued, .status-running")) setTimeout(refreshTable, 3000);

  // ---- the Workers section: re-read from the page itself now and then (workers come, go idle, stop) ----
  var workers = document.getElementById("workers");
  var WORKERS_MS = window.RANKLAB_WORKERS_REFRESH_MS || 10000;
  function refreshWorkers() {
    if (document.hidden) { setTimeout(refreshWorkers, WORKERS_MS); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        var fresh = html && new DOMParser().parseFromString(html, "text/html").getElementById("workers");
        if (fresh) workers.replaceChildren.apply(workers, Array.from(fresh.childNodes, function (n) {
          return document.importNode(n, true);
        }));
      })
      .catch(function () { /* a missed refresh is retried at the next one */ })
      .then(function () { setTimeout(refreshWorkers, WORKERS_MS); });
  }
  if (workers) setTimeout(refreshWorkers, WORKERS_MS);

  // ---- one job: live fields, metrics chart, cancel ----
  var jobCard = document.getElementById("job");
  var chart = null;

  function chartData(points) {
    var keys = [];
    points.forEach(function (p) {
      Object.keys(p).forEach(function (k) {
        if (k !== "step" && k !== "at" && typeof p[k] === "number" && keys.indexOf(k) < 0) keys.push(k);
      });
    });
    // Rates and training curves first (shown); running counts after them (hidden until clicked in the legend).
    var headline = /per_s|loss|reward|kl|accuracy|entropy/;
    keys.sort(function (a, b) { return (headline.test(b) ? 1 : 0) - (headline.test(a) ? 1 : 0); });
    return {
      labels: points.map(function (p, i) { return p.step !== undefined ? p.step : i; }),
      datasets: keys.map(function (k, i) {
        return {
          label: k, data: points.map(function (p) { return p[k] === undefined ? null : p[k]; }),
          borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length] + "33",
          spanGaps: true, yAxisID: i === 0 ? "y" : "y" + i, hidden: i > 1,
        };
      }),
    };
  }

  // One point (a job that reports only its result, like an export) reads better as a table than as a chart.
  function showSummary(point) {
    var table = document.getElementById("metrics-summary");
    var body = table.querySelector("tbody");
    body.textContent = "";
    Object.keys(point).forEach(function (k) {
      if (k === "at") return;
      var row = document.createElement("tr");
      var name = document.createElement("th");
      var value = document.createElement("td");
      name.textContent = k;
      value.textContent = String(point[k]);
      row.append(name, value);
      body.append(row);
    });
    table.hidden = false;
  }

  function drawChart(points) {
    var canvas = document.getElementById("metrics-chart");
    document.getElementById("metrics-empty").hidden = points.length > 0;
    document.body.dataset.chartPoints = String(points.length);
    if (canvas) canvas.hidden = points.length < 2;
    if (points.length === 1) { showSummary(points[0]); return; }
    document.getElementById("metrics-summary").hidden = true;
    if (!canvas || typeof Chart === "undefined" || points.length === 0) return;
    var data = chartData(points);
    if (chart) {
      chart.data = data;
      chart.update("none");
    } else {
      var scales = { x: { title: { display: true, text: "step" } } };
      data.datasets.forEach(function (d, i) { scales[d.yAxisID] = { position: i % 2 ? "right" : "left", display: i < 2 }; });
      chart = new Chart(canvas, { type: "line", data: data, options: { animation: false, responsive: true, scales: scales } });
    }
  }

  function showJob(job) {
    var pct = Math.round(job.progress * 100);
    var set = function (name, value) {
      var el = jobCard.querySelector('[data-field="' + name + '"]') || document.querySelector('[data-field="' + name + '"]');
      if (el) el.textContent = value;
      return el;
    };
    var status = set("status", job.status);
    status.className = "status status-" + job.status;
    jobCard.querySelector("progress").value = pct;
    set("percent", pct + "%");
    set("worker", ((job.worker_id || "") + " " + (job.device || "")).trim());
    set("attempts", job.attempts + "/" + job.max_attempts);
    set("error", job.error || "");
    set("log_tail", job.log_tail);
    var finished = FINISHED.indexOf(job.status) >= 0;
    var cancel = document.getElementById("cancel-job");
    cancel.disabled = finished || job.cancel_requested;
    cancel.textContent = job.cancel_requested && !finished ? "Cancelling…" : "Cancel";
    var file = document.getElementById("job-file");
    if (file) file.hidden = job.status !== "succeeded";
    drawChart(job.metrics || []);
    jobCard.dataset.status = job.status;
    return finished;
  }

  function poll() {
    api("GET", jobCard.dataset.api).then(function (r) {
      if (r.ok && !showJob(r.data)) setTimeout(poll, 2000);
    });
  }

  if (jobCard) {
    var initial = JSON.parse(document.getElementById("job-data").textContent);
    if (!showJob(initial)) setTimeout(poll, 2000);
    document.getElementById("cancel-job").addEventListener("click", function () {
      if (!window.confirm("Cancel this job? A running job stops at its next checkpoint.")) return;
      api("POST", jobCard.dataset.cancel).then(function (r) {
        if (r.ok) { showJob(r.data); setTimeout(poll, 1000); }
        else set_error(r.data.detail);
      });
    });
  }
  function set_error(message) {
    var el = document.querySelector('[data-field="error"]');
    if (el) el.textContent = message || "";
  }

  // ---- schedules ----
  var scheduleForm = document.getElementById("new-schedule");
  if (scheduleForm) {
    // a new kind brings its own starting params, unless the researcher has edited them
    var kindSelect = scheduleForm.elements.kind;
    kindSelect.addEventListener("change", function () {
      var box = scheduleForm.elements.params;
      var untouched = Array.prototype.some.call(kindSelect.options, function (o) { return o.dataset.params === box.value; });
      if (untouched || !box.value.trim()) box.value = kindSelect.selectedOptions[0].dataset.params;
    });
    scheduleForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var box = document.getElementById("schedule-error");
      box.textContent = "";
      var params = parseJson(scheduleForm.elements.params.value, box);
      if (params === null) return;
      var minNew = scheduleForm.elements.min_new_rankings.value;
      var body = {
        name: scheduleForm.elements.name.value, kind: scheduleForm.elements.kind.value, params: params,
        cron: scheduleForm.elements.cron.value.trim() || null, min_new_rankings: minNew ? parseInt(minNew, 10) : null,
      };
      api("POST", scheduleForm.dataset.api, body).then(function (r) {
        if (r.ok) window.location.reload();
        else box.textContent = r.data.detail || "the schedule was not created";
      });
    });
  }
  document.querySelectorAll("tr[data-schedule-id]").forEach(function (row) {
    row.querySelector(".toggle-schedule").addEventListener("change", function (ev) {
      api("PATCH", row.dataset.api, { enabled: ev.target.checked });
    });
    row.querySelector(".delete-schedule").addEventListener("click", function () {
      if (window.confirm("Delete this schedule? Jobs it queued stay.")) {
        api("DELETE", row.dataset.api).then(function () { window.location.reload(); });
      }
    });
  });

  // ---- models page: reward versions side by side ----
  var rewardData = document.getElementById("reward-chart-data");
  if (rewardData && window.Chart) {
    var rewards = JSON.parse(rewardData.textContent).slice().reverse();  // oldest first, left to right
    var labels = rewards.map(function (r) { return "v" + r.id; });
    var ks = {};
    rewards.forEach(function (r) { Object.keys(r.accuracy_by_k || {}).forEach(function (k) { ks[k] = true; }); });
    var datasets = [{ label: "all pairs", data: rewards.map(function (r) { return r.val_accuracy; }), backgroundColor: palette[0] }];
    Object.keys(ks).sort().forEach(function (k, i) {
      datasets.push({
        label: "K = " + k, backgroundColor: palette[(i + 1) % palette.length],
        data: rewards.map(function (r) { return (r.accuracy_by_k || {})[k] === undefined ? null : r.accuracy_by_k[k]; }),
      });
    });
    new Chart(document.getElementById("reward-accuracy-chart"), {
      type: "bar", data: { labels: labels, datasets: datasets },
      options: { animation: false, scales: { y: { min: 0, max: 1, title: { display: true, text: "pairwise accuracy" } } } },
    });
    var newest = rewards[rewards.length - 1];
    var bins = (newest.calibration || []).filter(function (b) { return b.count > 0; });
    new Chart(document.getElementById("reward-calibration-chart"), {
      type: "scatter",
      data: { datasets: [
        { label: "v" + newest.id + " (bins)", data: bins.map(function (b) { return { x: b.predicted, y: b.observed }; }),
          backgroundColor: palette[1], pointRadius: 5 },
        { label: "perfect calibration", type: "line", data: [{ x: 0.5, y: 0.5 }, { x: 1, y: 1 }],
          borderColor: "#999", borderDash: [4, 4], pointRadius: 0 },
      ] },
      options: { animation: false, scales: {
        x: { min: 0.5, max: 1, title: { display: true, text: "predicted P(better)" } },
        y: { min: 0, max: 1, title: { display: true, text: "observed share better" } },
      } },
    });
  }

  // ---- models page: start a round ----
  var roundForm = document.getElementById("start-round");
  if (roundForm) {
    roundForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var box = document.getElementById("round-error");
      box.textContent = "";
      var params = paramForm.params(roundForm, box);
      if (params === null) return;
      api("POST", roundForm.dataset.api, params).then(function (r) {
        if (r.ok) window.location.reload();
        else box.textContent = r.data.detail || "the round was not started";
      });
    });
  }
})();
