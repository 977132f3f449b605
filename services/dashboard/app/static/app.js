// Live run pages: the server streams the run's state over server-sent events; this colours the graph's
// nodes and updates the task table, and reloads the page once the run ended (to show its outputs).
(function () {
  "use strict";
  var run = document.getElementById("run");
  if (!run || !run.dataset.live || !window.EventSource) return;
  var indexEl = document.getElementById("task-index");
  var index = indexEl ? JSON.parse(indexEl.textContent || "{}") : {};
  function cls(s) { return "st-" + String(s || "none").toLowerCase().replace(/[^a-z0-9_]/g, ""); }
  function setBadge(el, s) { if (el) { el.className = "badge " + cls(s); el.textContent = s; } }
  var es = new EventSource(run.dataset.live);
  es.addEventListener("state", function (ev) {
    var st = JSON.parse(ev.data);
    setBadge(document.getElementById("run-state"), st.state);
    var err = document.getElementById("run-error");
    if (err && st.error) { err.textContent = st.error; err.hidden = false; }
    Object.keys(st.tasks || {}).forEach(function (path) {
      var i = index[path];
      if (i === undefined) return;
      var t = st.tasks[path];
      var node = document.getElementById("task_" + i);
      if (node) node.setAttribute("class", "node " + cls(t.state));
      var row = document.getElementById("row-" + i);
      if (!row) return;
      setBadge(row.querySelector("[data-cell=state]"), t.state);
      var a = row.querySelector("[data-cell=attempts]"); if (a) a.textContent = t.attempts || 0;
      var d = row.querySelector("[data-cell=took]"); if (d) d.textContent = t.took || "";
    });
    Object.keys(st.loops || {}).forEach(function (path) {
      var i = index[path];
      var row = i === undefined ? null : document.getElementById("row-" + i);
      var c = row && row.querySelector("[data-cell=iterations]");
      if (c) c.textContent = st.loops[path][1] + " of " + st.loops[path][0] + " ended";
    });
  });
  es.addEventListener("done", function () { es.close(); window.location.reload(); });
})();

// The events page: rows for the server-sent "cloudevent" events of the filtered tail, newest first.
(function () {
  "use strict";
  var table = document.getElementById("event-tail");
  if (!table || !table.dataset.live || !window.EventSource) return;
  var body = table.querySelector("tbody"), status = document.getElementById("tail-status");
  function cell(tr, text, code) {
    var td = document.createElement("td");
    if (code) { var c = document.createElement("code"); c.textContent = text; td.appendChild(c); } else td.textContent = text;
    tr.appendChild(td);
  }
  var es = new EventSource(table.dataset.live);
  es.onopen = function () { status.textContent = "live"; status.className = "badge st-running"; };
  es.onerror = function () { status.textContent = "reconnecting"; status.className = "badge st-pending"; };
  es.addEventListener("problem", function (ev) { status.textContent = JSON.parse(ev.data); status.className = "badge st-failed"; });
  es.addEventListener("cloudevent", function (ev) {
    var e = JSON.parse(ev.data), tr = document.createElement("tr");
    tr.className = "event";
    tr.dataset.type = e.type;
    cell(tr, e.time || ""); cell(tr, e.type, true); cell(tr, e.source); cell(tr, e.subject || ""); cell(tr, e.namespace || "");
    var td = document.createElement("td"), det = document.createElement("details"), sum = document.createElement("summary"), pre = document.createElement("pre");
    sum.textContent = e.id; pre.textContent = e.data || ""; det.appendChild(sum); det.appendChild(pre); td.appendChild(det); tr.appendChild(td);
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  });
})();

// The notebooks page reloads while a server is starting or restarting, to show it running.
(function () {
  "use strict";
  if (document.querySelector("#nb-table tr[data-state=Starting], #nb-table tr[data-state=Restarting]")) {
    window.setTimeout(function () { window.location.reload(); }, 2000);
  }
})();
