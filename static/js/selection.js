// The failed list's row selection: keeps "Retry selected (k)" in step with the ticked rows and
// lets the header box tick every row on the page. Plain DOM, served from our own static/ (the
// Content-Security-Policy allows no inline script). Works again after htmx swaps the list.
(function () {
  function update() {
    var boxes = document.querySelectorAll("input.row-select");
    var ticked = document.querySelectorAll("input.row-select:checked").length;
    var count = document.getElementById("selected-count");
    var button = document.getElementById("retry-selected-button");
    var all = document.getElementById("select-page");
    if (count) count.textContent = String(ticked);
    if (button) button.disabled = ticked === 0;
    if (all) {
      all.checked = boxes.length > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.id === "select-page") {
      document.querySelectorAll("input.row-select").forEach(function (box) {
        box.checked = target.checked;
      });
    }
    if (target.id === "select-page" || target.classList.contains("row-select")) update();
  });
  document.addEventListener("htmx:afterSettle", update);
  document.addEventListener("DOMContentLoaded", update);
})();
