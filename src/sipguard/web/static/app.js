"use strict";
// The dashboard. Untrusted text (addresses, accounts, log lines) only ever goes through
// textContent, never innerHTML. State changes are POSTs with the session's CSRF token.
(function () {
  let csrf = "";
  const charts = {};
  const $ = (sel) => document.querySelector(sel);

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
    return e;
  }
  // the overview is pushed every second: a row that renders the same stays in place, so the
  // button under the pointer is not replaced (and its click lost) by an identical one
  function fill(tbody, rows) {
    const old = Array.from(tbody.children);
    rows.forEach((row, i) => {
      if (!old[i]) tbody.append(row);
      else if (old[i].outerHTML !== row.outerHTML) old[i].replaceWith(row);
    });
    for (const gone of old.slice(rows.length)) gone.remove();
  }
  function when(t) { return t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : ""; }
  function left(s) { if (s == null) return "permanent"; if (s < 120) return Math.round(s) + "s"; if (s < 7200) return Math.round(s / 60) + "m"; return Math.round(s / 3600) + "h"; }
  function toast(text) { const t = $("#toast"); t.textContent = text; t.classList.add("show"); setTimeout(() => t.classList.remove("show"), 3000); }

  async function api(path) {
    const r = await fetch(path, { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login"; throw new Error("login required"); }
    return r.json();
  }
  function confirmThen(text) {
    return new Promise((resolve) => {
      const d = $("#confirm");
      $("#confirm-text").textContent = text;
      const done = (v) => { d.close(); $("#confirm-ok").onclick = $("#confirm-cancel").onclick = null; resolve(v); };
      $("#confirm-ok").onclick = () => done(true);
      $("#confirm-cancel").onclick = () => done(false);
      d.showModal();
    });
  }
  async function act(action, addr, extra) {
    const what = { ban: "Ban", unban: "Unban", extend: "Extend the ban of", allow: "Allow (never ban)" }[action];
    const dur = extra && extra.for ? " for " + extra.for : "";
    if (!(await confirmThen(what + " " + addr + dur + "?"))) return;
    const r = await fetch("/api/action", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(Object.assign({ action: action, addr: addr }, extra || {})),
    });
    const body = await r.json();
    toast(r.ok ? action + " " + addr + ": done" : "refused: " + body.error);
    if (location.hash.startsWith("#bans")) loadBans();
  }
  function buttons(network) {
    return el("td", {},
      el("button", { onclick: () => { location.hash = "#explain/" + network; } }, "explain"), " ",
      el("button", { onclick: () => act("extend", network, { for: "1d" }) }, "extend 1d"), " ",
      el("button", { class: "danger unban", "data-network": network, onclick: () => act("unban", network) }, "unban"));
  }

  // ---- overview ----------------------------------------------------------------------
  const PALETTE = ["#3b82f6", "#ef4444", "#f59e0b", "#10b981", "#8b5cf6", "#ec4899", "#14b8a6", "#6b7280", "#84cc16", "#f97316"];
  function chart(id, type, opts) {
    if (!charts[id]) {
      charts[id] = new Chart($(id), {
        type: type, data: { labels: [], datasets: [] },
        options: Object.assign({ animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { position: "bottom" } } }, opts || {}),
      });
    }
    return charts[id];
  }
  function minutes(list) { return list.map((t) => new Date(t * 1000).toISOString().slice(11, 16)); }
  function render(o) {
    $("#active-bans").textContent = o.active_bans;
    const last = (arr) => (arr.length ? arr[arr.length - 1] : 0);
    let evs = 0;
    for (const k of Object.keys(o.events_by_kind)) evs += last(o.events_by_kind[k]);
    $("#events-minute").textContent = evs;
    $("#bans-minute").textContent = last(o.bans_per_minute);
    if (window.Chart) {
      const ce = chart("#chart-events", "bar", { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } });
      ce.data.labels = minutes(o.minutes);
      ce.data.datasets = Object.entries(o.events_by_kind).map(([k, v], i) => ({ label: k, data: v, backgroundColor: PALETTE[i % PALETTE.length] }));
      ce.update();
      const cb = chart("#chart-bans", "line", { scales: { y: { beginAtZero: true } }, plugins: { legend: { display: false } } });
      cb.data.labels = minutes(o.minutes);
      cb.data.datasets = [{ label: "bans", data: o.bans_per_minute, borderColor: "#ef4444", fill: false }];
      cb.update();
      const co = chart("#chart-origin", "doughnut");
      co.data.labels = Object.keys(o.bans_by_origin);
      co.data.datasets = [{ data: Object.values(o.bans_by_origin), backgroundColor: PALETTE }];
      co.update();
      const cc = chart("#chart-countries", "bar", { indexAxis: "y", plugins: { legend: { display: false } } });
      cc.data.labels = Object.keys(o.countries);
      cc.data.datasets = [{ label: "banned", data: Object.values(o.countries), backgroundColor: "#3b82f6" }];
      cc.update();
    }
    fill($("#top-sources tbody"), o.top_sources.map((s) => el("tr", {},
      el("td", {}, el("a", { href: "#explain/" + s.source }, s.source)), el("td", {}, s.country || "–"), el("td", {}, s.events),
      el("td", {}, Object.keys(s.kinds).join(", ")))));
    fill($("#accounts tbody"), o.accounts.map((a) => el("tr", { class: a.distributed ? "distributed" : "" },
      el("td", {}, a.account + (a.distributed ? " (distributed)" : "")), el("td", {}, a.sources), el("td", {}, a.events))));
    fill($("#recent-bans tbody"), o.recent_bans.map((b) => el("tr", { "data-network": b.network },
      el("td", {}, b.network), el("td", {}, b.rule), el("td", {}, b.origin), el("td", {}, left(b.remaining)), buttons(b.network))));
    fill($("#fraud-list"), o.fraud.slice(0, 10).map((f) => el("li", {}, when(f.time) + " " + f.rule + " " + f.key + ": " + f.reason)));
    const h = o.health;
    const items = h.watching.map((w) => el("li", { class: w.active ? "" : "bad" }, w.source + " " + w.name + ": " + w.state));
    if (h.warning) items.unshift(el("li", { class: "bad" }, h.warning));
    items.push(el("li", { class: h.firewall_errors ? "bad" : "" }, "firewall errors: " + h.firewall_errors + " (" + h.backend + ")"));
    items.push(el("li", { class: (h.queue && h.queue.dropped) ? "bad" : "" }, "event queue dropped: " + ((h.queue && h.queue.dropped) || 0)));
    items.push(el("li", {}, "fraud watcher: " + (h.fraud && h.fraud.enabled ? "on" : "off")));
    fill($("#health"), items);
  }
  let stream = null;
  function live() {
    if (stream) return;
    stream = new EventSource("/api/stream");
    stream.addEventListener("overview", (ev) => {
      const o = JSON.parse(ev.data);
      $("#live-state").textContent = o.error ? "error" : "live";
      if (!o.error) { document.body.dataset.updated = String(o.time); render(o); }
    });
    stream.onerror = () => { $("#live-state").textContent = "reconnecting"; };
  }

  // ---- tables ------------------------------------------------------------------------
  async function loadAttackers() {
    const rows = await api("/api/attackers?q=" + encodeURIComponent($("#attackers-q").value));
    fill($("#attackers-table tbody"), rows.map((a) => el("tr", {},
      el("td", {}, a.source), el("td", {}, a.events), el("td", {}, Object.keys(a.kinds).join(", ")),
      el("td", {}, a.accounts.join(", ")), el("td", {}, when(a.last)),
      el("td", {}, el("button", { onclick: () => { location.hash = "#explain/" + a.source; } }, "explain"), " ",
        el("button", { class: "danger", onclick: () => act("ban", a.source, { for: "1d" }) }, "ban 1d")))));
  }
  async function loadBans() {
    const rows = await api("/api/bans?q=" + encodeURIComponent($("#bans-q").value));
    fill($("#bans-table tbody"), rows.map((b) => el("tr", { "data-network": b.network },
      el("td", {}, b.network), el("td", {}, b.rule), el("td", {}, b.origin), el("td", {}, b.reason),
      el("td", {}, left(b.remaining)), buttons(b.network))));
  }
  async function loadExplain(addr) {
    $("#explain-addr").textContent = addr;
    const r = await fetch("/api/explain?addr=" + encodeURIComponent(addr), { credentials: "same-origin" });
    const x = await r.json();
    if (!r.ok) { $("#explain-summary").textContent = x.error; fill($("#explain-history tbody"), []); fill($("#explain-events tbody"), []); return; }
    const a = x.active;
    $("#explain-summary").textContent = (a ? "Banned by " + a.rule + ": " + a.reason + " (" + left(a.remaining) + " left)" : "Not banned now.") +
      (x.allow_listed ? " Allow-listed by " + x.allow_listed + "." : "");
    fill($("#explain-history tbody"), x.history.map((h) => el("tr", {}, el("td", {}, when(h.start)), el("td", {}, h.rule), el("td", {}, h.action), el("td", {}, h.reason))));
    fill($("#explain-events tbody"), x.events.map((e) => el("tr", {}, el("td", {}, when(e.time)), el("td", {}, e.kind), el("td", {}, e.account || ""),
      el("td", { class: "line" }, e.origin.text ? e.origin.source + ":" + e.origin.line + ": " + e.origin.text : e.detail))));
  }
  async function loadFraud() {
    const f = await api("/api/fraud");
    const box = $("#fraud-detail");
    box.replaceChildren(...(f.alerts.length ? f.alerts.map((a) => el("div", { class: "panel" },
      el("h3", {}, when(a.time) + " " + a.rule + " " + a.key + " (" + a.action + ")"), el("p", {}, a.reason),
      el("ul", {}, ...a.calls.map((c) => el("li", {}, (c.origin && c.origin.text) || c.detail)))))
      : [el("p", {}, "No fraud alert. Watcher " + (f.status.enabled ? "on." : "off."))]));
  }
  async function loadAudit() {
    const r = await fetch("/api/audit", { credentials: "same-origin" });
    const a = await r.json();
    if (!r.ok || a.error) { $("#audit-summary").textContent = a.error; return; }
    $("#audit-summary").textContent = "Score " + a.score + "/100, " + a.findings.length + " findings, run " + when(a.time) + " on " + a.path + ".";
    fill($("#audit-table tbody"), a.findings.map((f) => el("tr", {}, el("td", {}, f.severity), el("td", {}, f.check || f.id || ""),
      el("td", {}, (f.file || "") + (f.line ? ":" + f.line : "")), el("td", {}, f.message || f.title || ""))));
  }

  // ---- navigation --------------------------------------------------------------------
  function show() {
    const h = location.hash.slice(1) || "overview";
    const [tab, arg] = [h.split("/")[0], h.split("/").slice(1).join("/")];
    for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== "tab-" + tab;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.dataset.tab === tab);
    const load = { attackers: loadAttackers, bans: loadBans, fraud: loadFraud, audit: loadAudit }[tab];
    if (tab === "explain") loadExplain(decodeURIComponent(arg));
    else if (load) load();
  }
  async function start() {
    const s = await api("/api/session");
    csrf = s.csrf;
    $("#who").textContent = s.user;
    $("#logout").hidden = !s.login;
    $("#logout").addEventListener("submit", async (ev) => {  // a POST: it needs the token too
      ev.preventDefault();
      await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
      location.href = "/login";
    });
    $("#attackers-q").addEventListener("input", loadAttackers);
    $("#bans-q").addEventListener("input", loadBans);
    $("#manual-ban").addEventListener("click", () => act("ban", $("#manual-addr").value.trim(), { for: $("#manual-for").value.trim() }));
    $("#manual-allow").addEventListener("click", () => act("allow", $("#manual-addr").value.trim()));
    window.addEventListener("hashchange", show);
    show();
    live();
  }
  start();
})();
