// Copy buttons: a button with data-copy="<element id>" copies that element's text to the
// clipboard and says so in its own label for two seconds ("Copied", or how to copy by hand when
// the browser refuses, e.g. outside a secure context). Plain DOM, from our static/.
(function () {
  function say(button, text) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = text;
    setTimeout(function () { button.textContent = label; }, 2000);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { say(button, "Copied"); },
        function () { say(button, "Select and copy by hand"); });
    } else {
      var range = document.createRange();
      range.selectNodeContents(source);
      var chosen = window.getSelection();
      chosen.removeAllRanges();
      chosen.addRange(range);
      say(button, "Selected: press Ctrl+C");
    }
  });
})();
