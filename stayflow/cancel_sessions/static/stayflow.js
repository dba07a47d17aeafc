/*! stayflow snippet: no dependencies, no third-party requests.
 *
 * <a id="bb-cancel" href="/fallback">Cancel</a>  (or any link with data-stayflow-cancel)
 * <script src="https://STAYFLOW_HOST/js/stayflow.js"></script>
 * <script>window.Stayflow.handleData({app_id: "...", subscription_id: "...", auth_hash: "...",
 *   save_return_url: "...", cancel_confirmation_url: "..."});</script>
 *
 * A click posts the data to /precancel and goes to the cancel page it answers with.
 * On an invalid answer, an error, or no answer within 3 seconds, the link's own
 * href is followed, so a subscriber can always cancel.
 * window.Brightback is the same object, for a drop-in move from Brightback (served also at
 * /js/current/brightback.js).
 *
 * handleDataPromise(data) is for single-page apps: it posts at once and resolves with the
 * parsed answer whatever the HTTP status ({valid: true, url, message} or {valid: false,
 * message, error}); it rejects only when stayflow cannot be reached (a network error, or no
 * answer within 3 seconds), so the app can send the subscriber to its own fallback.
 */
(function () {
  "use strict";
  var TIMEOUT_MS = 3000;
  var SELECTOR = "#bb-cancel, [data-stayflow-cancel]";
  var existing = window.Stayflow;
  if (existing && existing.__stayflow) {
    return;
  }
  var base = "__STAYFLOW_BASE_URL__";
  try {
    var current = document.currentScript;
    if (current && current.src) {
      base = new URL(current.src, window.location.href).origin;
    }
  } catch (ignored) {
    /* keep the configured base */
  }
  var data = null;
  var busy = false;

  function follow(link) {
    var href = link.getAttribute("href");
    busy = false;
    if (href) {
      window.location.assign(link.href);
    }
  }

  function start(link) {
    if (!data || typeof window.fetch !== "function") {
      follow(link);
      return;
    }
    var settled = false;
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = window.setTimeout(function () {
      if (settled) return;
      settled = true;
      if (controller) controller.abort();
      follow(link);
    }, TIMEOUT_MS);
    function finish(body) {
      if (settled) return;
      settled = true;
      window.clearTimeout(timer);
      if (body && body.valid === true && typeof body.url === "string" && /^https?:\/\//.test(body.url)) {
        window.location.assign(body.url);
      } else {
        follow(link);
      }
    }
    try {
      post(data, controller).then(finish, function () { finish(null); });
    } catch (error) {
      finish(null);
    }
  }

  // Resolves with the parsed answer on any HTTP status; rejects on a network error.
  function post(value, controller) {
    var url = base + "/precancel?app_id=" + encodeURIComponent(String(value.app_id || ""));
    var options = {
      method: "POST",
      // text/plain keeps this a "simple" CORS request: no preflight round trip.
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: JSON.stringify(value),
      credentials: "omit",
      mode: "cors",
      cache: "no-store"
    };
    if (controller) options.signal = controller.signal;
    return window.fetch(url, options).then(function (response) {
      return response.json().then(function (body) {
        return body && typeof body === "object" ? body : unreadable(response.status);
      }, function () {
        return unreadable(response.status);
      });
    });
  }

  function unreadable(status) {
    return { valid: false, message: "stayflow answered HTTP " + status + " without JSON" };
  }

  function handleDataPromise(value) {
    if (value && typeof value === "object") {
      data = JSON.parse(JSON.stringify(value));
    }
    var PromiseType = window.Promise;
    return new PromiseType(function (resolve, reject) {
      if (!data || typeof window.fetch !== "function") {
        reject(new Error("stayflow: no data, or no fetch in this browser"));
        return;
      }
      var settled = false;
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      var timer = window.setTimeout(function () {
        if (settled) return;
        settled = true;
        if (controller) controller.abort();
        reject(new Error("stayflow did not answer within " + TIMEOUT_MS + " ms"));
      }, TIMEOUT_MS);
      post(data, controller).then(function (body) {
        if (settled) return;
        settled = true;
        window.clearTimeout(timer);
        resolve(body);
      }, function (error) {
        if (settled) return;
        settled = true;
        window.clearTimeout(timer);
        reject(error instanceof Error ? error : new Error("stayflow could not be reached"));
      });
    });
  }

  function onClick(event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
        event.shiftKey || event.altKey) {
      return;
    }
    var target = event.target;
    var link = target && target.closest ? target.closest(SELECTOR) : null;
    if (!link) return;
    event.preventDefault();
    if (busy) return;
    busy = true;
    link.setAttribute("aria-busy", "true");
    start(link);
  }

  document.addEventListener("click", onClick, false);
  // Coming back with the browser's back button restores the page as it was: unlock the link.
  window.addEventListener("pageshow", function () { busy = false; });

  var api = {
    __stayflow: true,
    version: "1",
    handleData: function (value) {
      if (value && typeof value === "object") {
        data = JSON.parse(JSON.stringify(value));
      }
    },
    handleDataPromise: handleDataPromise
  };
  window.Stayflow = api;
  window.Brightback = api;
})();
