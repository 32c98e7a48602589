// The phone layout (admin.css, max-width 700px) shows each table row as a card, one line per
// cell; this labels every cell with its column's heading (data-label) so those lines say what
// they are. Runs on load and after every htmx swap (new rows arrive by htmx).
(function () {
  "use strict";

  function headingText(th) {
    // A sortable heading carries a direction arrow; the label is the name alone.
    return th.textContent.replace(/[▲▼↑↓]/g, "").trim();
  }

  function label(root) {
    root.querySelectorAll("table.table").forEach(function (table) {
      var headings = Array.prototype.map.call(table.querySelectorAll("thead th"), headingText);
      table.querySelectorAll("tbody tr").forEach(function (row) {
        Array.prototype.forEach.call(row.children, function (cell, index) {
          if (!cell.hasAttribute("data-label")) {
            cell.setAttribute("data-label", headings[index] || "");
          }
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { label(document); });
  document.addEventListener("htmx:afterSettle", function () { label(document); });
})();
