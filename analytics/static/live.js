/* The live view refreshes itself: every 10 s it fetches the JSON of /live.json (same filters as
   the page) and rewrites the numbers, the pages table (as text: values are never HTML) and the
   per-minute chart. It stops while the tab is hidden and catches up when it is shown again. No
   inline script: the pages' CSP allows none. */
(function () {
  "use strict";
  var timer = null;
  var root = document.getElementById("live");
  if (!root) return;
  var source = root.getAttribute("data-live-source");
  var EVERY = Number(root.getAttribute("data-live-every")) || 10000;

  function cell(text, numeric) {
    var td = document.createElement("td");
    td.textContent = text;
    if (numeric) td.className = "num";
    return td;
  }
  function show(state) {
    Object.keys(state.numbers).forEach(function (key) {
      var el = document.querySelector('[data-live="' + key + '"]');
      if (el) el.textContent = state.numbers[key].toLocaleString("en-US");
    });
    var body = document.getElementById("live-pages");
    while (body.firstChild) body.removeChild(body.firstChild);
    state.pages.forEach(function (row) {
      var tr = document.createElement("tr");
      tr.appendChild(cell(row.path, false));
      tr.appendChild(cell(row.visitors.toLocaleString("en-US"), true));
      body.appendChild(tr);
    });
    document.getElementById("live-empty").hidden = state.pages.length > 0;
    document.getElementById("live-at").textContent = state.at;
    var chart = document.getElementById("chart-live_minutes");
    if (chart && window.Plotly) {
      window.Plotly.react(chart, state.figure.data, state.figure.layout, state.figure.config);
    }
    root.setAttribute("data-refreshed", String((Number(root.getAttribute("data-refreshed")) || 0) + 1));
  }
  function refresh() {
    fetch(source, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (state) { if (state) show(state); })
      .catch(function () { /* a missed refresh is retried at the next tick */ });
  }
  function start() { if (timer === null) timer = window.setInterval(refresh, EVERY); }
  function stop() { if (timer !== null) { window.clearInterval(timer); timer = null; } }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) stop();
    else { refresh(); start(); }
  });
  if (!document.hidden) start();
})();
