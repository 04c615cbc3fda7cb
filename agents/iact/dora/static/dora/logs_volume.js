// The volume chart above the console's results: rows per minute or hour of the same search, stacked
// by level (or severity), from /logs/volume/ with the page's own query string. A bucket the count's
// limit left out arrives as null and is not drawn (never as a zero); the note under the chart says so.
(function () {
  "use strict";
  var canvas = document.getElementById("log-volume");
  if (!canvas || typeof Chart === "undefined") { return; }
  var note = document.getElementById("log-volume-note");
  var bucketName = document.getElementById("log-volume-bucket");
  // Most severe in red, the routine in blue/grey; values outside these get the spare colours in turn.
  var colors = {
    CRITICAL: "#7b1f1f", ERROR: "#c0392b", WARNING: "#d68910", INFO: "#2f6fb0", DEBUG: "#95a5a6",
    emerg: "#4a0d0d", alert: "#7b1f1f", crit: "#a93226", err: "#c0392b", warning: "#d68910",
    notice: "#8a4fb8", info: "#2f6fb0", debug: "#95a5a6"
  };
  var spare = ["#16a085", "#6c5ce7", "#e17055", "#00b894", "#636e72"];

  function label(iso, bucket) {
    // Labels in UTC, like the table: "HH:MM" per minute, "MM-DD HH:00" per hour.
    return bucket === "minute" ? iso.slice(11, 16) : iso.slice(5, 10) + " " + iso.slice(11, 16);
  }

  fetch(canvas.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) {
      return r.json().then(function (body) { if (!r.ok) { throw new Error(body.error || r.status); } return body; });
    })
    .then(function (data) {
      bucketName.textContent = data.bucket;
      var datasets = data.series.map(function (s, i) {
        var color = colors[s.name] || spare[i % spare.length];
        return { label: s.name, data: s.counts, backgroundColor: color, borderColor: color };
      });
      new Chart(canvas, {
        type: "bar",
        data: { labels: data.labels.map(function (l) { return label(l, data.bucket); }), datasets: datasets },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { x: { stacked: true, ticks: { maxTicksLimit: 24 } }, y: { stacked: true, beginAtZero: true } },
          plugins: { legend: { position: "right" } }
        }
      });
      note.textContent = data.note;
      if (data.capped) { note.className = "hint partial"; canvas.dataset.capped = "true"; }
      canvas.dataset.total = data.total;
      canvas.dataset.drawn = "true";
    })
    .catch(function (err) { canvas.dataset.drawn = "error"; note.textContent = "The volume chart could not load: " + err; });
}());
