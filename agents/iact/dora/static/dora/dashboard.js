// Draws the four charts from the JSON endpoints, with the page's own filters, and lists the rows
// behind a bucket when it is clicked. No inline script,
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
  // Drill-down: a click on a bucket lists the rows behind its value (built with textContent, never
  // innerHTML: titles and ids come from senders). Row ids stay in the CSV; the panel shows what a
  // person scans for, and links to the CI run or incident.
  var hidden = { bucket: true, deployment_id: true, incident_id: true, url: true };
  function cell(tr, tag, text) {
    var el = document.createElement(tag);
    el.textContent = text === null || text === undefined ? "" : String(text);
    tr.appendChild(el);
    return el;
  }
  function drill(canvas, label) {
    var panel = canvas.closest("figure").querySelector(".drill");
    var params = "metric=" + canvas.dataset.metric + "&" + query + "&bucket=" + encodeURIComponent(label);
    panel.hidden = false;
    panel.textContent = "loading " + label + "…";
    fetch(charts.dataset.drill + "?" + params, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (body) { if (!r.ok) { throw new Error(body.error || r.status); } return body; }); })
      .then(function (body) {
        panel.textContent = "";
        var head = document.createElement("p");
        head.textContent = body.rows.length + " row(s) behind " + label + " (value " + (body.value === null ? "no data" : body.value) + ") ";
        var csv = document.createElement("a");
        csv.href = charts.dataset.export + "?" + params;
        csv.textContent = "as CSV";
        head.appendChild(csv);
        panel.appendChild(head);
        if (!body.rows.length) { return; }
        var table = document.createElement("table");
        var columns = body.columns.filter(function (c) { return !hidden[c]; });
        var tr = document.createElement("tr");
        columns.concat(["link"]).forEach(function (c) { cell(tr, "th", c.replace(/_/g, " ")); });
        table.appendChild(tr);
        body.rows.forEach(function (row) {
          var line = document.createElement("tr");
          columns.forEach(function (c) { cell(line, "td", row[c]); });
          var link = cell(line, "td", "");
          if (/^https?:\/\//.test(row.url || "")) {
            var a = document.createElement("a");
            a.href = row.url; a.textContent = "open"; a.rel = "noopener noreferrer"; a.target = "_blank";
            link.appendChild(a);
          }
          table.appendChild(line);
        });
        panel.appendChild(table);
        panel.dataset.rows = String(body.rows.length);
      })
      .catch(function (err) { panel.textContent = "could not load the rows: " + err.message; });
  }
  // Incidents as dashed vertical markers at their open time (Chart.js's annotation plugin is not
  // vendored; this is all of it that the page needs). position = bucket index + fraction into it.
  var incidentMarkers = {
    id: "incidentMarkers",
    afterDatasetsDraw: function (chart, _args, options) {
      var marks = options.marks || [];
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      var step = chart.data.labels.length > 1 ? x.getPixelForValue(1) - x.getPixelForValue(0) : area.right - area.left;
      ctx.save();
      ctx.strokeStyle = "#c0392b"; ctx.lineWidth = 1; ctx.setLineDash([4, 3]);
      marks.forEach(function (m) {
        var i = Math.floor(m.position);
        // A line's end points sit on the axis's edges: keep their half-buckets inside the plot.
        var px = Math.min(area.right, Math.max(area.left, x.getPixelForValue(i) + (m.position - i - 0.5) * step));
        ctx.beginPath(); ctx.moveTo(px, area.top); ctx.lineTo(px, area.bottom); ctx.stroke();
      });
      ctx.restore();
      chart.canvas.dataset.markers = String(marks.length);
    }
  };
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
        // The bucket in progress (data.partial) is drawn lighter; an empty period stays a gap in
        // a line (spanGaps false): joining across it would draw a trend nobody measured.
        var partial = data.partial || [];
        var fill = data.labels.map(function (_, i) { return partial[i] ? s.color + "66" : s.color; });
        new Chart(canvas, {
          type: s.type,
          data: { labels: data.labels, datasets: [{ label: s.label, data: data[s.key], backgroundColor: fill,
                  borderColor: s.color, pointBackgroundColor: fill, spanGaps: false, tension: 0 }] },
          options: { animation: false, responsive: true, maintainAspectRatio: false,
                     // A click anywhere in a bucket's column picks it: points are small targets.
                     interaction: { mode: "index", intersect: false },
                     onClick: function (_event, elements) {
                       if (elements.length) { drill(canvas, data.labels[elements[0].index]); }
                     },
                     scales: { y: { beginAtZero: true } },
                     plugins: { legend: { display: false }, incidentMarkers: { marks: data.incidents || [] } } },
          plugins: [incidentMarkers]
        });
        canvas.dataset.drawn = "true";
      })
      .catch(function (err) { canvas.dataset.drawn = "error"; canvas.insertAdjacentText("afterend", "could not load: " + err); });
  });
})();
