// Rows of the lists open what they stand for (data-href: a link's page, an app's, an
// operation's) when clicked anywhere that is not itself a control: links, buttons, boxes and
// text being selected keep their own meaning. Ctrl/Cmd-click opens it in a new tab. The row's
// own link (keyboard, screen readers) stays the way there; this only widens the target.
(function () {
  "use strict";

  var CONTROLS = "a, button, input, select, textarea, label, summary, details, [hx-post], [hx-get]";

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0) { return; }
    var row = event.target.closest("tr[data-href]");
    if (!row) { return; }
    var control = event.target.closest(CONTROLS);  // the lists sit in polled (hx-get) blocks:
    if (control && row.contains(control)) { return; }  // only a control inside the row counts
    var selection = window.getSelection();
    if (selection && !selection.isCollapsed && row.contains(selection.anchorNode)) { return; }
    var href = row.getAttribute("data-href");
    if (!href || href.charAt(0) !== "/") { return; }  // our own pages only
    if (event.ctrlKey || event.metaKey) {
      window.open(href, "_blank", "noopener");
    } else {
      window.location.assign(href);
    }
  });
})();
