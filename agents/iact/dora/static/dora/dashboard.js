// Draws the four charts from the JSON endpoints, with the page's own filters. No inline script,
// so nginx can send a strict Content-Security-Policy.
(function () {
  "use strict";
  document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });
  var charts = document.getElementById("charts");
  if (!charts || typeof Chart === "undefined") { return; }
  var query = charts.dataset.query;
  var spec = {
    deployments: { type: "bar", key: "deployments", label: "deployments", color: "#2f6fb0" },
    lead: { type: "line", key: "median_hours", label: "median lead time (h)", color: "#8a4fb8" },
    cfr: { type: "line", key: "percent", label: "change failure rate (%)", color: "#c0392b" },
    mttr: { type: "line", key: "median_hours", label: "median recovery (h)", color: "#d68910" }
  };
  var embedded = document.getElementById("chart-data");
  var series = embedded ? JSON.parse(embedded.textContent) : {};
  function load(canvas) {
    // The page carries its series; fetching from the chart endpoint is the fallback.
    if (series[canvas.dataset.kind]) { return Promise.resolve(series[canvas.dataset.kind]); }
    return fetch(canvas.dataset.url + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }
  charts.querySelectorAll("canvas").forEach(function (canvas) {
    var s = spec[canvas.dataset.kind];
    load(canvas)
      .then(function (data) {
        new Chart(canvas, {
          type: s.type,
          data: { labels: data.labels, datasets: [{ label: s.label, data: data[s.key], backgroundColor: s.color,
                  borderColor: s.color, spanGaps: true, tension: 0 }] },
          options: { animation: false, responsive: true, maintainAspectRatio: false,
                     scales: { y: { beginAtZero: true } }, plugins: { legend: { display: false } } }
        });
        canvas.dataset.drawn = "true";
      })
      .catch(function (err) { canvas.dataset.drawn = "error"; canvas.insertAdjacentText("afterend", "could not load: " + err); });
  });
})();
