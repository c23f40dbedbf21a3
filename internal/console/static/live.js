// haechi console: live updates over Server-Sent Events. Our own code, no
// libraries. Pages are complete without it; this only keeps them current.
(function () {
  "use strict";
  var body = document.body;
  var src = body.getAttribute("data-live");
  if (!src || !window.EventSource) return;

  var rank = { low: 1, medium: 2, high: 3, critical: 4 };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Does an alert pass the alerts page's filter (kept in data-filter)?
  function passes(tbody, a) {
    var f = new URLSearchParams(tbody.getAttribute("data-filter") || "");
    if (f.get("severity") && (rank[a.severity] || 0) < (rank[f.get("severity")] || 0)) return false;
    if (f.get("detector") && f.get("detector") !== a.detector) return false;
    if (f.get("kind") && a.entity.split(":")[0] !== f.get("kind")) return false;
    if (f.get("state") && f.get("state") !== "open") return false; // a raised alert is open
    if (f.get("to")) return false; // a window in the past gets no new alerts
    if (f.get("cursor")) return false; // new alerts go on the first page, not this one
    return true;
  }

  function row(a) {
    var kind = a.entity.split(":")[0], id = a.entity.slice(kind.length + 1);
    var tr = el("tr", { "class": "fresh", "data-alert": a.id });
    var td = el("td"); td.appendChild(el("time", { datetime: a.time }, a.time.replace("T", " ").replace(/\..*|Z$/, ""))); tr.appendChild(td);
    td = el("td"); td.appendChild(el("span", { "class": "badge " + a.severity }, a.severity)); tr.appendChild(td);
    td = el("td"); td.appendChild(el("a", { href: a.url }, a.title)); tr.appendChild(td);
    td = el("td"); td.appendChild(el("a", { href: "/entities/" + encodeURIComponent(kind) + "/" + encodeURIComponent(id) }, a.entity)); tr.appendChild(td);
    tr.appendChild(el("td", {}, a.detector));
    tr.appendChild(el("td", { "class": "num" }, String(a.findings)));
    return tr;
  }

  var toastTimer;
  function toast(a) {
    var t = document.getElementById("toast");
    if (!t) return;
    t.textContent = "";
    t.appendChild(document.createTextNode("New " + a.severity + " alert: "));
    t.appendChild(el("a", { href: a.url }, a.title));
    t.appendChild(document.createTextNode(" — " + a.entity));
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.hidden = true; }, 12000);
  }

  function onAlert(a) {
    incidentsChanged();
    var tbody = document.getElementById("live-alerts");
    if (tbody) {
      var old = tbody.querySelector('tr[data-alert="' + CSS.escape(a.id) + '"]');
      if (old) {
        old.lastChild.textContent = String(a.findings);
      } else if (a.change === "raised" && passes(tbody, a)) {
        var empty = tbody.querySelector("tr.empty-row");
        if (empty) empty.remove();
        tbody.insertBefore(row(a), tbody.firstChild);
      }
    }
    if (a.change === "raised") {
      var c = document.querySelector('[data-sev-count="' + a.severity + '"]');
      if (c) c.textContent = String((parseInt(c.textContent, 10) || 0) + 1);
      if ((rank[a.severity] || 0) >= rank.high) toast(a);
    }
  }

  // The incidents lists (the Incidents page's first page, the overview's
  // open incidents) are server-rendered rows: when alerts arrive, fetch
  // them again — soon, and once more after the store has surely kept the
  // alerts (the writer commits them, and assigns their incidents, in
  // batches) — and mark the rows that are new or grew.
  var incTimer, incLate;
  function refreshIncidents() {
    var tb = document.getElementById("live-incidents");
    if (!tb || !tb.getAttribute("data-refresh")) return;
    fetch(tb.getAttribute("data-refresh"), { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html === null) return;
      var before = {};
      tb.querySelectorAll("tr[data-incident]").forEach(function (tr) { before[tr.getAttribute("data-incident")] = tr.getAttribute("data-alerts"); });
      tb.innerHTML = html;
      set("incident-count", String(tb.querySelectorAll("tr[data-incident]").length));
      tb.querySelectorAll("tr[data-incident]").forEach(function (tr) {
        if (before[tr.getAttribute("data-incident")] !== tr.getAttribute("data-alerts")) tr.classList.add("fresh");
      });
    }).catch(function () {});
  }
  function incidentsChanged() {
    if (!document.getElementById("live-incidents")) return;
    if (!incTimer) incTimer = setTimeout(function () { incTimer = null; refreshIncidents(); }, 1500);
    clearTimeout(incLate);
    incLate = setTimeout(refreshIncidents, 6000);
  }

  function set(id, text) { var e = document.getElementById(id); if (e) e.textContent = text; }

  function onStats(s) {
    if (!s.known) return;
    set("rate", s.event_rate < 0 ? "…" : Math.round(s.event_rate) + "/s");
    set("lag", s.lag_seconds < 1 ? Math.round(s.lag_seconds * 1000) + " ms" : s.lag_seconds.toFixed(1) + " s");
    set("processed", Math.round(s.processed).toLocaleString("en-US"));
    set("queue", Math.round(s.queue_depth).toLocaleString("en-US"));
  }

  var es = new EventSource(src);
  es.addEventListener("alert", function (e) { onAlert(JSON.parse(e.data)); });
  es.addEventListener("stats", function (e) { onStats(JSON.parse(e.data)); });
  // The server ends the stream when its token is revoked or its session
  // ends ("login": true): stop reconnecting and say so. Otherwise the
  // browser reconnects on its own.
  es.addEventListener("end", function (e) {
    var d = JSON.parse(e.data);
    if (!d.login) return;
    es.close();
    body.classList.add("offline");
    var t = document.getElementById("toast");
    if (!t) return;
    clearTimeout(toastTimer);
    t.textContent = "";
    t.appendChild(document.createTextNode("Live updates stopped: " + d.reason + ". "));
    t.appendChild(el("a", { href: "/login?next=" + encodeURIComponent(location.pathname + location.search) }, "Log in again"));
    t.hidden = false;
  });
  es.onopen = function () { body.classList.remove("offline"); };
  es.onerror = function () { body.classList.add("offline"); };
})();
