// Live updates for the support console: poll the page's JSON endpoint, swap in
// the regions that changed, and say so when updates stop (no build step, no CDN).
(function () {
  "use strict";
  var live = document.getElementById("live");
  function selecting(region) {
    var form = region.closest("form") || region;
    return form.querySelector('input[type="checkbox"]:checked') !== null;
  }
  if (!live) { return; }
  var url = live.getAttribute("data-live-url");
  var interval = Math.max(500, parseInt(live.getAttribute("data-poll-ms"), 10) || 5000);
  var staleAfter = Math.max(1, parseInt(live.getAttribute("data-stale-after"), 10) || 3);
  var version = live.getAttribute("data-version");
  var status = document.getElementById("live-status");
  var missed = 0;
  var lastUpdate = new Date();

  // The console's one time format (UTC, labelled), as the server writes it: 2026-12-07 14:05 UTC.
  function clock(date) {
    return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function fresh() {
    missed = 0;
    live.classList.remove("stale");
    live.removeAttribute("data-stale");
    status.textContent = "Live: checked " + clock(new Date()) + ", last change " + clock(lastUpdate);
  }

  function stale(reason) {
    live.classList.add("stale");
    live.setAttribute("data-stale", "true");
    status.textContent = "Stale: " + (reason || "no updates since " + clock(lastUpdate) +
      ". Retrying; reload the page if this lasts.");
  }

  function apply(data) {
    var skipped = false;
    Object.keys(data.regions).forEach(function (name) {
      var region = document.querySelector('[data-region="' + name + '"]');
      var update = data.regions[name];
      if (!region || region.getAttribute("data-region-version") === update.version) { return; }
      // Never pull a form from under someone using it: try again on the next poll.
      if (region.hasAttribute("data-keep-focus") && region.contains(document.activeElement)) {
        skipped = true;
        return;
      }
      // Nor the queue's rows while some are selected for a bulk action.
      if (region.hasAttribute("data-keep-selection") && selecting(region)) {
        skipped = true;
        return;
      }
      region.innerHTML = update.html;
      region.setAttribute("data-region-version", update.version);
      region.classList.remove("flash");
      void region.offsetWidth;  // restart the highlight
      region.classList.add("flash");
    });
    if (!skipped) { version = data.version; }
    lastUpdate = new Date();
  }

  function poll() {
    var target = new URL(url, window.location.href);
    target.searchParams.set("v", version);
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, interval * 2) : null;
    fetch(target.toString(), {credentials: "same-origin", cache: "no-store",
                              headers: {"Accept": "application/json"},
                              signal: controller ? controller.signal : undefined})
      .then(function (response) {
        if (response.status === 401) { throw new Error("signed-out"); }
        if (response.status === 204) { return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) { if (data) { apply(data); } fresh(); })
      .catch(function (error) {
        missed += 1;
        if (error && error.message === "signed-out") {
          stale("you are signed out. Reload the page to sign in again.");
        } else if (missed >= staleAfter) {
          stale();
        }
      })
      .then(function () { if (timer) { clearTimeout(timer); } setTimeout(poll, interval); });
  }

  setTimeout(poll, interval);
})();

// The queue's bulk actions: "Select all on this page" ticks every row, and the bar
// says how many are selected. Without JavaScript the form still works: the
// server takes "select all" as every ticket of the page.
(function () {
  "use strict";
  var form = document.getElementById("bulk-form");
  var all = document.getElementById("select-all");
  if (!form || !all) { return; }
  var count = document.getElementById("bulk-count");

  function boxes() { return form.querySelectorAll('input[name="ticket"]'); }

  function show() {
    var picked = 0;
    boxes().forEach(function (box) {
      var row = box.closest("tr");
      if (row) { row.classList.toggle("picked", box.checked); }
      if (box.checked) { picked += 1; }
    });
    count.textContent = picked ? picked + " selected" : "";
  }

  all.addEventListener("change", function () {
    boxes().forEach(function (box) { box.checked = all.checked; });
    show();
  });
  form.addEventListener("change", function (event) {
    if (event.target.name === "ticket") {
      if (!event.target.checked) { all.checked = false; }
      show();
    }
  });
  show();
})();
