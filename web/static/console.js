// The pages' only script, served by the platform (no inline scripts: a strict CSP holds).
// - [data-poll]: refresh the element from data-src every data-every seconds, until the
//   answer carries data-final.
// - form[data-once]: a second submit of the same form is not sent (the server also
//   refuses to do it twice: each money form carries its own idempotency key).
// - [data-print]: print the page.
(function () {
  "use strict";
  function poll(el) {
    var every = parseFloat(el.getAttribute("data-every") || "5") * 1000;
    function tick() {
      var src = el.getAttribute("data-src");
      fetch(src, {credentials: "same-origin", headers: {"X-Fragment": "1"}})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          // Replace only what changed, so that nothing under the pointer goes stale.
          var fresh = document.createElement("template");
          fresh.innerHTML = html;
          if (fresh.innerHTML.trim() !== el.innerHTML.trim()) { el.innerHTML = html; }
          if (!el.querySelector("[data-final]")) { window.setTimeout(tick, every); }
        })
        .catch(function () { window.setTimeout(tick, every * 2); });
    }
    if (!el.querySelector("[data-final]")) { window.setTimeout(tick, every); }
  }
  function once(form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
      var buttons = form.querySelectorAll("button");
      window.setTimeout(function () {
        for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; }
      }, 0);
    });
  }
  function confirmFirst(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  }
  // Back to a page kept in memory: its forms may be sent again (with the same key, which
  // the server answers as the first time).
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    document.querySelectorAll("form[data-sent]").forEach(function (form) {
      form.removeAttribute("data-sent");
      form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
    });
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("form[data-once]").forEach(once);
    document.querySelectorAll("form[data-confirm]").forEach(confirmFirst);
    document.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
  });
})();
