// "Copy" buttons: a button with data-copy="<input id>" copies that input's text and says so.
// Without JavaScript the buttons stay hidden and the link is still plain, selectable text.
(function () {
  // The message goes to the live region named after the field: id="<input id>-status".
  function say(button, message) {
    var status = document.getElementById(button.dataset.copy + "-status");
    if (status) { status.textContent = message; }
  }
  function fallback(field) {
    field.focus();
    field.select();
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }
  function copy(button) {
    var field = document.getElementById(button.dataset.copy);
    if (!field) { return; }
    var done = function () { button.textContent = "Copied"; say(button, "Link copied to the clipboard."); };
    var failed = function () { field.focus(); field.select(); say(button, "Copying was not allowed: the link is selected, copy it with Ctrl+C (⌘C)."); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { (fallback(field) ? done : failed)(); });
    } else {
      (fallback(field) ? done : failed)();
    }
  }
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { copy(button); });
    var field = document.getElementById(button.dataset.copy);
    if (field) { field.addEventListener("focus", function () { field.select(); }); }
  });
})();
