// Shipyard farm pages: the live build log (Server-Sent Events) and auto-refresh.
// Everything here is optional: without JavaScript the pages are complete, only static.
(function () {
  "use strict";

  // Replace every [data-live] region with its fresh copy from the server.
  function refreshLive() {
    return fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (region) {
          var next = fresh.getElementById(region.id);
          if (next && !region.contains(document.activeElement)) {
            region.innerHTML = next.innerHTML;
          }
        });
      })
      .catch(function () { /* the coordinator is restarting: try again next round */ });
  }

  // Auto-refresh: only while the page is visible and the box is ticked.
  var period = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var control = document.getElementById("refresh-control");
  var box = document.getElementById("autorefresh");
  if (period > 0 && control && box) {
    control.hidden = false;
    window.setInterval(function () {
      if (box.checked && document.visibilityState === "visible") { refreshLive(); }
    }, period * 1000);
  }

  // The live log of a queued or running build.
  var log = document.getElementById("log");
  // A finished build's log opens at its end too: that is where the cause is.
  if (log) { log.scrollTop = log.scrollHeight; }
  if (log && log.dataset.stream && window.EventSource) {
    var status = document.getElementById("log-status");
    var url = log.dataset.stream + "?offset=" + encodeURIComponent(log.dataset.offset || "0");
    var source = new EventSource(url);
    if (status) { status.hidden = false; }
    // Open at the end and follow new lines until the reader scrolls up; scrolling back
    // to the bottom follows again. Any move up stops following at once (a smooth scroll
    // passes near the bottom first), and following only ever moves the box down.
    var atEnd = function () {
      return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    };
    var follow = true;
    var lastTop = 0;
    var toEnd = function () { log.scrollTop = log.scrollHeight; lastTop = log.scrollTop; };
    log.addEventListener("scroll", function () {
      if (log.scrollTop < lastTop - 1) { follow = false; } else if (atEnd()) { follow = true; }
      lastTop = log.scrollTop;
    });
    toEnd();
    source.addEventListener("log", function (event) {
      var data = JSON.parse(event.data);
      log.appendChild(document.createTextNode(data.text));
      log.dataset.offset = String(data.next);
      if (follow) { toEnd(); }
    });
    source.addEventListener("state", function (event) {
      var data = JSON.parse(event.data);
      var badge = document.getElementById("build-state");
      if (badge && badge.textContent !== data.state) { refreshLive(); }
    });
    source.addEventListener("end", function () {
      source.close();
      if (status) { status.textContent = "The build has ended."; }
      refreshLive();
    });
  }
})();
