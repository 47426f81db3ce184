// The operator dashboard's script: copy buttons. Everything else works without it (plain
// links and forms); htmx refreshes the overview.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(done, function () { source.select(); });
    } else {
      source.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* selected: copy by hand */ }
    }
  });
  // A refresh that failed (the node restarting) keeps the last figures and says so.
  document.addEventListener("htmx:sendError", function () {
    var live = document.getElementById("live-status");
    if (live) { live.textContent = "Not refreshed: hookd did not answer. Retrying…"; }
  });
})();
