// The status page follows without reload: every data-poll ms it asks data-live
// for the page's body and swaps it in. Missed answers mark the page stale.
(function () {
  var body = document.getElementById("status-body");
  if (!body || !window.fetch) return;
  var url = body.getAttribute("data-live");
  var every = parseInt(body.getAttribute("data-poll"), 10) || 5000;
  var stale = document.getElementById("status-stale");
  var missed = 0;
  function poll() {
    fetch(url, { headers: { "Accept": "text/html" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        missed = 0; stale.hidden = true;
        if (body.innerHTML !== html) body.innerHTML = html;
      })
      .catch(function () { missed += 1; if (missed >= 3) stale.hidden = false; })
      .then(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
