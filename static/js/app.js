// An htmx request that fails says so, instead of leaving a button that silently does nothing.
// The message stays until the same element's request succeeds: a status card that keeps
// polling must not wipe out what the form's failed send said.
(function () {
  var failedElt = null;
  function banner() { return document.getElementById("request-error"); }
  function show(elt, message) {
    var el = banner();
    if (el) { el.textContent = message; el.hidden = false; failedElt = elt; }
  }
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    show(event.detail.elt, status === 403
      ? "This page is out of date (you may have signed in again elsewhere). Reload the page, then try again."
      : "Something went wrong on the server (HTTP " + status + "). Reload the page and try again.");
  });
  document.addEventListener("htmx:sendError", function (event) {
    show(event.detail.elt, "The server could not be reached. Check your connection; this page keeps trying.");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful && event.detail.elt === failedElt && banner()) {
      banner().hidden = true;
      failedElt = null;
    }
  });
})();
