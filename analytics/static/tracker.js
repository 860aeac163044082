/*
 * Analytics tracker: one script tag, no cookies, no dependencies.
 *
 *   <script defer src="https://ANALYTICS_HOST/tracker.js" data-site="SITE_ID"></script>
 *
 * Sends JSON arrays of events to POST /api/events on the host this script comes from, as
 * text/plain (no CORS preflight). Every event carries
 *   {site, name, url, referrer, session, eid, ts, screen, lang} and, by kind:
 *   pageview     on load and on single-page-app navigation (pushState, replaceState, popstate)
 *   NAME         a click on an element with data-track="NAME", its data-track-* attributes as props
 *   outbound     a click on a link to another host: props.url
 *   download     a click on a link to a file (by extension, or a download attribute): props.url
 *   scroll       props.depth 25, 50, 75, 100: each once per page view
 *   form_submit  props.form = the form's id or name, never a field value
 *   impression   an item (data-track-item="ID" inside data-track-list="LIST") at least half
 *                visible: item {id, position (1-based), list_size}, category LIST
 *   item_click   a click on such an item: same item and category
 *   and whatever a page sends with window.analytics.track(name, props).
 * Off switches, on this script tag: data-auto-pageview, data-clicks, data-outbound,
 * data-downloads, data-scroll, data-forms, data-lists = "false". With Do-Not-Track or Global
 * Privacy Control on it sends nothing, unless data-respect-dnt="false" (the server still honours
 * the DNT and Sec-GPC headers).
 * Stored on the device: a random per-tab session id in sessionStorage, nothing else.
 * Events are queued and sent in batches (fetch with keepalive), and with sendBeacon when the page
 * is hidden; a failed batch is sent once more later with the same event ids (eid), which the
 * server stores once.
 *
 * The app serves this file minified (analytics/tracker.py); keep it ES5 so that the minifier
 * can parse it.
 */
// The outer try catches what could fail while starting (an old browser, a missing currentScript);
// every listener is wrapped by safe(). Nothing here may throw into the host page.
try {
  (function (window, document, navigator, location) {
    function safe(fn) {
      return function () {
        try {
          return fn.apply(this, arguments);
        } catch (e) {}
      };
    }

    // Listen in the capture phase, so that a page stopping propagation does not hide events.
    function on(target, type, listener) {
      target.addEventListener(type, safe(listener), true);
    }

    // Features are on unless the script tag says data-FEATURE="false".
    function enabled(feature) {
      return script.getAttribute("data-" + feature) != "false";
    }

    var script = document.currentScript;
    var site = script.getAttribute("data-site");
    var endpoint = new URL("/api/events", script.src).href;
    var page = Math.random().toString(36).slice(2); // eid = page + "." + counter
    var seq = 0;
    var queue = [];
    var timer = 0;
    var reached = {}; // scroll milestones already sent for this page
    var lastPage;
    var session = page;
    try {
      session = sessionStorage["analytics.session"] || (sessionStorage["analytics.session"] = page);
    } catch (e) {} // storage blocked: one session per page load

    // Send a batch; when that fails (network, 5xx), send it once more 5 s later. A 4xx would
    // fail again. The events keep their eids, so a batch that did arrive is not stored twice.
    function send(batch, beacon, retried) {
      var body = JSON.stringify(batch);
      if (beacon && navigator.sendBeacon(endpoint, body)) return;
      // A string body goes as text/plain, which needs no CORS preflight.
      fetch(endpoint, { method: "POST", body: body, keepalive: true })
        .then(function (response) {
          if (response.status > 499) throw 0;
        })
        .catch(function () {
          if (!retried) setTimeout(safe(send), 5000, batch, 0, 1);
        });
    }

    // Send what is queued; `beacon` is truthy when the page is being hidden (as a listener,
    // flush gets the event object).
    function flush(beacon) {
      clearTimeout(timer);
      timer = 0;
      if (queue.length) send(queue.splice(0), beacon);
    }

    function schedule(delay) {
      if (!timer) timer = setTimeout(safe(flush), delay);
    }

    function track(name, props, item, category) {
      queue.push({
        site: site,
        name: name,
        url: location.href.slice(0, 2048), // the server refuses longer ones
        referrer: document.referrer.slice(0, 2048),
        session: session,
        eid: page + "." + ++seq,
        ts: Date.now(),
        screen: screen.width,
        lang: navigator.language,
        category: category,
        item: item,
        props: props
      });
      // One second lets a page view and the impressions of its first render share a request;
      // past 100 events send at once (keepalive requests and beacons are limited to 64 KB).
      if (queue.length > 99) flush();
      else schedule(1000);
    }

    // Custom events. A window.analytics that another product defined is left alone.
    var off =
      !site ||
      (enabled("respect-dnt") && (navigator.doNotTrack == "1" || navigator.globalPrivacyControl));
    window.analytics = window.analytics || { track: off ? function () {} : safe(track) };
    if (off) return;

    on(window, "pagehide", flush);
    on(document, "visibilitychange", flush);

    function pageview() {
      var here = location.pathname + location.search;
      if (here != lastPage) {
        lastPage = here;
        reached = {};
        track("pageview");
      }
    }

    if (enabled("auto-pageview")) {
      ["pushState", "replaceState"].forEach(function (method) {
        var original = history[method];
        history[method] = function () {
          original.apply(this, arguments);
          safe(pageview)();
        };
      });
      on(window, "popstate", pageview);
      pageview();
    }

    // A list item's position and the list's size are read at the moment of the event.
    function trackItem(name, element) {
      var list = element.closest("[data-track-list]");
      var items = Array.from(list.querySelectorAll("[data-track-item]"));
      track(
        name,
        null,
        {
          id: element.getAttribute("data-track-item"),
          position: items.indexOf(element) + 1,
          list_size: items.length
        },
        list.getAttribute("data-track-list")
      );
    }

    on(document, "click", function (event) {
      var target = event.target;
      var tagged = enabled("clicks") && target.closest("[data-track]");
      var item = enabled("lists") && target.closest("[data-track-list] [data-track-item]");
      var link = target.closest("a[href]");
      var props = {};
      if (tagged) {
        // data-track-* attributes become the click's properties.
        Array.from(tagged.attributes).forEach(function (attribute) {
          var key = /^data-track-(.+)/.exec(attribute.name);
          if (key) props[key[1]] = attribute.value;
        });
        track(tagged.getAttribute("data-track"), props);
      }
      if (item) trackItem("item_click", item);
      if (link && /^http/.test(link.protocol)) {
        props = { url: link.href };
        if (/\.(pdf|zip|gz|dmg|exe|apk|csv|xlsx?|docx?|pptx?|txt|mp[34])$/i.test(link.pathname)) {
          if (enabled("downloads")) track("download", props);
        } else if (link.host != location.host && enabled("outbound")) {
          track("outbound", props);
        }
      }
    });

    if (enabled("forms")) {
      on(document, "submit", function (event) {
        var form = event.target;
        track("form_submit", { form: form.getAttribute("id") || form.getAttribute("name") });
      });
    }

    if (enabled("scroll")) {
      on(window, "scroll", function () {
        var depth = (100 * (scrollY + innerHeight + 1)) / document.documentElement.scrollHeight;
        [25, 50, 75, 100].forEach(function (milestone) {
          if (depth >= milestone && !reached[milestone]) {
            reached[milestone] = 1;
            track("scroll", { depth: milestone });
          }
        });
      });
    }

    // Impressions: each tagged item, including those rendered later, is watched until it has
    // been at least half visible once; the items of one render are reported together.
    if (enabled("lists")) {
      var watched = new WeakSet();
      var observer = new IntersectionObserver(
        safe(function (entries) {
          entries.forEach(function (entry) {
            if (entry.intersectionRatio > 0.49) {
              observer.unobserve(entry.target);
              trackItem("impression", entry.target);
            }
          });
        }),
        { threshold: 0.5 }
      );
      var watch = safe(function () {
        document.querySelectorAll("[data-track-list] [data-track-item]").forEach(function (item) {
          if (!watched.has(item)) {
            watched.add(item);
            observer.observe(item);
          }
        });
      });
      watch();
      new MutationObserver(watch).observe(document, { childList: true, subtree: true });
    }
  })(window, document, navigator, location);
} catch (e) {}
