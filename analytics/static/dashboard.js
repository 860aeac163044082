/* Draws the dashboards' charts. Each chart is a JSON figure in
   <script type="application/json" data-chart="ELEMENT_ID">, written by the server
   (analytics/charts/embed.py) and drawn here with Plotly: the pages' CSP allows no inline script.
   Loaded after /assets/plotly.min.js (both deferred, so in order). Also: the benefit picker
   applies itself when changed, a click on a bar of a chart marked data-filter filters the
   view on that bar's label, and cards marked data-fragment are fetched after the page. */
(function () {
  "use strict";
  function draw() {
    if (!window.Plotly) return;
    var blocks = document.querySelectorAll('script[type="application/json"][data-chart]');
    Array.prototype.forEach.call(blocks, function (block) {
      var target = document.getElementById(block.getAttribute("data-chart"));
      if (!target) return;
      try {
        var figure = JSON.parse(block.textContent);
        window.Plotly.newPlot(target, figure.data, figure.layout, figure.config);
        var dimension = target.getAttribute("data-filter");
        if (dimension && target.on) {
          target.on("plotly_click", function (event) {
            var point = event && event.points && event.points[0];
            if (point && point.label != null) filterOn(dimension, String(point.label));
          });
        }
      } catch (err) {
        target.textContent = "This chart could not be drawn: " + err.message;
      }
    });
  }
  // A value as the filter syntax writes it (analytics/segments.py): backslash, comma and a
  // leading "!" escaped with a backslash.
  function escapeValue(value) {
    var text = value.replace(/\\/g, "\\\\").replace(/,/g, "\\,");
    return text.charAt(0) === "!" ? "\\" + text : text;
  }
  function filterOn(dimension, value) {
    var url = new URL(window.location.href);
    url.searchParams.set(dimension, escapeValue(value));
    window.location.assign(url.toString());
  }
  // The countries map: shapes from /static/world.json (Natural Earth, built by
  // scripts/build_world_map.py), filled by visitors, drawn as filled polygons on plain axes
  // (longitude, latitude). Plotly's own geo maps would fetch their base map from a CDN.
  var EMPTY_FILL = "#e8eaee";
  var FULL = [37, 99, 235]; // the darkest fill, for the country with the most visitors
  function fillFor(share) {
    var light = [219, 234, 254];
    var rgb = light.map(function (c, i) { return Math.round(c + (FULL[i] - c) * share); });
    return "rgb(" + rgb.join(",") + ")";
  }
  function outline(rings) {
    var x = [], y = [];
    rings.forEach(function (ring) {
      for (var i = 0; i < ring.length; i += 2) { x.push(ring[i]); y.push(ring[i + 1]); }
      x.push(null); y.push(null);
    });
    return { x: x, y: y };
  }
  function drawMap(target, counts, world) {
    var most = 0;
    Object.keys(counts).forEach(function (code) { most = Math.max(most, counts[code].visitors); });
    var rest = [];
    var traces = [];
    Object.keys(world).forEach(function (code) {
      var found = counts[code];
      if (!found) { rest.push(world[code]); return; }
      var line = outline(world[code]);
      traces.push({
        type: "scatter", mode: "lines", x: line.x, y: line.y, fill: "toself",
        fillcolor: fillFor(Math.sqrt(found.visitors / most)), line: { color: "#fff", width: 0.5 },
        name: found.name, customdata: [code],
        hovertemplate: found.name + ": " + found.visitors.toLocaleString("en-US") + " visitors<extra></extra>",
        hoveron: "fills"
      });
    });
    var grey = outline([].concat.apply([], rest));
    traces.unshift({ type: "scatter", mode: "lines", x: grey.x, y: grey.y, fill: "toself",
      fillcolor: EMPTY_FILL, line: { color: "#fff", width: 0.5 }, hoverinfo: "skip" });
    var hidden = { visible: false, fixedrange: true };
    var layout = {
      margin: { l: 0, r: 0, t: 0, b: 0 }, height: 340, showlegend: false, hovermode: "closest",
      xaxis: Object.assign({ range: [-170, 190] }, hidden),
      yaxis: Object.assign({ range: [-58, 84], scaleanchor: "x" }, hidden),
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)"
    };
    window.Plotly.newPlot(target, traces, layout, { displayModeBar: false, responsive: true });
    if (target.on) {
      target.on("plotly_click", function (event) {
        var trace = event && event.points && event.points[0] && event.points[0].data;
        if (trace && trace.customdata) filterOn("country", trace.customdata[0]);
      });
    }
  }
  function maps() {
    var blocks = document.querySelectorAll('script[type="application/json"][data-map]');
    Array.prototype.forEach.call(blocks, function (block) {
      var target = document.getElementById(block.getAttribute("data-map"));
      if (!target || !window.Plotly) return;
      fetch(target.getAttribute("data-world"))
        .then(function (r) { return r.json(); })
        .then(function (world) { drawMap(target, JSON.parse(block.textContent), world); })
        .catch(function (err) { target.textContent = "The map could not be drawn: " + err.message; });
    });
  }
  function autosubmit() {
    var pickers = document.querySelectorAll("select[data-autosubmit-item]");
    Array.prototype.forEach.call(pickers, function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }
  // Cards the server sends apart (data-fragment: the URL of their HTML), because they read raw
  // events and would hold the rest of the page back: the Overview's Goals card.
  function fragments() {
    var cards = document.querySelectorAll("[data-fragment]");
    Array.prototype.forEach.call(cards, function (card) {
      fetch(card.getAttribute("data-fragment"), { credentials: "same-origin" })
        .then(function (r) {
          if (!r.ok) throw new Error("the server answered " + r.status);
          return r.text();
        })
        .then(function (html) { card.outerHTML = html; })
        .catch(function (err) {
          var note = card.querySelector("[data-loading]");
          if (note) note.textContent = "This card could not be loaded: " + err.message;
        });
    });
  }
  function ready() { draw(); maps(); autosubmit(); fragments(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
