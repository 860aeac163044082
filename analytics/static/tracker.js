/*
 * Analytics tracker: one script tag, no cookies, no dependencies.
 *
 *   <script defer src="https://ANALYTICS_HOST/tracker.js" data-site="SITE_ID"></script>
 *
 * Sends JSON arrays of events to POST /api/events on the host this script comes from, as
 * text/plain (no CORS preflight). Every event carries
 *   {site, name, url, referrer, session, eid, ts, age, screen, lang} and, by kind:
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
 * Stored on the device, in sessionStorage only (nothing outlives the tab): a random session id,
 * the events not yet sent, and how many were given up. Events are sent in batches (fetch with
 * keepalive), and by sendBeacon when the page is hidden; a batch the server did not take (a
 * network error, 5xx, 429) is sent again with the same eid and ts, which the server stores
 * once, after an exponential backoff with jitter (or Retry-After), by this page or the tab's
 * next ones, for up to 10 minutes. At most 500 events wait; past that the oldest go first.
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
    var store = {}; // in sessionStorage: {s: session id, q: unsent events, d: events dropped}
    var timer = 0;
    var delay = 0; // the retry backoff in ms; 0 while the server answers
    var inFlight = 0; // a fetch is out
    var beaconed; // the eids of the last beacon
    var reached = {}; // scroll milestones already sent for this page
    var lastPage;
    try {
      store = JSON.parse(sessionStorage.analytics);
    } catch (e) {} // none yet, or storage blocked: then one session per page load
    var session = (store.s = store.s || page);
    var queue = store.q || []; // oldest first: what the tab's pages made and the server has not taken

    // A clock that does not jump with the wall clock (performance.now), read as epoch ms of the
    // visitor's clock (timeOrigin), so that it carries across the pages of a tab. An event is
    // sent with `ts` by this clock and its `age`, from which the server dates it by its own.
    function clock() {
      return performance.timeOrigin + performance.now();
    }

    // Keep the queue in the tab's storage, minus what is past the limits (counted in `d`): events
    // unsent 10 minutes after they were made, and the oldest past 500.
    function save() {
      queue = queue.filter(function (event, i) {
        return (clock() - event.ts < 6e5 && i >= queue.length - 500) || !(store.d = -~store.d);
      });
      store.q = queue;
      try {
        sessionStorage.analytics = JSON.stringify(store);
      } catch (e) {}
    }

    // Send the oldest queued events (at most 100: keepalive requests and beacons are limited to
    // 64 KB). They leave the queue once the server has answered, 2xx or 4xx (a 4xx would fail
    // again); otherwise they are sent again, with the same eids and ts (so stored once), after a
    // backoff that doubles up to a minute, with jitter, or after Retry-After when that is longer.
    // A beacon (as the page is hidden) leaves them queued: its answer is never known, so the
    // tab's next send repeats them.
    function send(beacon) {
      timer = 0;
      save();
      var batch = queue.slice(0, 100);
      batch.forEach(function (event) {
        event.age = clock() - event.ts;
      });
      var body = JSON.stringify(batch);
      if (!batch[0] || (inFlight && !beacon)) return;
      if (beacon) {
        // pagehide and visibilitychange both come as a page goes: one beacon for the same events
        var ids = batch.map(function (event) {
          return event.eid;
        }) + "";
        if (ids != beaconed) navigator.sendBeacon(endpoint, body);
        return (beaconed = ids);
      }
      inFlight = 1;
      // A string body goes as text/plain, which needs no CORS preflight.
      fetch(endpoint, { method: "POST", body: body, keepalive: true })
        .then(function (response) {
          if (response.status > 499 || response.status == 429) throw response;
          delay = inFlight = 0;
          queue = queue.filter(function (event) {
            return batch.indexOf(event) < 0;
          });
          send();
        })
        .catch(function (response) {
          inFlight = 0;
          delay = Math.min(2 * delay || 1000, 6e4);
          clearTimeout(timer);
          timer = setTimeout(
            safe(send),
            Math.max(
              delay * (0.5 + Math.random()),
              1e3 * (response.headers && response.headers.get("Retry-After")) || 0
            )
          );
        });
    }

    function track(name, props, item, category) {
      queue.push({
        site: site,
        name: name,
        url: location.href.slice(0, 2048), // the server refuses longer ones
        referrer: document.referrer.slice(0, 2048),
        session: session,
        eid: page + "." + ++seq,
        ts: clock(),
        screen: screen.width,
        lang: navigator.language,
        category: category,
        item: item,
        props: props
      });
      save();
      // One second lets a page view and the impressions of its first render share a request.
      if (!timer) timer = setTimeout(safe(send), 1000);
    }

    // Custom events. A window.analytics that another product defined is left alone.
    var off =
      !site ||
      (enabled("respect-dnt") && (navigator.doNotTrack == "1" || navigator.globalPrivacyControl));
    window.analytics = window.analytics || { track: off ? function () {} : safe(track) };
    if (off) return;

    // Hidden (another tab, or the page going away): send by beacon what is queued.
    on(window, "pagehide", send);
    on(document, "visibilitychange", send);

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
      var items = list.querySelectorAll("[data-track-item]");
      track(
        name,
        null,
        {
          id: element.getAttribute("data-track-item"),
          position: [].indexOf.call(items, element) + 1,
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
