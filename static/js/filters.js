// The list's filter form applies a choice at once (a select, or a search confirmed by Enter or
// leaving the field) by submitting itself: a normal GET, so the URL keeps the state and the
// Apply button still works without JavaScript. Date fields are left to Apply / Enter: they fire
// "change" at every edited part of the date.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var field = event.target;
    var form = field.form;
    if (!form || !form.hasAttribute("data-apply-on-change") || !field.name) {
      return;
    }
    if (field.type === "datetime-local" || field.type === "date") {
      return;
    }
    form.requestSubmit();
  });

  // On a phone the filter form starts folded, unless a filter is on.
  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("filters-panel");
    if (panel && panel.getAttribute("data-filtered") === "false" &&
        window.matchMedia("(max-width: 700px)").matches) {
      panel.open = false;
    }
  });
})();
