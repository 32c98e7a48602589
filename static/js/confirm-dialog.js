// Confirm dialogs that ask the operator to type a name (deleting an app). A button with
// data-opens="<dialog id>" opens the dialog; [data-closes-dialog] closes it; the dialog's
// [data-confirm-submit] stays disabled until its input[data-must-match] holds exactly that
// value (trimmed). The server checks the typed name again. Plain DOM, served from our static/
// (the Content-Security-Policy allows no inline script).
(function () {
  function matches(dialog) {
    var input = dialog.querySelector("input[data-must-match]");
    return !!input && input.value.trim() === input.getAttribute("data-must-match").trim();
  }
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-opens]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-opens"));
      if (dialog && typeof dialog.showModal === "function") {
        dialog.showModal();
        var input = dialog.querySelector("input[data-must-match]");
        if (input) input.focus();
      }
      return;
    }
    var closer = event.target.closest("[data-closes-dialog]");
    if (closer && closer.closest("dialog")) closer.closest("dialog").close();
  });
  document.addEventListener("input", function (event) {
    var dialog = event.target.closest("dialog");
    if (!dialog || !event.target.hasAttribute("data-must-match")) return;
    var submit = dialog.querySelector("[data-confirm-submit]");
    if (submit) submit.disabled = !matches(dialog);
  });
})();
