// agent-sre status page. Reads the admin API (/v1/*) from the browser, refreshes by polling
// while the tab is visible, and builds every element with the DOM (text is always a text
// node, never HTML). The admin token lives in sessionStorage only (never in the URL, never in
// a log) and goes out as "Authorization: Bearer".
"use strict";

(function () {
  const POLL_MS = 5000;
  const PAGE = 50;
  const TOKEN_KEY = "agent-sre-admin-token";
  const C = window.Charts;

  // -- DOM ------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  // replaceChildren without the null/false children (optional parts of a page)
  function fill(el, ...children) {
    el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
    return el;
  }

  function fmtNum(x, digits) {
    if (typeof x !== "number" || !Number.isFinite(x)) return "—";
    return x.toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 2 : digits });
  }
  function pct(x, digits) {
    if (typeof x !== "number" || !Number.isFinite(x)) return "—";
    return (x * 100).toFixed(digits === undefined ? 1 : digits) + "%";
  }
  function usd(x) {
    if (typeof x !== "number" || !Number.isFinite(x)) return "—";
    return "$" + (Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2));
  }
  function when(t) {
    if (typeof t === "string") return t.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
    if (typeof t !== "number" || !Number.isFinite(t)) return "—";
    return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }
  function ago(t) {
    if (typeof t !== "number" || !Number.isFinite(t)) return "—";
    const s = Math.max(0, Date.now() / 1000 - t);
    if (s < 90) return Math.round(s) + "s ago";
    if (s < 5400) return Math.round(s / 60) + "m ago";
    if (s < 172800) return Math.round(s / 3600) + "h ago";
    return Math.round(s / 86400) + "d ago";
  }
  function duration(s) {
    if (typeof s !== "number" || !Number.isFinite(s)) return "—";
    if (s < 1) return (s * 1000).toFixed(1) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return (s / 60).toFixed(0) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }
  function chip(text, kind) {
    return h("span", { class: "chip " + String(kind || text || "").toLowerCase().replace(/[^a-z_-]/g, "") }, text);
  }
  function link(route, text) {
    return h("a", { href: "#" + route }, text);
  }
  const enc = encodeURIComponent;

  // -- API ------------------------------------------------------------------------------
  let token = sessionStorage.getItem(TOKEN_KEY) || "";

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || "HTTP " + status);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path, options) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method: "GET", headers, cache: "no-store", credentials: "omit", redirect: "error" };
    if (options && options.method) init.method = options.method;
    if (options && options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, { error: { message: "the daemon cannot be reached" } });
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      if (response.status === 401 || response.status === 403) showAuthNeeded(response.status, body);
      throw new ApiError(response.status, body);
    }
    return body;
  }

  // A read that may legitimately be absent (fleet, certifications): null on 404, and the
  // same route is not asked again for a minute (no 404 every poll on a daemon without it).
  const absent = new Map();
  async function optional(path) {
    const route = path.split("?")[0];
    if ((absent.get(route) || 0) > Date.now()) return null;
    try {
      return await api(path);
    } catch (err) {
      if (err.status === 404) {
        if (route.startsWith("/v1/fleet") || route.startsWith("/v1/certifications")) absent.set(route, Date.now() + 60000);
        return null;
      }
      throw err;
    }
  }

  // -- token ----------------------------------------------------------------------------
  function renderAuth() {
    const box = $("auth");
    fill(box,
      token
        ? h("span", {}, chip("token set", "ok"), " ", h("button", { id: "logout", class: "link", onclick: logout }, "forget token"))
        : h("button", { id: "login-open", onclick: () => openLogin("") }, "enter admin token"),
    );
  }
  function openLogin(reason) {
    $("login-reason").textContent = reason || "Changes (block, unblock) and reads from beyond loopback need the admin token.";
    $("login-token").value = "";
    $("login").showModal();
    $("login-token").focus();
  }
  function logout() {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    renderAuth();
    refreshNow();
  }
  function showAuthNeeded(status, body) {
    const message = (body && body.error && body.error.message) || "the admin token is needed";
    const banner = $("banner");
    fill(banner,
      h("span", {}, status === 401 && token ? "The admin token was refused: " : "", message, " "),
      h("button", { onclick: () => openLogin(message) }, token ? "enter another token" : "enter admin token"),
    );
    banner.hidden = false;
  }

  // -- pages ----------------------------------------------------------------------------
  // A page: {title, mount(main, params) -> refresh()} ; refresh() re-reads and redraws the
  // page's data area, keeping its controls (search box, page number) as they are.

  function section(title, ...children) {
    return h("section", { class: "card" }, h("h2", {}, title), ...children);
  }
  function table(columns, rows, opts) {
    opts = opts || {};
    const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : "" }, c.title)));
    const body = rows.map((row) =>
      h("tr", { class: opts.rowClass ? opts.rowClass(row) : "" },
        columns.map((c) => h("td", { class: c.num ? "num" : "" }, c.cell(row)))),
    );
    if (!rows.length) body.push(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, opts.empty || "nothing yet")));
    return h("table", { class: "grid-table " + (opts.cls || "") }, h("thead", {}, head), h("tbody", {}, body));
  }
  function errorBox(err) {
    const msg = err instanceof ApiError ? err.message : String(err);
    return h("div", { class: "error-box" }, msg);
  }

  // A search box and pager; state is {q, offset}; onChange() redraws.
  function pager(state, total, onChange) {
    const last = Math.max(0, Math.ceil(total / PAGE) - 1);
    const page = Math.floor(state.offset / PAGE);
    return h("div", { class: "pager" },
      h("button", { disabled: page <= 0, onclick: () => { state.offset = Math.max(0, state.offset - PAGE); onChange(); } }, "‹ prev"),
      h("span", {}, ` page ${page + 1} of ${last + 1} (${total}) `),
      h("button", { disabled: page >= last, onclick: () => { state.offset += PAGE; onChange(); } }, "next ›"));
  }
  function searchBox(state, placeholder, onChange) {
    let timer = null;
    return h("input", {
      type: "search", class: "search", placeholder, value: state.q, "aria-label": placeholder,
      oninput: (e) => {
        clearTimeout(timer);
        timer = setTimeout(() => { state.q = e.target.value; state.offset = 0; onChange(); }, 200);
      },
    });
  }
  function clientPage(rows, state, key) {
    const q = state.q.toLowerCase();
    const found = q ? rows.filter((r) => key(r).toLowerCase().includes(q)) : rows;
    if (state.offset >= found.length) state.offset = 0;
    return { total: found.length, rows: found.slice(state.offset, state.offset + PAGE) };
  }

  const STATUS_ORDER = { EXHAUSTED: 0, CRITICAL: 1, WARNING: 2, UNKNOWN: 3, HEALTHY: 4 };
  function sloStatus(s) {
    return chip(String(s || "UNKNOWN"), "status-" + String(s || "unknown").toLowerCase());
  }

  // Overview -----------------------------------------------------------------------------
  function overview(main) {
    const data = h("div", { class: "cards" });
    main.append(h("h1", {}, "Overview"), data);
    return async function refresh() {
      const [status, slos, budgets, incidents, chaos, rollouts, agents, fleet] = await Promise.all([
        api("/v1/status"), api("/v1/slos"), api("/v1/budgets"), api("/v1/incidents?state=open"),
        optional("/v1/chaos"), optional("/v1/rollouts"), api("/v1/agents?limit=1"), optional("/v1/fleet"),
      ]);
      const counts = {};
      for (const s of slos.slos) counts[s.status] = (counts[s.status] || 0) + 1;
      const bad = slos.slos.filter((s) => s.status !== "HEALTHY").sort((a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status]);
      const near = [];
      for (const b of budgets.budgets) {
        for (const s of b.subjects) {
          if (typeof s.spent_usd === "number" && b.limit_usd > 0) near.push({ budget: b, s, used: s.spent_usd / b.limit_usd });
        }
      }
      near.sort((a, b) => b.used - a.used);
      const running = chaos ? chaos.experiments.filter((e) => e.state !== "idle") : [];
      const nodeName = Object.values(status.node || {})[0] || "";
      fill(data,
        section("Node",
          h("dl", { class: "facts" },
            h("dt", {}, "node"), h("dd", { id: "node-name" }, nodeName),
            h("dt", {}, "version"), h("dd", {}, status.version),
            h("dt", {}, "uptime"), h("dd", {}, duration(status.uptime_seconds)),
            h("dt", {}, "ready"), h("dd", {}, status.ready ? chip("ready", "ok") : chip("not ready", "bad")),
            h("dt", {}, "agents seen"), h("dd", { id: "agents-seen" }, fmtNum(agents.total, 0)),
            h("dt", {}, "upstream queue"), h("dd", {}, `${fmtNum((status.queue || {}).requests, 0)} requests`))),
        section("SLOs",
          h("div", { class: "counts" }, Object.keys(STATUS_ORDER).filter((k) => counts[k]).map((k) => h("span", {}, sloStatus(k), " ", counts[k]))),
          table([
            { title: "SLO", cell: (s) => link("/slos/" + enc(s.name), s.name) },
            { title: "status", cell: (s) => sloStatus(s.status) },
            { title: "budget left", num: true, cell: (s) => pct(s.overall.budget.remaining_ratio) },
          ], bad.slice(0, 10), { empty: `all ${slos.slos.length} SLOs healthy` })),
        section("Budgets near their limits",
          table([
            { title: "budget", cell: (r) => link("/budgets", r.budget.name) },
            { title: "subject", cell: (r) => h("span", { class: "wrap" }, r.s.subject) },
            { title: "spend", cell: (r) => h("span", { class: "nowrap" }, C.bar(r.s.spent_usd, r.budget.limit_usd, { width: 80, fill: r.used >= 1 ? "bad" : r.used >= 0.8 ? "warn" : "ok", marks: r.budget.soft_thresholds.map((t) => t * r.budget.limit_usd), label: `${usd(r.s.spent_usd)} of ${usd(r.budget.limit_usd)}` }), " ", pct(r.used, 0)) },
          ], near.slice(0, 8), { empty: "no spend yet" })),
        section("Open incidents",
          table([
            { title: "id", cell: (i) => link("/incidents/" + enc(i.id), i.id) },
            { title: "severity", cell: (i) => chip(i.severity) },
            { title: "title", cell: (i) => i.title },
            { title: "opened", cell: (i) => ago(i.opened_at) },
          ], incidents.incidents.slice(0, 10), { empty: "no open incident" })),
        section("Experiments and rollouts",
          table([
            { title: "kind", cell: (r) => r.kind },
            { title: "name", cell: (r) => link(r.route, r.name) },
            { title: "state", cell: (r) => chip(r.state) },
          ], [
            ...running.map((e) => ({ kind: "chaos", name: e.name, state: e.state, route: "/chaos" })),
            ...(rollouts ? rollouts.rollouts.map((r) => ({ kind: "rollout", name: r.name, state: `${r.phase} ${fmtNum(r.weight)}%`, route: "/rollouts" })) : []),
          ], { empty: "no experiment running, no rollout" })),
        fleetCard(fleet),
      );
    };
  }

  function fleetCard(fleet) {
    if (!fleet) return section("Fleet", h("p", { class: "muted", id: "fleet-unavailable" }, "fleet view not available on this daemon"));
    const covers = fleet.covers || {};
    return wide("Fleet",
      h("p", {}, `scope: ${fleet.scope}; ${fmtNum(covers.nodes, 0)} nodes (${fmtNum(covers.up, 0)} up, ${fmtNum(covers.stale, 0)} stale)`,
        fleet.version_skew ? chip("version skew", "warn") : null),
      table([
        { title: "node", cell: (n) => n.node },
        { title: "state", cell: (n) => chip(n.state) },
        { title: "health", cell: (n) => chip(n.health) },
        { title: "version", cell: (n) => n.version },
        { title: "agents", num: true, cell: (n) => fmtNum(n.agents, 0) },
        { title: "open incidents", num: true, cell: (n) => fmtNum(n.open_incidents, 0) },
        { title: "seen", cell: (n) => (typeof n.age_seconds === "number" ? (n.age_seconds < 1 ? "now" : duration(n.age_seconds) + " ago") : when(n.last_seen)) },
      ], (fleet.nodes || []).slice(0, 50), { cls: "fleet-nodes" }));
  }

  // SLOs ---------------------------------------------------------------------------------
  function sloList(main) {
    const state = { q: "", offset: 0 };
    const data = h("div", {});
    let last = null;
    const draw = () => {
      if (!last) return;
      const rows = [...last.slos].sort((a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || a.name.localeCompare(b.name));
      const paged = clientPage(rows, state, (s) => s.name + " " + s.description);
      fill(data,
        table([
          { title: "SLO", cell: (s) => link("/slos/" + enc(s.name), s.name) },
          { title: "status", cell: (s) => sloStatus(s.status) },
          { title: "target", num: true, cell: (s) => pct(s.target, 2) },
          { title: "window", cell: (s) => s.window },
          { title: "SLI", num: true, cell: (s) => pct(windowOf(s.overall, s.overall.budget.window).sli, 3) },
          { title: "good / total", num: true, cell: (s) => `${fmtNum(s.overall.budget.good, 0)} / ${fmtNum(s.overall.budget.total, 0)}` },
          { title: "error budget left", cell: (s) => h("span", {}, C.bar(Math.max(0, s.overall.budget.remaining_ratio), 1, { fill: budgetFill(s.overall.budget.remaining_ratio), label: pct(s.overall.budget.remaining_ratio) }), " ", pct(s.overall.budget.remaining_ratio)) },
          { title: "burn (5m)", num: true, cell: (s) => fmtNum(s.overall.budget.current_burn_rate) },
          { title: "firing", cell: (s) => s.overall.alerts.filter((a) => a.firing).map((a) => chip(a.name, a.severity)) },
        ], paged.rows, { empty: "no SLO configured (or none matches)", cls: "slos" }),
        pager(state, paged.total, draw));
    };
    main.append(h("h1", {}, "SLOs"), searchBox(state, "search SLOs", draw), data);
    return async function refresh() {
      last = await api("/v1/slos");
      draw();
    };
  }
  function wide(title, ...children) {
    const el = section(title, ...children);
    el.classList.add("wide");
    return el;
  }
  // The burn-down over the whole window and over the last six hours (where a fall of the
  // last minutes shows); below -100% the line is drawn at -100% (the figure says how far).
  function burnDownCharts(burn, window, name) {
    const pts = burn.points;
    const clamp = (p) => [p[0], Math.max(-1, p[1])];
    const recentFrom = burn.at - 6 * 3600;
    const recent = pts.filter((p) => p[0] >= recentFrom);
    const before = pts.filter((p) => p[0] < recentFrom);
    if (before.length) recent.unshift([recentFrom, before[before.length - 1][1]]);
    const chart = (points, label, xMin) => C.lineChart({
      label,
      series: [{ points: points.map(clamp), cls: "burn", name: "budget remaining" }],
      hlines: [{ y: 0, label: "budget spent", cls: "zero" }],
      yMax: 1, yMin: Math.min(0, ...points.map((p) => Math.max(-1, p[1]))), xMin, xMax: burn.at,
      yFormat: (v) => (v * 100).toFixed(0) + "%",
    });
    const last = pts.length ? pts[pts.length - 1][1] : null;
    return h("div", { id: "burndown", class: "two-charts", "data-points": String(pts.length),
      "data-first": String(pts.length ? pts[0][1] : ""), "data-last": String(last === null ? "" : last) },
      h("figure", {}, chart(pts, `error budget remaining of ${name} over ${window}`, pts.length ? pts[0][0] : undefined),
        h("figcaption", {}, `over the SLO window (${window})`)),
      h("figure", {}, chart(recent, `error budget remaining of ${name} over the last 6 hours`, recentFrom),
        h("figcaption", {}, "the last 6 hours", last !== null && last < -1 ? ` (now ${pct(last)}: drawn at -100%)` : "")));
  }
  function windowOf(inst, name) {
    return inst.windows.find((w) => w.window === name) || {};
  }
  function budgetFill(r) {
    return r <= 0 ? "bad" : r < 0.25 ? "warn" : "ok";
  }

  function sloDetail(main, name) {
    const data = h("div", { class: "cards" });
    const state = { q: "", offset: 0 };
    const instBox = h("div", {});
    const instTitle = h("h2", {}, "Label sets");
    const instCard = h("section", { class: "card", hidden: true }, instTitle, searchBox(state, "search label values", () => drawInstances()), instBox);
    let report = null;
    function drawInstances() {
      if (!report || !report.label_keys.length) return;
      instCard.hidden = false;
      instTitle.textContent = `Label sets (${report.instances.length}${report.overflow ? ", overflowing" : ""})`;
      const instances = clientPage(report.instances, state, (i) => Object.entries(i.labels).map(([k, v]) => k + "=" + v).join(" "));
      fill(instBox,
        table([
          { title: "labels", cell: (i) => Object.entries(i.labels).map(([k, v]) => h("span", { class: "label" }, k + "=" + v)) },
          { title: "status", cell: (i) => sloStatus(i.status) },
          { title: "good / total", num: true, cell: (i) => `${fmtNum(i.budget.good, 0)} / ${fmtNum(i.budget.total, 0)}` },
          { title: "budget left", num: true, cell: (i) => pct(i.budget.remaining_ratio) },
          { title: "burn (5m)", num: true, cell: (i) => fmtNum(i.budget.current_burn_rate) },
        ], instances.rows, { cls: "instances" }),
        pager(state, instances.total, drawInstances));
    }
    main.append(h("p", {}, link("/slos", "‹ all SLOs")), h("h1", {}, "SLO ", h("span", { class: "mono" }, name)), data, instCard);
    return async function refresh() {
      let burn, listing;
      [report, burn, listing] = await Promise.all([
        api("/v1/slos/" + enc(name)), api("/v1/slos/" + enc(name) + "/burndown"), api("/v1/slos"),
      ]);
      const b = report.overall.budget;
      const budget = 1 - report.target;
      const changes = listing.signals.filter((s) => s.slo === name).slice(-20).reverse();
      fill(data,
        wide("Error budget",
          h("div", { class: "facts-row" },
            h("span", {}, "status ", sloStatus(report.status)),
            h("span", {}, `target ${pct(report.target, 3)} over ${report.window}`),
            h("span", { id: "good-total" }, `good/total ${fmtNum(b.good, 0)} / ${fmtNum(b.total, 0)}`),
            h("span", {}, `budget left ${pct(b.remaining_ratio)}`),
            h("span", {}, `exhausted ${b.exhaustion_in_s === null ? "not at this rate" : b.exhaustion_in_s === 0 ? "now" : "in " + duration(b.exhaustion_in_s)}`)),
          burnDownCharts(burn, report.window, name)),
        wide("Burn rates per alert window",
          table([
            { title: "alert", cell: (a) => a.name },
            { title: "severity", cell: (a) => chip(a.severity) },
            { title: "windows", cell: (a) => `${a.long_window} / ${a.short_window}` },
            { title: "threshold", num: true, cell: (a) => "×" + fmtNum(a.factor) },
            { title: "long", cell: (a) => h("span", {}, C.bar(a.long_burn_rate, a.factor * 2, { width: 110, marks: [a.factor], fill: a.long_burn_rate > a.factor ? "bad" : "ok", label: `long ${fmtNum(a.long_burn_rate)} vs ${fmtNum(a.factor)}` }), " ", fmtNum(a.long_burn_rate)) },
            { title: "short", cell: (a) => h("span", {}, C.bar(a.short_burn_rate, a.factor * 2, { width: 110, marks: [a.factor], fill: a.short_burn_rate > a.factor ? "bad" : "ok", label: `short ${fmtNum(a.short_burn_rate)} vs ${fmtNum(a.factor)}` }), " ", fmtNum(a.short_burn_rate)) },
            { title: "firing", cell: (a) => (a.firing ? chip("firing", "bad") : chip("ok", "ok")) },
          ], report.overall.alerts, { empty: "alerting is off for this SLO" }),
          h("p", { class: "muted" }, `error budget ${pct(budget, 3)}; a burn rate of 1 spends it exactly over ${report.window}; an alert fires when both its windows burn faster than its threshold`)),
        section("Windows",
          table([
            { title: "window", cell: (w) => w.window },
            { title: "good / total", num: true, cell: (w) => `${fmtNum(w.good, 0)} / ${fmtNum(w.total, 0)}` },
            { title: "SLI", num: true, cell: (w) => pct(w.sli, 3) },
            { title: "burn rate", num: true, cell: (w) => fmtNum(w.burn_rate) },
          ], report.overall.windows)),
        wide("Recent status changes",
          table([
            { title: "at", cell: (s) => when(s.at) },
            { title: "labels", cell: (s) => Object.entries(s.labels || {}).map(([k, v]) => h("span", { class: "label" }, k + "=" + v)) },
            { title: "change", cell: (s) => h("span", {}, sloStatus(s.old), " → ", sloStatus(s.new)) },
            { title: "firing", cell: (s) => (s.firing || []).join(", ") },
          ], changes, { empty: "no change since the daemon started", cls: "changes" })),
      );
      drawInstances();
    };
  }

  // Budgets ------------------------------------------------------------------------------
  function budgetsPage(main) {
    const states = {};
    const selected = {};
    const data = h("div", { class: "cards" });
    main.append(h("h1", {}, "Budgets"), data);
    let sections = {};
    async function drawBudget(b) {
      const st = states[b.name];
      const detail = await api(`/v1/budgets/${enc(b.name)}?limit=${PAGE}&offset=${st.offset}&q=${enc(st.q)}`);
      const rows = detail.subjects;
      const pick = rows.find((r) => r.subject === selected[b.name]) || rows.slice().sort((x, y) => (y.used || 0) - (x.used || 0))[0];
      const body = sections[b.name].body;
      fill(body,
        table([
          { title: "subject", cell: (r) => h("button", { class: "link subject", onclick: () => { selected[b.name] = r.subject; drawBudget(b); } }, r.subject) },
          { title: "spend vs limit", cell: (r) => C.bar(r.spent_usd, b.limit_usd, { fill: r.used >= 1 ? "bad" : r.used >= 0.8 ? "warn" : "ok", marks: b.soft_thresholds.map((t) => t * b.limit_usd), label: `${usd(r.spent_usd)} of ${usd(b.limit_usd)}` }) },
          { title: "spent", num: true, cell: (r) => usd(r.spent_usd) },
          { title: "used", num: true, cell: (r) => pct(r.used) },
          { title: "rate / h", num: true, cell: (r) => usd(r.rate_usd_per_hour) },
          { title: "limit reached", cell: (r) => (r.exhaustion_in_s === null ? "not at this rate" : r.exhaustion_in_s === 0 ? chip("reached", "bad") : "in " + duration(r.exhaustion_in_s)) },
        ], rows, { empty: "no spend in this window", cls: "subjects", rowClass: (r) => (pick && r.subject === pick.subject ? "selected" : "") }),
        pager(st, detail.total, () => drawBudget(b)),
        pick && pick.points.length ? h("div", { class: "spend-chart" },
          h("h3", {}, "spend of ", h("span", { class: "mono" }, pick.subject), ` (${b.window} window)`),
          C.lineChart({
            label: `spend of ${pick.subject} against the limit`,
            series: [
              { points: pick.points, cls: "spend", step: true, name: "spend" },
              ...(pick.exhaustion_at ? [{ points: [pick.points[pick.points.length - 1], [pick.exhaustion_at, b.limit_usd]], cls: "forecast", dash: true, name: "forecast" }] : []),
            ],
            hlines: [{ y: b.limit_usd, label: "limit " + usd(b.limit_usd), cls: "limit" }],
            xMin: pick.window_start, xMax: Math.max(pick.window_end || detail.at, pick.exhaustion_at || 0, detail.at),
            yMin: 0,
            yFormat: (v) => usd(v),
          })) : null,
      );
    }
    return async function refresh() {
      const listing = await api("/v1/budgets");
      if (!listing.budgets.length) {
        fill(data, section("Budgets", h("p", { class: "muted" }, "no budget configured")));
        return;
      }
      const names = listing.budgets.map((b) => b.name).join("\n");
      if (Object.keys(sections).join("\n") !== names) {
        sections = {};
        fill(data);
        for (const b of listing.budgets) {
          states[b.name] = states[b.name] || { q: "", offset: 0 };
          const body = h("div", {});
          sections[b.name] = { body };
          data.append(section(`${b.name}: ${usd(b.limit_usd)} per ${b.scope} per ${b.window} (${b.action})`,
            searchBox(states[b.name], "search subjects", () => drawBudget(b)), body));
        }
      }
      await Promise.all(listing.budgets.map(drawBudget));
    };
  }

  // Agents -------------------------------------------------------------------------------
  function agentsPage(main) {
    const state = { q: "", offset: 0 };
    const fleetState = { q: "", offset: 0 };
    const local = h("div", {});
    const fleet = h("div", {});
    const fleetSearch = h("div", { hidden: true }, searchBox(fleetState, "search the fleet's agents", () => refresh()));
    const notice = h("div", { id: "agent-notice", class: "notice", role: "status" });
    async function act(agent, blocked) {
      if (!token) {
        openLogin("Blocking and unblocking an agent needs the admin token.");
        return;
      }
      try {
        await api(`/v1/agents/${enc(agent)}/${blocked ? "unblock" : "block"}`, { method: "POST", body: blocked ? undefined : { reason: "blocked from the status page" } });
        notice.textContent = `${agent} ${blocked ? "unblocked" : "blocked"}`;
      } catch (err) {
        notice.textContent = `not done: ${err.message}`;
      }
      await refresh();
    }
    async function refresh() {
      const [listing, throttles, certs] = await Promise.all([
        api(`/v1/agents?limit=${PAGE}&offset=${state.offset}&q=${enc(state.q)}`), optional("/v1/throttles"),
        optional("/v1/certifications"),
      ]);
      const throttled = new Map(((throttles && throttles.throttles) || []).map((t) => [t.agent_id, t]));
      // each agent's certified tier (its highest over its versions), when the daemon certifies
      const tiers = new Map();
      if (certs) {
        const order = certs.tiers || [];
        for (const item of certs.items || []) {
          const old = tiers.get(item.agent);
          if (item.tier && (!old || order.indexOf(item.tier) > order.indexOf(old.tier))) tiers.set(item.agent, item);
        }
      }
      fill(local,
        table([
          { title: "agent", cell: (a) => h("span", { class: "mono agent-id" }, a.agent_id) },
          { title: "calls", num: true, cell: (a) => fmtNum(a.requests, 0) },
          { title: "refused", num: true, cell: (a) => fmtNum(a.denied, 0) },
          { title: "cost", num: true, cell: (a) => usd(a.cost_usd) },
          { title: "state", cell: (a) => [a.blocked ? chip("blocked", "bad") : null, throttled.has(a.agent_id) ? chip("throttled", "warn") : null, !a.blocked && !throttled.has(a.agent_id) ? chip("ok", "ok") : null] },
          { title: "reason", cell: (a) => a.blocked_reason || (throttled.get(a.agent_id) || {}).reason || "" },
          { title: "last seen", cell: (a) => ago(a.last_seen) },
          ...(certs ? [{ title: "certified", cell: (a) => (tiers.has(a.agent_id) ? chip(`${tiers.get(a.agent_id).tier} (${tiers.get(a.agent_id).version})`, "ok") : "—") }] : []),
          { title: "", cell: (a) => h("button", { class: a.blocked ? "unblock" : "block danger", "data-agent": a.agent_id, onclick: () => act(a.agent_id, a.blocked) }, a.blocked ? "unblock" : "block") },
        ], listing.agents, { empty: "no agent seen on this node's proxy yet", cls: "agents" }),
        pager(state, listing.total, refresh));
      let fl = null;
      try {
        fl = await optional(`/v1/fleet/agents?limit=${PAGE}&offset=${fleetState.offset}&q=${enc(fleetState.q)}`);
      } catch (err) {
        fill(fleet, errorBox(err));
        return;
      }
      if (!fl) {
        fill(fleet, h("p", { class: "muted", id: "fleet-unavailable" }, "fleet view not available on this daemon"));
        return;
      }
      fleetSearch.hidden = false;
      fill(fleet,
        table([
          { title: "agent", cell: (a) => h("span", { class: "mono" }, a.agent) },
          { title: "versions", cell: (a) => (a.versions || []).join(", ") },
          { title: "nodes", cell: (a) => (a.nodes || []).join(", ") },
          { title: "calls", num: true, cell: (a) => fmtNum(a.calls, 0) },
          { title: "errors", num: true, cell: (a) => fmtNum(a.errors, 0) },
          { title: "cost", num: true, cell: (a) => usd(a.cost_usd) },
          { title: "last seen", cell: (a) => when(a.last_seen) },
        ], fl.items || [], { empty: "no agent in the fleet" }),
        pager(fleetState, fl.total || 0, refresh));
    }
    main.append(h("h1", {}, "Agents"), notice,
      section("On this node's proxy", searchBox(state, "search agents", refresh), local),
      section("Across the fleet", fleetSearch, fleet));
    return refresh;
  }

  // Incidents ----------------------------------------------------------------------------
  function incidentsPage(main) {
    const state = { q: "", offset: 0, which: "all" };
    const data = h("div", {});
    const select = h("select", { "aria-label": "state", onchange: (e) => { state.which = e.target.value; refresh(); } },
      ["all", "open", "resolved"].map((s) => h("option", { value: s }, s)));
    async function refresh() {
      const listing = await api("/v1/incidents?state=" + enc(state.which));
      const paged = clientPage(listing.incidents, state, (i) => `${i.id} ${i.title} ${(i.agents || []).join(" ")} ${(i.slos || []).join(" ")}`);
      fill(data, table([
        { title: "id", cell: (i) => link("/incidents/" + enc(i.id), i.id) },
        { title: "severity", cell: (i) => chip(i.severity) },
        { title: "state", cell: (i) => chip(i.state) },
        { title: "title", cell: (i) => i.title },
        { title: "agents", cell: (i) => (i.agents || []).join(", ") },
        { title: "SLOs", cell: (i) => (i.slos || []).join(", ") },
        { title: "opened", cell: (i) => when(i.opened_at) },
        { title: "resolved", cell: (i) => (i.resolved_at ? when(i.resolved_at) : "") },
      ], paged.rows, { empty: "no incident", cls: "incidents" }), pager(state, paged.total, refresh));
    }
    main.append(h("h1", {}, "Incidents"), h("div", { class: "toolbar" }, select, searchBox(state, "search incidents", refresh)), data);
    return refresh;
  }

  function incidentDetail(main, id) {
    const data = h("div", { class: "cards" });
    main.append(h("p", {}, link("/incidents", "‹ all incidents")), h("h1", {}, "Incident ", h("span", { class: "mono" }, id)), data);
    return async function refresh() {
      const i = await api("/v1/incidents/" + enc(id));
      fill(data,
        section(i.title,
          h("div", { class: "facts-row" }, chip(i.severity), chip(i.state), h("span", {}, "opened " + when(i.opened_at)),
            i.resolved_at ? h("span", {}, "resolved " + when(i.resolved_at) + (i.resolved_by ? " by " + i.resolved_by : "")) : null),
          h("p", {}, "agents: ", (i.agents || []).join(", ") || "—", "; SLOs: ", (i.slos || []).join(", ") || "—", "; budgets: ", (i.budgets || []).join(", ") || "—")),
        section("Timeline",
          table([
            { title: "at", cell: (e) => when(e.at) },
            { title: "what", cell: (e) => e.kind || e.type || e.state || "" },
            { title: "message", cell: (e) => e.message || "" },
          ], Array.isArray(i.timeline) ? i.timeline : [], { empty: "no entry" })),
      );
    };
  }

  // Chaos ----------------------------------------------------------------------------------
  function chaosPage(main) {
    const data = h("div", { class: "cards" });
    main.append(h("h1", {}, "Chaos runs"), data);
    return async function refresh() {
      const [overview, runs] = await Promise.all([optional("/v1/chaos"), optional("/v1/chaos/runs")]);
      if (!overview) {
        fill(data, section("Chaos", h("p", { class: "muted" }, "chaos is not available on this daemon")));
        return;
      }
      fill(data,
        section(`Experiments (chaos ${overview.enabled ? "enabled" : "disabled"})`,
          table([
            { title: "experiment", cell: (e) => e.name },
            { title: "state", cell: (e) => chip(e.state) },
            { title: "faults", cell: (e) => ((e.config && e.config.faults) || []).map((f) => f.type).join(", ") },
            { title: "description", cell: (e) => e.description },
          ], overview.experiments, { empty: "no experiment declared" })),
        ...((runs && runs.runs) || []).slice(0, 20).map(chaosRun),
      );
    };
  }
  function chaosRun(run) {
    const sli = run.sli || {};
    const phases = ["before", "during", "after"].filter((k) => sli[k]);
    const end = run.ended_at || Date.now() / 1000;
    const faults = Object.entries(run.faults_injected || {}).map(([k, v]) => `${k} × ${v}`).join(", ") || "none";
    const score = run.resilience_score;
    return h("section", { class: "card chaos-run", "data-run": run.id },
      h("h2", {}, run.experiment, " ", h("span", { class: "mono muted" }, run.id)),
      h("div", { class: "facts-row" },
        chip(run.state), h("span", {}, "started " + when(run.started_at)),
        run.reason ? h("span", { class: "abort" }, "abort: ", h("b", {}, run.reason), run.message ? " — " + run.message : "") : null,
        h("span", { class: "score" }, "resilience score ", h("b", {}, score === null || score === undefined ? "—" : fmtNum(score, 0))),
        h("span", {}, "faults injected: " + faults)),
      h("div", { class: "two" },
        C.lineChart({
          label: "run timeline",
          height: 110,
          series: [{ points: [[run.started_at, 1], [run.faults_stopped_at || end, 1]], cls: "faults", name: "faults active" },
            { points: [[run.faults_stopped_at || end, 0.5], [end, 0.5]], cls: "observe", name: "observation" }],
          vlines: [{ x: run.started_at, label: "start" }, { x: run.faults_stopped_at, label: "faults off" }, { x: run.ended_at, label: "end" }],
          xMin: run.started_at - 1, xMax: end + 1, yMin: 0, yMax: 1.2, yFormat: () => "",
          xFormat: (v) => "+" + (v - run.started_at).toFixed(0) + "s",
        }),
        C.columns(phases.map((k) => ({ label: k, value: typeof sli[k].sli === "number" ? sli[k].sli : 0, text: pct(sli[k].sli, 0) + ` (${sli[k].calls})`, cls: k })),
          { label: "SLI before, during and after", max: 1 })));
  }

  // Rollouts --------------------------------------------------------------------------------
  function rolloutsPage(main) {
    const data = h("div", { class: "cards" });
    main.append(h("h1", {}, "Rollouts"), data);
    return async function refresh() {
      const listing = await optional("/v1/rollouts");
      const rows = (listing && listing.rollouts) || [];
      if (!rows.length) {
        fill(data, section("Rollouts", h("p", { class: "muted" }, "no rollout declared")));
        return;
      }
      const now = listing.at;
      fill(data, ...rows.map((r) => {
        const pts = (r.events || []).filter((e) => typeof e.weight === "number").map((e) => [e.at, e.weight]);
        if (pts.length) pts.push([now, r.weight]);
        // the plan from the current step on (dashed): each step's weight for its duration
        const plan = [];
        if (r.phase === "progressing" && typeof r.step_started_at === "number") {
          let t = r.step_started_at;
          for (let i = r.step; i < r.steps.length; i++) {
            plan.push([t, r.steps[i].weight]);
            t += r.steps[i].duration || 0;
          }
          plan.push([t, 100]);
        }
        const checks = (r.analysis && r.analysis.checks) || [];
        return h("section", { class: "card rollout", "data-rollout": r.name },
          h("h2", {}, r.name, " ", chip(r.phase)),
          h("p", {}, `${r.mode} of ${r.route}: ${r.baseline} → ${r.candidate}; step ${r.step + 1} of ${r.steps.length}, weight ${fmtNum(r.weight)}%`, r.reason ? " — " + r.reason : ""),
          pts.length ? C.lineChart({ label: "candidate weight over time", height: 150, series: [{ points: pts, step: true, cls: "weight", name: "weight %" }, { points: plan, step: true, dash: true, cls: "plan", name: "planned" }], yMin: 0, yMax: 100, yFormat: (v) => v.toFixed(0) + "%" }) : null,
          h("h3", {}, "Gate verdict: ", chip((r.analysis && r.analysis.verdict) || "none")),
          table([
            { title: "metric", cell: (c) => c.metric },
            { title: "verdict", cell: (c) => chip(c.verdict) },
            { title: "baseline", num: true, cell: (c) => fmtNum(c.baseline, 4) },
            { title: "candidate", num: true, cell: (c) => fmtNum(c.canary, 4) },
            { title: "samples", num: true, cell: (c) => `${c.baseline_samples} / ${c.canary_samples}` },
            { title: "reason", cell: (c) => c.reason || "" },
          ], checks, { empty: "no analysis yet" }),
          h("details", {}, h("summary", {}, "events"), table([
            { title: "at", cell: (e) => when(e.at) }, { title: "kind", cell: (e) => e.kind }, { title: "message", cell: (e) => e.message },
          ], (r.events || []).slice().reverse())));
      }));
    };
  }

  // Traces ------------------------------------------------------------------------------------
  function tracesPage(main) {
    const state = { q: "", offset: 0, errors: false };
    const picked = new Set();
    const data = h("div", {});
    const diffButton = h("button", { id: "diff", disabled: true, onclick: () => { const [a, b] = [...picked]; location.hash = `#/traces/diff/${enc(a)}/${enc(b)}`; } }, "diff the two selected runs");
    async function refresh() {
      const q = `/v1/traces?limit=500${state.errors ? "&status=error" : ""}`;
      const listing = await api(q);
      const paged = clientPage(listing.traces, state, (t) => `${t.trace_id} ${t.agent} ${t.root}`);
      fill(data, table([
        { title: "", cell: (t) => h("input", { type: "checkbox", "aria-label": "select " + t.trace_id, checked: picked.has(t.trace_id), onchange: (e) => { if (e.target.checked) picked.add(t.trace_id); else picked.delete(t.trace_id); while (picked.size > 2) picked.delete(picked.values().next().value); diffButton.disabled = picked.size !== 2; } }) },
        { title: "trace", cell: (t) => link("/traces/" + enc(t.trace_id), t.trace_id.slice(0, 12) + "…") },
        { title: "root", cell: (t) => h("span", { class: "span-name" }, t.root) },
        { title: "agent", cell: (t) => t.agent },
        { title: "started", cell: (t) => when(t.start) },
        { title: "duration", num: true, cell: (t) => duration(t.duration_seconds) },
        { title: "spans", num: true, cell: (t) => fmtNum(t.spans, 0) },
        { title: "errors", num: true, cell: (t) => (t.errors ? chip(String(t.errors), "bad") : "0") },
        { title: "cost", num: true, cell: (t) => usd(t.cost_usd) },
      ], paged.rows, { empty: "no trace in the replay buffer", cls: "traces" }), pager(state, paged.total, refresh));
    }
    main.append(h("h1", {}, "Traces"),
      h("div", { class: "toolbar" }, searchBox(state, "search traces (id, agent, root span)", refresh),
        h("label", {}, h("input", { type: "checkbox", onchange: (e) => { state.errors = e.target.checked; refresh(); } }), " errors only"), diffButton),
      data);
    return refresh;
  }

  function traceDetail(main, id) {
    const data = h("div", { class: "cards" });
    main.append(h("p", {}, link("/traces", "‹ all traces")), h("h1", {}, "Trace ", h("span", { class: "mono" }, id)), data);
    return async function refresh() {
      const t = await api(`/v1/traces/${enc(id)}/spans`);
      const total = Math.max(...t.spans.map((s) => s.duration_seconds || 0), 1e-9);
      fill(data, section(`${t.trace.root} — ${t.trace.agent || "no agent"}`,
        h("p", {}, `${t.trace.spans} spans, ${duration(t.trace.duration_seconds)}, ${t.trace.errors} errors, ${usd(t.trace.cost_usd)}`),
        table([
          { title: "step", cell: (s) => h("span", { class: "span-name", style: null, "data-depth": String(s.depth) }, "· ".repeat(s.depth), s.name) },
          { title: "kind", cell: (s) => s.kind },
          { title: "time", cell: (s) => C.bar(s.duration_seconds, total, { width: 120, label: duration(s.duration_seconds) }) },
          { title: "duration", num: true, cell: (s) => duration(s.duration_seconds) },
          { title: "model", cell: (s) => s.model },
          { title: "tokens", num: true, cell: (s) => (s.input_tokens === null ? "" : `${s.input_tokens} → ${s.output_tokens}`) },
          { title: "cost", num: true, cell: (s) => (s.cost_usd === null ? "" : usd(s.cost_usd)) },
          { title: "fault / error", cell: (s) => [s.fault ? chip(s.fault, "warn") : null, s.error ? chip(s.error, "bad") : null] },
        ], t.spans, { cls: "steps" })));
    };
  }

  function traceDiff(main, a, b) {
    const data = h("div", { class: "cards" });
    main.append(h("p", {}, link("/traces", "‹ all traces")), h("h1", {}, "Diff of two runs"), data);
    return async function refresh() {
      let d;
      try {
        d = await api(`/v1/traces/diff?a=${enc(a)}&b=${enc(b)}`);
      } catch (err) {
        if (err.status === 401 || err.status === 403) {
          fill(data, section("The diff shows captured prompts and answers", h("p", {}, "It is read with the admin token only. ", h("button", { onclick: () => openLogin("A diff of two runs shows captured bodies: it needs the admin token.") }, "enter admin token"))));
          return;
        }
        throw err;
      }
      fill(data, section(`${d.a} → ${d.b}`,
        h("ul", { class: "diff" }, d.summary.length ? d.summary.map((line) => h("li", {}, line)) : [h("li", {}, "the two runs took the same steps")])));
    };
  }

  // -- router -----------------------------------------------------------------------------
  const NAV = [
    ["/overview", "Overview"], ["/slos", "SLOs"], ["/budgets", "Budgets"], ["/agents", "Agents"],
    ["/incidents", "Incidents"], ["/chaos", "Chaos runs"], ["/rollouts", "Rollouts"], ["/traces", "Traces"],
  ];
  function route() {
    const parts = (location.hash.replace(/^#/, "") || "/overview").split("/").slice(1).map((p) => {
      try { return decodeURIComponent(p); } catch (err) { return p; }
    });
    const [top, a, b, c] = parts;
    if (top === "slos" && a) return ["/slos", (m) => sloDetail(m, a)];
    if (top === "slos") return ["/slos", sloList];
    if (top === "budgets") return ["/budgets", budgetsPage];
    if (top === "agents") return ["/agents", agentsPage];
    if (top === "incidents" && a) return ["/incidents", (m) => incidentDetail(m, a)];
    if (top === "incidents") return ["/incidents", incidentsPage];
    if (top === "chaos") return ["/chaos", chaosPage];
    if (top === "rollouts") return ["/rollouts", rolloutsPage];
    if (top === "traces" && a === "diff" && b && c) return ["/traces", (m) => traceDiff(m, b, c)];
    if (top === "traces" && a) return ["/traces", (m) => traceDetail(m, a)];
    if (top === "traces") return ["/traces", tracesPage];
    return ["/overview", overview];
  }

  let current = null;
  let timer = null;
  let generation = 0;

  async function run(refresh, gen) {
    if (!refresh || gen !== generation) return;
    const live = $("live");
    const stale = () => { for (const box of document.querySelectorAll("#main > .error-box")) box.remove(); };
    try {
      await refresh();
      if (gen !== generation) return;
      stale();
      live.textContent = "live · updated " + new Date().toISOString().slice(11, 19) + " UTC";
      live.className = "live ok";
      $("main").setAttribute("data-loaded", String(Number($("main").getAttribute("data-loaded") || 0) + 1));
      $("banner").hidden = true;
    } catch (err) {
      if (gen !== generation) return;
      live.textContent = "not updated: " + (err instanceof ApiError ? err.message : String(err));
      live.className = "live bad";
      stale();
      if (!(err instanceof ApiError) || (err.status !== 401 && err.status !== 403)) {
        $("main").prepend(errorBox(err));
      }
    }
  }
  function schedule() {
    clearTimeout(timer);
    if (document.hidden) return; // nobody looks: no request at all
    timer = setTimeout(async () => {
      await run(current, generation);
      schedule();
    }, POLL_MS);
  }
  function refreshNow() {
    run(current, generation).then(schedule);
  }
  function navigate() {
    const [key, make] = route();
    generation += 1;
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === "#" + key);
    const main = $("main");
    fill(main);
    main.setAttribute("data-loaded", "0");
    main.setAttribute("data-page", key.slice(1));
    current = make(main);
    refreshNow();
  }

  function start() {
    fill($("nav"), ...NAV.map(([r, t]) => h("a", { href: "#" + r }, t)));
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("login-token").value.trim();
      $("login-token").value = "";
      if (value) {
        token = value;
        sessionStorage.setItem(TOKEN_KEY, token);
      }
      $("login").close();
      $("banner").hidden = true;
      renderAuth();
      refreshNow();
    });
    $("login-cancel").addEventListener("click", () => $("login").close());
    window.addEventListener("hashchange", navigate);
    document.addEventListener("visibilitychange", () => (document.hidden ? clearTimeout(timer) : refreshNow()));
    renderAuth();
    navigate();
  }
  document.addEventListener("DOMContentLoaded", start);
})();
