/* stayflow admin: small enhancements only; every page works without this file.
   Copy buttons: <button class="copy" data-copy="ID" hidden> copies the value or text of #ID. */
(function () {
  "use strict";
  function textOf(el) {
    return "value" in el && typeof el.value === "string" ? el.value : el.textContent;
  }
  function copied(button) {
    var label = button.textContent;
    button.textContent = button.getAttribute("data-done") || "✓";
    window.setTimeout(function () { button.textContent = label; }, 1500);
  }
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = textOf(target);
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { copied(button); });
        return;
      }
      if (target.select) { target.select(); }
      if (document.execCommand && document.execCommand("copy")) { copied(button); }
    });
  });
})();
