// Upload progress for the studio form: a 500 MB video takes a while to send.
document.addEventListener("htmx:xhr:progress", function (event) {
  var bar = event.target.querySelector && event.target.querySelector("progress.upload-progress");
  if (bar && event.detail.lengthComputable && event.detail.total > 0) {
    bar.hidden = false;
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  }
});

// A send that failed leaves the form in place: its finished bar must not linger.
document.addEventListener("htmx:afterRequest", function (event) {
  var bar = event.target.querySelector && event.target.querySelector("progress.upload-progress");
  if (bar && !event.detail.successful) {
    bar.hidden = true;
    bar.value = 0;
  }
});
