// Progressive enhancement for the cancel-flow editor: on an offer, show only the fields of the
// chosen type (without this script every type's fields are shown, and the server uses those
// of the chosen type).
(function () {
  "use strict";
  var select = document.querySelector("[data-offer-type]");
  if (!select) { return; }
  function update() {
    document.querySelectorAll("[data-for-type]").forEach(function (box) {
      var types = box.getAttribute("data-for-type").split(" ");
      box.hidden = types.indexOf(select.value) === -1;
    });
  }
  select.addEventListener("change", update);
  update();
}());
