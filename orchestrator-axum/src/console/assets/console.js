// webhook-orchestrator console: the only script (no inline script; CSP `script-src 'self'`).
// 1. Forms with data-confirm ask before they submit.
// 2. A <main data-refresh="N"> reloads its content every N seconds (overview, live tail),
//    in place, keeping the scroll position; paused while the tab is hidden.
// 3. A performance mark "console:rendered" once the first frame after parsing is drawn
//    (what the 1,000-row rendering measurement reads; visible in the browser's devtools).
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    window.requestAnimationFrame(function () {
      window.setTimeout(function () {
        if (window.performance && performance.mark) {
          performance.mark("console:rendered");
        }
      }, 0);
    });
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  var main = document.getElementById("main");
  var seconds = main && parseInt(main.getAttribute("data-refresh") || "", 10);
  if (!seconds || seconds < 1) {
    return;
  }
  var busy = false;
  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) {
          // Signed out or failing: a full load shows why.
          window.location.reload();
          return null;
        }
        return response.text();
      })
      .then(function (text) {
        if (text === null || text === undefined) {
          return;
        }
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("main");
        if (fresh) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes));
          main.setAttribute("data-refreshed", new Date().toISOString());
        }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
      });
  }
  window.setInterval(refresh, seconds * 1000);
})();
