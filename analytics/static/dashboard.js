/* Draws the dashboards' charts. Each chart is a JSON figure in
   <script type="application/json" data-chart="ELEMENT_ID">, written by the server
   (analytics/charts/embed.py) and drawn here with Plotly: the pages' CSP allows no inline script.
   Loaded after /assets/plotly.min.js (both deferred, so in order). Also: the benefit picker
   applies itself when changed, and a click on a bar of a chart marked data-filter filters the
   view on that bar's label. */
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
  function autosubmit() {
    var pickers = document.querySelectorAll("select[data-autosubmit-item]");
    Array.prototype.forEach.call(pickers, function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }
  function ready() { draw(); autosubmit(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
