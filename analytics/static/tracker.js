/*
 * Analytics tracker. Sends, to the host this script is served from (POST /api/events):
 * a page view with path, referrer, screen width and language. No cookies, no identifiers
 * stored; does nothing when Do-Not-Track or Global Privacy Control is on.
 * Configure with attributes on this script tag: data-site="SITE_ID" (required).
 */
(function () {
  "use strict";
  try {
    var script = document.currentScript;
    var site = script && script.getAttribute("data-site");
    if (!site || navigator.doNotTrack === "1" || navigator.globalPrivacyControl) return;
    var endpoint = new URL("/api/events", script.src).href;
    var body = JSON.stringify({
      site: site,
      name: "pageview",
      url: location.href,
      referrer: document.referrer || null,
      screen: screen.width,
      lang: navigator.language
    });
    fetch(endpoint, { method: "POST", body: body, keepalive: true, headers: { "Content-Type": "text/plain" } })
      .catch(function () {});
  } catch (e) { /* never break the host page */ }
})();
