/*! stayflow framed page: the cancel page inside the business's modal (the snippet's
 * data-stayflow-mode="modal"). Talks to the page that framed it, and only to it:
 *
 *   frame -> host  {source: "stayflow", type: "stayflow:ready" | "stayflow:complete" |
 *                   "stayflow:close" | "stayflow:focus-out", nonce, ...}
 *   host -> frame  {source: "stayflow", type: "stayflow:focus", where: "first" | "last", nonce}
 *
 * Messages go to the framing origin only (postMessage's targetOrigin), and a message is
 * read only when it comes from that origin, from the parent window, with this session's
 * nonce. Opened as a full page (a fallback), it follows the outcome's URL as the redirect
 * flow does.
 */
(function () {
  "use strict";
  var node = document.getElementById("stayflow-embed");
  if (!node) return;
  var embed;
  try {
    embed = JSON.parse(node.textContent || "{}");
  } catch (ignored) {
    return;
  }
  var framed = window.parent && window.parent !== window;

  if (!framed) {
    var done = embed.complete;
    if (done && done.next_url && /^https?:\/\//.test(done.next_url)) {
      window.location.replace(done.next_url);
    }
    return;
  }

  function send(type, extra) {
    var message = { source: "stayflow", type: type, nonce: embed.nonce, session_id: embed.session_id };
    if (extra) {
      for (var key in extra) {
        if (Object.prototype.hasOwnProperty.call(extra, key)) message[key] = extra[key];
      }
    }
    window.parent.postMessage(message, embed.origin);
  }

  function focusables() {
    var all = document.querySelectorAll(
      "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), " +
      "textarea:not([disabled]), select:not([disabled]), [tabindex]:not([tabindex='-1'])"
    );
    var shown = [];
    for (var i = 0; i < all.length; i++) {
      var el = all[i];
      if (el.offsetParent !== null || el.getClientRects().length) shown.push(el);
    }
    return shown;
  }

  function focusAt(where) {
    var list = focusables();
    if (!list.length) return;
    if (where === "last") {
      list[list.length - 1].focus();
    } else {
      // The first thing to act on: a checked radio, else the first field or button.
      var checked = document.querySelector("input[type=radio]:checked");
      (checked || list[0]).focus();
    }
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== embed.origin || event.source !== window.parent) return;
    var data = event.data;
    if (!data || typeof data !== "object" || data.source !== "stayflow" || data.nonce !== embed.nonce) return;
    if (data.type === "stayflow:focus") focusAt(data.where === "last" ? "last" : "first");
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" || event.key === "Esc") {
      event.preventDefault();
      send("stayflow:close");
      return;
    }
    if (event.key !== "Tab") return;
    // Tab past the last field (or back past the first) goes to the host's close button,
    // so focus stays in the dialog.
    var list = focusables();
    if (!list.length) return;
    var first = list[0];
    var last = list[list.length - 1];
    if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      send("stayflow:focus-out", { where: "after" });
    } else if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      send("stayflow:focus-out", { where: "before" });
    }
  });

  // Links out of the flow (back to the account, a redirect offer) leave the modal for the
  // top window; the page's own links (change my answer) stay in the frame.
  var links = document.querySelectorAll("a[href]");
  for (var i = 0; i < links.length; i++) {
    var link = links[i];
    if (link.origin !== window.location.origin) link.setAttribute("target", "_top");
  }

  if (embed.complete) {
    send("stayflow:complete", { detail: embed.complete });
  } else {
    send("stayflow:ready", { step: embed.step, title: document.title });
  }
})();
