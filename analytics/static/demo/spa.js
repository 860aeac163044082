/*
 * The demo's single-page app: links marked data-spa change the URL with history.pushState and
 * redraw #view without loading a page; the back button redraws too. It knows nothing about
 * analytics: the tracker notices the navigation and the list drawn on the "plans" tab by itself.
 */
(function () {
  "use strict";
  var view = document.getElementById("view");
  var base = view.getAttribute("data-base");
  var PLANS = ["basic", "family", "senior", "student"];

  function escape(text) {
    var div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML;
  }

  function draw() {
    var tab = location.pathname.slice(base.length).replace(/\/$/, "");
    if (tab === "plans") {
      view.innerHTML =
        "<h2>Plans</h2><ul data-track-list=\"plans\">" +
        PLANS.map(function (plan) {
          return '<li data-track-item="' + plan + '"><button type="button">' + escape(plan) +
            " plan</button></li>";
        }).join("") +
        "</ul>";
    } else if (tab === "about") {
      view.innerHTML = "<h2>About</h2><p>This tab was drawn without loading a page.</p>";
    } else {
      view.innerHTML = "<h2>Overview</h2><p>Pick a tab: the address changes, the page stays.</p>";
    }
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-spa]");
    if (!link) return;
    event.preventDefault();
    if (link.href !== location.href) history.pushState({}, "", link.href);
    draw();
  });
  window.addEventListener("popstate", draw);
  draw();
})();
