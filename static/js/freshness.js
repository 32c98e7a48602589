// Parts of a page marked data-auto-refresh (hx-trigger "docora-refresh") are refreshed quietly
// every REFRESH_SECONDS while the page is visible, and the "Updated N s ago" line of each
// ([data-freshness] inside it) counts the seconds since it arrived. A refresh is skipped while
// the operator has rows ticked, a retried row is still being followed, or a request is running,
// so nothing they are working with is swapped away under them. "Refresh" does it at once.
(function () {
  "use strict";
  var REFRESH_SECONDS = 15;
  var seenAt = new WeakMap();

  function busy(part) {
    return part.querySelector("input.row-select:checked, .htmx-request, " +
                              ".followed-row:not(.state-delivered):not(.state-failed)") !== null;
  }

  function refresh(force) {
    document.querySelectorAll("[data-auto-refresh]").forEach(function (part) {
      if (force || !busy(part)) {
        window.htmx.trigger(part, "docora-refresh");
      }
    });
  }

  function age(seconds) {
    if (seconds < 5) { return "Updated just now"; }
    if (seconds < 60) { return "Updated " + seconds + " s ago"; }
    return "Updated " + Math.floor(seconds / 60) + " min ago";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-freshness]").forEach(function (line) {
      if (!seenAt.has(line)) { seenAt.set(line, now); }
      var text = line.querySelector("[data-age]");
      if (text) { text.textContent = age(Math.floor((now - seenAt.get(line)) / 1000)); }
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-refresh]");
    if (link && window.htmx && document.querySelector("[data-auto-refresh]")) {
      event.preventDefault();
      refresh(true);
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
    window.setInterval(function () {
      if (document.visibilityState === "visible" && window.htmx) { refresh(false); }
    }, REFRESH_SECONDS * 1000);
  });
})();
