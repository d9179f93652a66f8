// An htmx request that fails says so, instead of leaving a button that silently does nothing.
(function () {
  function banner() { return document.getElementById("request-error"); }
  function show(message) {
    var el = banner();
    if (el) { el.textContent = message; el.hidden = false; }
  }
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    show(status === 403
      ? "This page is out of date (you may have signed in again elsewhere). Reload the page, then try again."
      : "Something went wrong on the server (HTTP " + status + "). Reload the page and try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    show("The server could not be reached. Check your connection; this page keeps trying.");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful && banner()) { banner().hidden = true; }
  });
})();
