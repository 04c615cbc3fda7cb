// The live tail: poll the same search as JSON every 2 s and put rows newer than the newest shown
// on top of the table; the button pauses and resumes. No extra server: gunicorn answers the polls.
(function () {
  "use strict";
  var button = document.getElementById("tail-toggle");
  var body = document.querySelector("#log-rows tbody");
  if (!button || !body) { return; }
  var state = document.getElementById("tail-state");
  var timer = null;
  var newest = null;
  var first = body.querySelector("tr.log-row a");
  if (first) { newest = new URL(first.href).searchParams.get("ts"); }

  function cell(text) { var td = document.createElement("td"); td.textContent = text || ""; return td; }

  function poll() {
    var url = button.dataset.tailUrl + "&range=15m";
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (data) {
      var fresh = (data.rows || []).filter(function (row) {
        return newest === null || Date.parse(row.ts) > Date.parse(newest);
      });
      fresh.reverse().forEach(function (row) {
        var tr = document.createElement("tr");
        tr.className = "log-row tail";
        tr.appendChild(cell(row.ts.replace("T", " ").slice(0, 23)));
        tr.appendChild(cell(row.host));
        var cols = row.table === "application" ? ["app", "level", "logger"] : ["source", "severity", "program"];
        cols.forEach(function (c) { tr.appendChild(cell(row[c])); });
        var msg = cell(row.message); msg.className = "message"; tr.appendChild(msg);
        body.insertBefore(tr, body.firstChild);
        newest = row.ts;
      });
      var none = document.getElementById("no-rows");
      if (fresh.length && none) { none.parentNode.remove(); }
      state.textContent = "live: last poll " + new Date().toISOString().slice(11, 19) + " UTC";
    }).catch(function (err) { state.textContent = "tail paused by an error: " + err; stop(); });
  }
  function stop() { clearInterval(timer); timer = null; button.textContent = "Live tail"; }
  button.addEventListener("click", function () {
    if (timer) { stop(); state.textContent = "paused"; return; }
    button.textContent = "Pause"; poll(); timer = setInterval(poll, 2000);
  });
}());
