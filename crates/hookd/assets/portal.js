// The merchant portal's script: signs in from the magic link and keeps the session in a
// header. Inside a cross-site iframe browsers block cookies, so the session lives in this
// tab's sessionStorage and goes with every htmx request as `Authorization: Bearer`.
(function () {
  "use strict";
  var KEY = "hookd.portal.session";

  function stored() {
    try { return sessionStorage.getItem(KEY); } catch (e) { return null; }
  }
  function store(value) {
    try {
      if (value) { sessionStorage.setItem(KEY, value); } else { sessionStorage.removeItem(KEY); }
    } catch (e) { /* storage refused: the cookie may still work */ }
  }

  // Every request htmx makes carries the session.
  document.addEventListener("htmx:configRequest", function (event) {
    var session = stored();
    if (session) { event.detail.headers["Authorization"] = "Bearer " + session; }
  });
  // Error pages (422 with the form's errors, 401, 403, 404) are pages too: show them.
  if (window.htmx) {
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "...", swap: true }
    ];
  }
  // A page that ends the session (signed out, or expired) tells the script to forget it.
  document.addEventListener("htmx:afterSettle", function () {
    if (document.querySelector("[data-session-ended]")) { store(null); }
  });

  function showExpired() {
    var title = document.getElementById("boot-title");
    var text = document.getElementById("boot-expired");
    if (title) { title.textContent = "This link cannot be used"; }
    if (text) { text.hidden = false; }
  }

  function loadPage() {
    htmx.ajax("GET", location.pathname + location.search, { target: "body", swap: "innerHTML" });
  }

  function boot() {
    // A link's key is exchanged whatever page the server rendered: a new link replaces the
    // session of an older one still held in a cookie.
    var match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
    if (!match && !document.getElementById("boot")) { return; }
    if (match) {
      // The key is used once: take it out of the address bar and history at once.
      history.replaceState(null, "", location.pathname + location.search);
      fetch("/portal/session", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: "key=" + match[1],
        credentials: "same-origin"
      }).then(function (response) {
        if (!response.ok) { throw new Error("refused"); }
        return response.json();
      }).then(function (body) {
        store(body.session);
        loadPage();
      }).catch(function () { store(null); showExpired(); });
      return;
    }
    if (stored()) { loadPage(); } else { showExpired(); }
  }

  document.addEventListener("htmx:responseError", function (event) {
    if (event.detail.xhr.status === 401) { store(null); }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", boot);
  } else {
    boot();
  }
})();
