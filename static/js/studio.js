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

// A card in flight counts its elapsed time here, from the seconds it was rendered with: the
// page's one poll brings back only the cards that changed, so the others are not re-rendered.
(function () {
  function duration(total) {  // as the "duration" template filter writes it
    var seconds = Math.max(Math.floor(total), 0), hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60), rest = seconds % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (hours) return hours + "h " + two(minutes) + "m";
    if (minutes) return minutes + "m " + two(rest) + "s";
    return rest ? rest + "s" : "under 1s";
  }
  function stamp(root) {
    root.querySelectorAll(".card .status[data-elapsed]").forEach(function (status) {
      if (!status.dataset.shownAt) status.dataset.shownAt = String(Date.now());
    });
  }
  document.addEventListener("DOMContentLoaded", function () { stamp(document); });
  document.addEventListener("htmx:load", function (event) { stamp(event.target.parentNode || document); });
  setInterval(function () {
    stamp(document);
    document.querySelectorAll(".card .status[data-elapsed]").forEach(function (status) {
      var elapsed = status.querySelector(".elapsed");
      var seconds = Number(status.dataset.elapsed) + (Date.now() - Number(status.dataset.shownAt)) / 1000;
      if (elapsed) elapsed.textContent = duration(seconds);
    });
  }, 1000);
})();
