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
 * Modal: data-stayflow-mode="modal" on the link (or mode: "modal" in handleData) opens the
 * cancel page in an overlay on this page instead of leaving it (an iframe the page's CSP lets
 * only this origin frame, when it is one of the app's allowed origins). When the flow ends the
 * overlay closes and the link dispatches "stayflow:complete" (bubbling, cancelable; detail
 * {outcome, offer_id, session_id, result, next_url}) and calls handleData's onComplete(detail);
 * a pass-thru URL or a redirect offer's URL then opens in this window unless the event's
 * preventDefault() was called or onComplete returned false. Closing it (button, Escape)
 * dispatches "stayflow:close" and calls onClose(detail). If the frame does not say it is ready
 * within 8 seconds, the page goes to the cancel page in full (the redirect flow).
 *
 * handleDataPromise(data) is for single-page apps: it posts at once and resolves with the
 * parsed answer whatever the HTTP status ({valid: true, url, message} or {valid: false,
 * message, error}); it rejects only when stayflow cannot be reached (a network error, or no
 * answer within 3 seconds), so the app can send the subscriber to its own fallback.
 */
(function () {
  "use strict";
  var TIMEOUT_MS = 3000;
  var READY_TIMEOUT_MS = 8000;
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
  var callbacks = {};
  var busy = false;
  var modal = null;

  function follow(link) {
    var href = link.getAttribute("href");
    busy = false;
    if (href) {
      window.location.assign(link.href);
    }
  }

  function wantsModal(link) {
    var mode = link.getAttribute("data-stayflow-mode");
    if (mode) return mode === "modal";
    return !!(data && data.mode === "modal");
  }

  function start(link) {
    if (!data || typeof window.fetch !== "function") {
      follow(link);
      return;
    }
    var inModal = wantsModal(link);
    var sent = JSON.parse(JSON.stringify(data));
    if (inModal) {
      sent.mode = "modal";
    } else {
      delete sent.mode;
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
        if (inModal && typeof body.embed_nonce === "string" && body.embed_nonce) {
          openModal(link, body);
        } else {
          window.location.assign(body.url);
        }
      } else {
        follow(link);
      }
    }
    try {
      post(sent, controller).then(finish, function () { finish(null); });
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

  // --- the modal ------------------------------------------------------------

  var CLOSE_LABELS = { en: "Close", fr: "Fermer", de: "Schlie\u00dfen" };

  function closeLabel() {
    var lang = (document.documentElement.getAttribute("lang") || "en").slice(0, 2).toLowerCase();
    return CLOSE_LABELS[lang] || CLOSE_LABELS.en;
  }

  function css(el, styles) {
    // Through the CSSOM, which a host page's strict CSP (no inline styles) allows.
    for (var name in styles) {
      if (Object.prototype.hasOwnProperty.call(styles, name)) el.style.setProperty(name, styles[name]);
    }
  }

  function layout(m) {
    var phone = m.media ? m.media.matches : window.innerWidth < 600;
    css(m.overlay, { "align-items": phone ? "flex-end" : "center" });
    css(m.dialog, phone ? {
      width: "100%", height: "92%", "max-height": "none", "border-radius": "16px 16px 0 0"
    } : {
      width: "min(560px, calc(100% - 32px))", height: "min(760px, calc(100% - 48px))",
      "border-radius": "14px"
    });
  }

  function openModal(link, answer) {
    var url = answer.url;
    var origin;
    try {
      origin = new URL(url).origin;
    } catch (ignored) {
      window.location.assign(url);
      return;
    }
    var m = {
      link: link, url: url, origin: origin, nonce: answer.embed_nonce,
      session_id: answer.session_id, ready: false, restore: document.activeElement || link,
      inerted: [], scroll: null
    };
    m.media = typeof window.matchMedia === "function" ? window.matchMedia("(max-width: 599px)") : null;
    m.overlay = document.createElement("div");
    m.overlay.setAttribute("data-stayflow-overlay", "");
    css(m.overlay, {
      position: "fixed", inset: "0", "z-index": "2147483000", display: "flex",
      "justify-content": "center", background: "rgba(15, 18, 30, 0.55)", margin: "0", padding: "0"
    });
    m.dialog = document.createElement("div");
    m.dialog.setAttribute("role", "dialog");
    m.dialog.setAttribute("aria-modal", "true");
    m.dialog.setAttribute("aria-label", (link.textContent || "").trim() || "Cancel subscription");
    css(m.dialog, {
      display: "flex", "flex-direction": "column", background: "#fff", overflow: "hidden",
      "box-shadow": "0 12px 48px rgba(16, 24, 40, 0.3)", position: "relative"
    });
    var bar = document.createElement("div");
    css(bar, { display: "flex", "justify-content": "flex-end", padding: "6px 6px 0", flex: "none" });
    m.close = document.createElement("button");
    m.close.type = "button";
    m.close.setAttribute("aria-label", closeLabel());
    m.close.setAttribute("data-stayflow-close", "");
    m.close.textContent = "\u00d7";
    css(m.close, {
      width: "44px", height: "44px", border: "0", "border-radius": "10px", background: "transparent",
      "font-size": "28px", "line-height": "1", cursor: "pointer", color: "#1f2330"
    });
    m.frame = document.createElement("iframe");
    m.frame.setAttribute("title", m.dialog.getAttribute("aria-label"));
    m.frame.setAttribute("referrerpolicy", "no-referrer");
    css(m.frame, { flex: "1 1 auto", width: "100%", border: "0", display: "block" });
    bar.appendChild(m.close);
    m.dialog.appendChild(bar);
    m.dialog.appendChild(m.frame);
    m.overlay.appendChild(m.dialog);
    layout(m);
    m.onMedia = function () { layout(m); };
    if (m.media && m.media.addEventListener) m.media.addEventListener("change", m.onMedia);

    m.onMessage = function (event) { onFrameMessage(m, event); };
    m.onKey = function (event) {
      if (event.key === "Escape" || event.key === "Esc") {
        event.preventDefault();
        closeModal(m, "escape");
      } else if (event.key === "Tab" && event.shiftKey && document.activeElement === m.close) {
        // Back from the first control: to the frame's last one.
        event.preventDefault();
        focusFrame(m, "last");
      }
    };
    m.close.addEventListener("click", function () { closeModal(m, "button"); });
    window.addEventListener("message", m.onMessage, false);
    document.addEventListener("keydown", m.onKey, true);

    // The rest of the page is out of reach while the dialog is open (focus and screen readers).
    var children = document.body.children;
    for (var i = 0; i < children.length; i++) {
      var child = children[i];
      if (!child.hasAttribute("inert") && child.tagName !== "SCRIPT") {
        child.setAttribute("inert", "");
        m.inerted.push(child);
      }
    }
    var root = document.documentElement;
    m.scroll = [root.style.getPropertyValue("overflow"), document.body.style.getPropertyValue("overflow")];
    root.style.setProperty("overflow", "hidden");
    document.body.style.setProperty("overflow", "hidden");
    document.body.appendChild(m.overlay);
    m.frame.src = url;
    m.close.focus();
    link.removeAttribute("aria-busy");
    modal = m;
    m.readyTimer = window.setTimeout(function () {
      if (modal !== m || m.ready) return;
      // The frame never spoke (stayflow slow or down, or the frame refused): the full page.
      teardown(m);
      busy = true;
      window.location.assign(url);
    }, READY_TIMEOUT_MS);
  }

  function focusFrame(m, where) {
    if (!m.frame || !m.frame.contentWindow) return;
    m.frame.focus();
    m.frame.contentWindow.postMessage(
      { source: "stayflow", type: "stayflow:focus", where: where, nonce: m.nonce }, m.origin
    );
  }

  function onFrameMessage(m, event) {
    // Only the frame we opened, from stayflow's origin, with this session's nonce.
    if (modal !== m || event.origin !== m.origin || !m.frame || event.source !== m.frame.contentWindow) return;
    var message = event.data;
    if (!message || typeof message !== "object" || message.source !== "stayflow" ||
        message.nonce !== m.nonce) return;
    if (message.type === "stayflow:ready") {
      m.ready = true;
      window.clearTimeout(m.readyTimer);
      if (typeof message.title === "string" && message.title) {
        m.dialog.setAttribute("aria-label", message.title);
        m.frame.setAttribute("title", message.title);
      }
      // A new step: keyboard users go on from its first control.
      if (document.activeElement === m.close || document.activeElement === m.frame) {
        focusFrame(m, "first");
      }
    } else if (message.type === "stayflow:focus-out") {
      m.close.focus();
    } else if (message.type === "stayflow:close") {
      closeModal(m, "escape");
    } else if (message.type === "stayflow:complete") {
      complete(m, message.detail && typeof message.detail === "object" ? message.detail : {});
    }
  }

  function teardown(m) {
    if (modal !== m) return;
    modal = null;
    window.clearTimeout(m.readyTimer);
    window.removeEventListener("message", m.onMessage, false);
    document.removeEventListener("keydown", m.onKey, true);
    if (m.media && m.media.removeEventListener) m.media.removeEventListener("change", m.onMedia);
    if (m.overlay.parentNode) m.overlay.parentNode.removeChild(m.overlay);
    for (var i = 0; i < m.inerted.length; i++) m.inerted[i].removeAttribute("inert");
    document.documentElement.style.setProperty("overflow", m.scroll[0]);
    document.body.style.setProperty("overflow", m.scroll[1]);
    m.frame = null;
    busy = false;
    var back = m.restore && m.restore.isConnected ? m.restore : m.link;
    if (back && back.focus) back.focus();
  }

  function emit(m, name, detail) {
    var target = m.link && m.link.isConnected ? m.link : document;
    var event;
    if (typeof window.CustomEvent === "function") {
      event = new window.CustomEvent(name, { detail: detail, bubbles: true, cancelable: true });
    } else {
      event = document.createEvent("CustomEvent");
      event.initCustomEvent(name, true, true, detail);
    }
    target.dispatchEvent(event);
    return event;
  }

  function call(name, detail) {
    var fn = callbacks[name];
    if (typeof fn !== "function") return undefined;
    try {
      return fn(detail);
    } catch (error) {
      window.setTimeout(function () { throw error; }, 0);
      return undefined;
    }
  }

  function closeModal(m, how) {
    if (modal !== m) return;
    teardown(m);
    var detail = { session_id: m.session_id, reason: how };
    emit(m, "stayflow:close", detail);
    call("onClose", detail);
  }

  function complete(m, given) {
    var detail = {
      outcome: typeof given.outcome === "string" ? given.outcome : null,
      offer_id: typeof given.offer_id === "string" ? given.offer_id : null,
      session_id: typeof given.session_id === "string" ? given.session_id : m.session_id,
      result: given.result && typeof given.result === "object" ? given.result : null,
      next_url: typeof given.next_url === "string" ? given.next_url : null
    };
    teardown(m);
    var event = emit(m, "stayflow:complete", detail);
    var answer = call("onComplete", detail);
    if (given.navigate === true && detail.next_url && /^https?:\/\//.test(detail.next_url) &&
        !event.defaultPrevented && answer !== false) {
      window.location.assign(detail.next_url);
    }
  }

  // --- single-page apps ---------------------------------------------------

  function keep(value) {
    if (!value || typeof value !== "object") return;
    callbacks = {};
    var plain = {};
    for (var key in value) {
      if (!Object.prototype.hasOwnProperty.call(value, key)) continue;
      if (typeof value[key] === "function") {
        callbacks[key] = value[key];
      } else {
        plain[key] = value[key];
      }
    }
    data = JSON.parse(JSON.stringify(plain));
  }

  function handleDataPromise(value) {
    keep(value);
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
      keep(value);
    },
    handleDataPromise: handleDataPromise
  };
  window.Stayflow = api;
  window.Brightback = api;
})();
