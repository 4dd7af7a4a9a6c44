// Drover dashboard. Plain JavaScript, no build step: the pages call the public API
// (/api/v1/...) with the session cookie set at sign-in, and follow its Server-Sent
// Events for live updates. docs/DASHBOARD.md describes the pages.
"use strict";

const QUEUES = ["export", "analysis", "aggregation", "cleanup"];
const STATES = ["waiting", "delayed", "active", "failed", "completed"];
const EVENT_TYPES = ["job:queued", "job:active", "job:progress", "job:completed", "job:failed",
  "job:retrying", "job:stalled", "job:removed", "queue:paused", "queue:resumed", "queue:cleaned"];
const TERMINAL = ["job:completed", "job:failed", "job:removed"];

let me = null;          // {name, role, admin, csrf} once signed in
let cleanups = [];      // what the current page must close when another opens

// ---------- small helpers ----------

/** Builds an element: h("a", {href: "#"}, "text", child, ...). */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const $ = (sel, root) => (root || document).querySelector(sel);
const main = () => $("#main");

/** A time in the user's timezone, with UTC on hover. */
function when(t) {
  if (!t) return h("span", { class: "muted" }, "—");
  const d = new Date(t);
  return h("time", { datetime: d.toISOString(), title: d.toISOString().replace(".000", "") + " UTC" },
    d.toLocaleString());
}

function ago(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function badge(state) { return h("span", { class: "badge " + state }, state); }

function flash(message, info) {
  const f = $("#flash");
  f.className = info ? "info" : "";
  f.textContent = message || "";
}

/** Calls the API; throws an Error carrying the API's own message. */
async function api(method, path, body, extra) {
  const headers = { Accept: "application/json" };
  if (me && method !== "GET") headers["X-CSRF-Token"] = me.csrf;
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  Object.assign(headers, (extra && extra.headers) || {});
  const res = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!res.ok) {
    const msg = (data && data.error && data.error.message) || (res.status + " " + res.statusText);
    const err = new Error(msg);
    err.status = res.status;
    if (res.status === 401 && !path.startsWith("/ui/session")) signedOut(msg);
    throw err;
  }
  return data;
}

/** Runs an action and shows what went wrong, never swallowing it. */
async function attempt(fn) {
  try { return await fn(); } catch (e) { flash(e.message); return undefined; }
}

/** Asks for confirmation in the page's own dialog (keyboard friendly). */
function confirmDialog(text) {
  const d = $("#confirm");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "yes"), { once: true });
    d.returnValue = "";
    d.showModal();
    $("#confirm-no").focus();
  });
}

/** Follows an event stream; `onEvent(type, data)`; closed when the page changes. */
function follow(url, onEvent, marker) {
  const es = new EventSource(url);
  es.onopen = () => { if (marker) document.body.dataset[marker] = "on"; };
  for (const t of EVENT_TYPES) {
    es.addEventListener(t, (m) => {
      let d = null;
      try { d = JSON.parse(m.data); } catch (_) { d = null; }
      onEvent(t, d, es);
    });
  }
  cleanups.push(() => es.close());
  return es;
}

/** Calls `fn` at most once per `ms`, the last call winning (for live refreshes). */
function throttle(fn, ms) {
  let timer = null, again = false;
  const run = () => { timer = null; if (again) { again = false; fn(); timer = setTimeout(run, ms); } };
  const t = () => { if (timer) { again = true; return; } fn(); timer = setTimeout(run, ms); };
  cleanups.push(() => clearTimeout(timer));
  return t;
}

function empty(text, ...more) { return h("div", { class: "empty" }, text, ...more); }

function json(v) { return h("pre", {}, JSON.stringify(v, null, 2)); }

// ---------- charts (SVG, drawn here) ----------

/** Completed (green) and failed (red) bars per minute. */
function minuteChart(minutes, label) {
  const W = 600, H = 120, n = Math.max(minutes.length, 1);
  const max = Math.max(1, ...minutes.map((m) => m.completed + m.failed));
  const bw = W / n;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H + 14}`, class: "chart", role: "img", "aria-label": label });
  minutes.forEach((m, i) => {
    const ch = (m.completed / max) * H, fh = (m.failed / max) * H;
    const title = `${new Date(m.minute).toLocaleTimeString()}: ${m.completed} completed, ${m.failed} failed`;
    const g = svgEl("g", {});
    g.append(svgEl("title", {}, title));
    g.append(svgEl("rect", { class: "c", x: i * bw + 0.5, y: H - ch, width: Math.max(bw - 1, 1), height: ch }));
    g.append(svgEl("rect", { class: "f", x: i * bw + 0.5, y: H - ch - fh, width: Math.max(bw - 1, 1), height: fh }));
    svg.append(g);
  });
  svg.append(svgEl("text", { x: 0, y: H + 12 }, "-60 min"));
  svg.append(svgEl("text", { x: W - 24, y: H + 12 }, "now"));
  svg.append(svgEl("text", { x: W / 2 - 30, y: 10 }, `max ${max}/min`));
  return svg;
}

/** Horizontal-label bar chart: [[label, value], ...]. */
function barChart(pairs, label, id) {
  const W = 600, bh = 22, H = pairs.length * bh;
  const max = Math.max(1, ...pairs.map((p) => p[1]));
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": label, id });
  pairs.forEach(([name, v], i) => {
    const w = ((W - 160) * v) / max;
    svg.append(svgEl("text", { x: 0, y: i * bh + 15 }, name));
    svg.append(svgEl("rect", { class: "b", x: 90, y: i * bh + 3, width: w, height: bh - 6 }));
    svg.append(svgEl("text", { x: 95 + w, y: i * bh + 15 }, String(v)));
  });
  return svg;
}

/** Vertical histogram of counts over [-1, 1]. */
function histogram(counts, label, id) {
  const W = 600, H = 100, n = Math.max(counts.length, 1), bw = W / n;
  const max = Math.max(1, ...counts);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H + 14}`, class: "chart", role: "img", "aria-label": label, id });
  counts.forEach((c, i) => {
    const bh = (c / max) * H;
    const r = svgEl("rect", { class: "b", x: i * bw + 0.5, y: H - bh, width: Math.max(bw - 1, 1), height: bh });
    r.append(svgEl("title", {}, `${(-1 + (2 * i) / n).toFixed(2)}…${(-1 + (2 * (i + 1)) / n).toFixed(2)}: ${c}`));
    svg.append(r);
  });
  svg.append(svgEl("text", { x: 0, y: H + 12 }, "-1"));
  svg.append(svgEl("text", { x: W / 2 - 3, y: H + 12 }, "0"));
  svg.append(svgEl("text", { x: W - 10, y: H + 12 }, "1"));
  return svg;
}

function svgEl(tag, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// ---------- sign-in ----------

function signedOut(message) {
  me = null;
  for (const c of cleanups.splice(0)) c();
  $("#nav").hidden = true; $("#who").hidden = true; $("#sign-out").hidden = true;
  renderSignIn(message);
}

function renderSignIn(message) {
  const input = h("input", { id: "api-key", name: "key", type: "password", autocomplete: "off", required: true });
  const form = h("form", { class: "card signin", id: "sign-in", onsubmit: async (e) => {
    e.preventDefault();
    flash("");
    try {
      me = await api("POST", "/ui/session", { key: input.value });
      input.value = "";
      start();
    } catch (err) { flash(err.message); }
  } },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "Use an API key. An admin key runs the queues; a submitter key reads jobs, datasets and exports. ",
    "No key yet? ", h("code", {}, "drover keys create --role admin")),
  h("label", { for: "api-key" }, "API key", input),
  h("p", {}, h("button", { class: "primary", type: "submit", id: "sign-in-button" }, "Sign in")));
  main().replaceChildren(form);
  if (message) flash(message);
  input.focus();
}

function start() {
  $("#nav").hidden = false;
  for (const a of document.querySelectorAll("#nav [data-admin]")) a.hidden = !me.admin;
  $("#who").hidden = false;
  $("#who").textContent = `${me.name} (${me.role})`;
  $("#sign-out").hidden = false;
  document.body.dataset.role = me.role;
  route();
}

async function signOut() {
  await attempt(() => api("DELETE", "/ui/session"));
  signedOut("Signed out.");
  flash("Signed out.", true);
}

// ---------- pages ----------

async function overview() {
  const root = h("div", {}, h("h1", {}, "Overview"));
  main().replaceChildren(root);
  if (!me.admin) {
    root.append(empty("Queue metrics need an admin key. Browse a queue's jobs:"),
      h("ul", {}, QUEUES.map((q) => h("li", {}, h("a", { href: `#/queues/${q}` }, q)))));
    return;
  }
  const box = h("div", { id: "overview" });
  root.append(box);
  const load = async () => {
    const m = await attempt(() => api("GET", "/api/v1/queues/metrics?minutes=60"));
    if (!m) return;
    box.replaceChildren(h("div", { class: "grid" }, m.queues.map(queueCard)));
    box.dataset.loadedAt = String(Date.now());
    if (m.queues.every((q) => STATES.every((s) => q.counts[s] === 0))) {
      box.append(empty("No jobs yet: submit one with ",
        h("code", {}, "curl -X POST /api/v1/queues/cleanup/jobs -H 'Authorization: Bearer $KEY' -d '{\"payload\":{\"dry_run\":true}}'")));
    }
  };
  await load();
  const refresh = throttle(load, 1000);
  follow("/api/v1/sse/events", refresh, "live");
  // The chart's minutes move on even when nothing happens.
  const minute = setInterval(load, 60000);
  cleanups.push(() => clearInterval(minute));
}

function queueCard(q) {
  const t = q.throughput;
  return h("section", { class: "card", "data-queue": q.queue, "aria-label": `queue ${q.queue}` },
    h("div", { class: "row" }, h("h2", {}, h("a", { href: `#/queues/${q.queue}` }, q.queue)),
      q.paused ? badge("paused") : h("span", { class: "badge" }, "running")),
    h("div", { class: "stats" }, STATES.map((s) =>
      h("div", { "data-count": s }, h("b", {}, q.counts[s]), h("span", { class: "muted" }, s)))),
    h("p", { class: "muted" }, `oldest wait ${ago(q.oldest_waiting_age_ms)} · ${q.live_workers} live worker(s) · `,
      `${t.completed_per_minute.toFixed(1)} completed/min, ${t.failed_per_minute.toFixed(1)} failed/min`),
    minuteChart(t.minutes, `${q.queue}: completed and failed per minute, last hour`));
}

// The queue page: jobs by state, live recent jobs, search, bulk actions, pause/resume/clean.
async function queuePage(name, params) {
  if (!QUEUES.includes(name)) { main().replaceChildren(empty(`No queue named ${name}.`)); return; }
  const state = STATES.includes(params.get("state")) ? params.get("state") : "waiting";
  const root = h("div", {}, h("h1", {}, `Queue ${name}`));
  main().replaceChildren(root);
  const header = h("div", { class: "card row", id: "queue-controls" });
  root.append(header);
  const live = h("tbody", {});
  const liveSeen = new Map();
  root.append(h("h2", {}, "Live"),
    h("div", { class: "scroll" }, h("table", { id: "live" },
      h("thead", {}, h("tr", {}, h("th", {}, "job"), h("th", {}, "state"), h("th", {}, "progress"), h("th", { class: "opt" }, "when"))), live)),
    h("p", { class: "muted", id: "live-empty" }, "Jobs of this queue appear here as they change."));

  // Search.
  const sq = h("input", { id: "search-q", type: "search", placeholder: "job id or text in payload/error" });
  const sfrom = h("input", { id: "search-from", type: "datetime-local" });
  const sto = h("input", { id: "search-to", type: "datetime-local" });
  const results = h("div", { id: "search-results" });
  let searchCursor = null;
  const runSearch = async (more) => {
    const p = new URLSearchParams();
    const text = sq.value.trim();
    if (/^[0-9A-HJKMNP-TV-Z]{26}$/i.test(text)) p.set("id", text.toUpperCase());
    else if (text) p.set("q", text);
    if (sfrom.value) p.set("from", new Date(sfrom.value).toISOString());
    if (sto.value) p.set("to", new Date(sto.value).toISOString());
    if (more && searchCursor) p.set("cursor", searchCursor);
    const r = await attempt(() => api("GET", `/api/v1/queues/${name}/search?${p}`));
    if (!r) return;
    searchCursor = r.next_cursor || null;
    if (!more) results.replaceChildren();
    results.append(r.jobs.length ? jobTable(r.jobs, false) : h("p", { class: "muted" }, "No match in this batch."));
    const note = h("p", { class: "muted" }, `examined ${r.examined} job(s)`,
      searchCursor ? " — more to examine " : " — every job was examined",
      searchCursor ? h("button", { type: "button", id: "search-more", onclick: (e) => { e.target.remove(); runSearch(true); } }, "Continue search") : null);
    results.append(note);
  };
  root.append(h("h2", {}, "Search"),
    h("form", { class: "card row", id: "search", role: "search", onsubmit: (e) => { e.preventDefault(); runSearch(false); } },
      h("label", {}, "Job id or text", sq), h("label", {}, "Created from", sfrom), h("label", {}, "Created before", sto),
      h("button", { type: "submit", class: "primary" }, "Search")),
    results);

  // Jobs by state.
  const tabs = h("div", { class: "tabs", role: "navigation", "aria-label": "states" },
    STATES.map((s) => h("a", { href: `#/queues/${name}?state=${s}`, "aria-current": s === state ? "true" : null, id: `tab-${s}` }, s)));
  const list = h("div", { id: "jobs" });
  const bulkBar = h("div", { class: "row", id: "bulk" });
  root.append(h("h2", {}, "Jobs"), tabs, bulkBar, list);

  let cursor = null;
  const loadPage = async (next) => {
    const p = new URLSearchParams({ state, limit: "50" });
    if (next && cursor) p.set("cursor", cursor);
    const page = await attempt(() => api("GET", `/api/v1/queues/${name}/jobs?${p}`));
    if (!page) return;
    cursor = page.next_cursor || null;
    if (!next) list.replaceChildren();
    if (!page.jobs.length && !next) {
      list.append(empty(`No ${state} jobs in ${name}.`, state === "waiting"
        ? h("span", {}, " Submit one with ", h("code", {}, `POST /api/v1/queues/${name}/jobs`)) : ""));
    } else {
      list.append(jobTable(page.jobs, me.admin));
    }
    if (cursor) list.append(h("p", {}, h("button", { type: "button", id: "next-page", onclick: (e) => { e.target.remove(); loadPage(true); } }, "Next page")));
  };

  const selected = () => [...list.querySelectorAll("input[data-select]:checked")].map((c) => c.value);
  const bulk = async (action, ids) => {
    const target = ids ? `${ids.length} selected job(s)` : `up to 1000 ${state} jobs`;
    if (!(await confirmDialog(`${action} ${target} in ${name}?`))) return;
    const body = ids ? { action, ids } : { action, state };
    const r = await attempt(() => api("POST", `/api/v1/queues/${name}/jobs/bulk`, body));
    if (r) {
      flash(`${action}: ${r.done} done, ${r.skipped} skipped${r.more ? " (more left: run it again)" : ""}.`, true);
      loadPage(false);
    }
  };
  if (me.admin) {
    const actions = { failed: ["retry", "delete"], delayed: ["promote", "delete"], waiting: ["delete"], completed: ["delete"], active: [] }[state];
    for (const a of actions) {
      bulkBar.append(h("button", { type: "button", id: `bulk-${a}-selected`, onclick: () => {
        const ids = selected();
        if (!ids.length) { flash("Select jobs first (the boxes in the first column)."); return; }
        bulk(a, ids);
      } }, `${a} selected`));
      bulkBar.append(h("button", { type: "button", class: "danger", id: `bulk-${a}-all`, onclick: () => bulk(a, null) }, `${a} all ${state}`));
    }
  }

  // Pause, resume, clean.
  const renderControls = async () => {
    if (!me.admin) { header.replaceChildren(h("span", { class: "muted" }, "Read-only: a submitter key cannot steer queues.")); return; }
    const m = await attempt(() => api("GET", `/api/v1/queues/${name}/metrics`));
    if (!m) return;
    const grace = h("input", { id: "clean-grace", type: "number", min: "0", value: "3600", size: "8" });
    const limit = h("input", { id: "clean-limit", type: "number", min: "1", max: "100000", value: "1000", size: "7" });
    const cstate = h("select", { id: "clean-state" }, h("option", { value: "completed" }, "completed"), h("option", { value: "failed" }, "failed"));
    header.replaceChildren(
      h("span", { id: "queue-status" }, m.paused ? badge("paused") : h("span", { class: "badge" }, "running")),
      h("span", { class: "muted" }, STATES.map((s) => `${s} ${m.counts[s]}`).join(" · ")),
      m.paused
        ? h("button", { type: "button", id: "resume", class: "primary", onclick: async () => { if (await attempt(() => api("POST", `/api/v1/queues/${name}/resume`))) renderControls(); } }, "Resume")
        : h("button", { type: "button", id: "pause", onclick: async () => { if (await attempt(() => api("POST", `/api/v1/queues/${name}/pause`))) renderControls(); } }, "Pause"),
      h("form", { class: "row", id: "clean", onsubmit: async (e) => {
        e.preventDefault();
        const g = Number(grace.value), l = Number(limit.value);
        if (!(await confirmDialog(`Delete up to ${l} ${cstate.value} jobs of ${name} that finished more than ${g} s ago?`))) return;
        const r = await attempt(() => api("POST", `/api/v1/queues/${name}/clean`, { state: cstate.value, grace_ms: g * 1000, limit: l }));
        if (r) { flash(`Cleaned ${r.removed} ${r.state} job(s).`, true); renderControls(); loadPage(false); }
      } }, h("label", {}, "Clean", cstate), h("label", {}, "grace (s)", grace), h("label", {}, "limit", limit),
      h("button", { type: "submit", class: "danger" }, "Clean")));
  };

  await Promise.all([renderControls(), loadPage(false)]);
  const refreshList = throttle(() => { if (!cursor) loadPage(false); }, 1500);
  const refreshControls = throttle(renderControls, 1500);
  // A queue's whole event stream is an admin's: events do not carry their submitter, so
  // the API cannot filter them per tenant. A submitter's list refreshes when it asks.
  if (me.admin) follow(`/api/v1/sse/events?queue=${name}`, (type, e) => {
    if (!e) return;
    if (type.startsWith("queue:")) { refreshControls(); return; }
    $("#live-empty") && $("#live-empty").remove();
    let row = liveSeen.get(e.job_id);
    const st = { "job:queued": "waiting", "job:active": "active", "job:progress": "active", "job:completed": "completed",
      "job:failed": "failed", "job:retrying": "delayed", "job:stalled": "waiting", "job:removed": "removed" }[type];
    if (!row) {
      row = h("tr", { "data-job-id": e.job_id });
      liveSeen.set(e.job_id, row);
      live.prepend(row);
      while (live.children.length > 20) { const last = live.lastChild; liveSeen.delete(last.dataset.jobId); last.remove(); }
    }
    row.dataset.state = st;
    row.replaceChildren(h("td", { class: "id" }, h("a", { href: `#/jobs/${e.job_id}` }, e.job_id)),
      h("td", { class: "state" }, badge(st)), h("td", {}, `${e.progress}%`), h("td", { class: "opt" }, when(e.ts)));
    refreshList();
    if (!type.endsWith("progress")) refreshControls();
  }, "live");
}

function jobTable(jobs, selectable) {
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, selectable ? h("th", {}, h("span", { class: "muted" }, "select")) : null,
      h("th", {}, "job"), h("th", {}, "state"), h("th", {}, "attempts"), h("th", { class: "opt" }, "created"), h("th", { class: "opt" }, "last error"))),
    h("tbody", {}, jobs.map((j) => h("tr", { "data-job-id": j.id },
      selectable ? h("td", {}, h("input", { type: "checkbox", "data-select": true, value: j.id, "aria-label": `select job ${j.id}` })) : null,
      h("td", { class: "id" }, h("a", { href: `#/jobs/${j.id}` }, j.id)),
      h("td", { class: "state" }, badge(j.state), j.archived_at ? h("span", { class: "badge archived" }, "archived") : null),
      h("td", {}, `${j.attempts}/${j.max_attempts}`),
      h("td", { class: "opt" }, when(j.created_at)),
      h("td", { class: "opt" }, j.errors.length ? j.errors[j.errors.length - 1].error : "")))))); 
}

// Job detail: state, payload, attempts, live progress, timeline, result and links.
async function jobPage(id) {
  const root = h("div", {}, h("h1", {}, "Job ", h("code", {}, id)));
  main().replaceChildren(root);
  const bar = h("progress", { id: "progress", max: "100", value: "0", "aria-label": "progress" });
  const rate = h("span", { id: "progress-text", class: "muted" });
  const body = h("div", { id: "job" });
  const timeline = h("ol", { class: "timeline", id: "timeline", "aria-label": "events" });
  root.append(h("div", { class: "card" }, bar, rate), body, h("h2", {}, "Events"), timeline);
  const render = async () => {
    const j = await attempt(() => api("GET", `/api/v1/jobs/${encodeURIComponent(id)}`));
    if (!j) return null;
    root.dataset.state = j.state;
    bar.value = j.progress;
    if (j.state === "completed") rate.textContent = " 100 % — completed";
    else if (!rate.textContent) rate.textContent = ` ${j.progress} %`;
    const actions = h("div", { class: "row" });
    if (me.admin) {
      if (j.state === "failed") actions.append(h("button", { type: "button", id: "retry", onclick: () => act("retry") }, "Retry"));
      if (j.state === "delayed") actions.append(h("button", { type: "button", id: "promote", onclick: () => act("promote") }, "Promote"));
      if (j.state !== "active" && !j.archived_at) actions.append(h("button", { type: "button", class: "danger", id: "delete", onclick: () => act("delete") }, "Delete"));
    }
    const links = h("p", {});
    if (j.queue === "analysis") links.append(h("a", { href: `#/analysis/${j.id}`, id: "analysis-link" }, "Analysis results"));
    if (j.queue === "export" && j.result && j.result.export_id) {
      links.append(h("a", { href: `/api/v1/exports/${j.result.export_id}/download`, id: "export-download" }, "Download the export"));
    }
    body.replaceChildren(
      h("div", { class: "card" },
        h("div", { class: "row" }, badge(j.state), j.archived_at ? h("span", { class: "badge archived" }, "archived") : null,
          h("span", {}, "queue ", h("a", { href: `#/queues/${j.queue}` }, j.queue)), actions),
        h("table", {}, h("tbody", {},
          h("tr", {}, h("th", {}, "attempts"), h("td", {}, `${j.attempts} of ${j.max_attempts}`)),
          h("tr", {}, h("th", {}, "priority"), h("td", {}, j.priority)),
          h("tr", {}, h("th", {}, "created"), h("td", {}, when(j.created_at))),
          h("tr", {}, h("th", {}, "runs at"), h("td", {}, when(j.run_at))),
          h("tr", {}, h("th", {}, "started"), h("td", {}, when(j.started_at))),
          h("tr", {}, h("th", {}, "finished"), h("td", {}, when(j.finished_at))),
          j.failed_reason ? h("tr", {}, h("th", {}, "failed because"), h("td", {}, j.failed_reason)) : null,
          h("tr", {}, h("th", {}, "request id"), h("td", { class: "id", id: "request-id" }, j.request_id || "—")),
          h("tr", {}, h("th", {}, "parent trace"), h("td", { class: "id", id: "traceparent" }, j.traceparent || "none came with the job")))),
        links),
      h("h2", {}, "Attempts that failed"),
      j.errors.length
        ? h("table", { id: "attempts" }, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "error"), h("th", { class: "opt" }, "started"), h("th", {}, "failed"), h("th", { class: "opt" }, "worker"))),
          h("tbody", {}, j.errors.map((e) => h("tr", { "data-attempt": e.attempt }, h("td", {}, e.attempt), h("td", { class: "error" }, e.error), h("td", { class: "opt" }, when(e.started_at)), h("td", {}, when(e.failed_at)), h("td", { class: "opt worker" }, e.worker || "—")))))
        : h("p", { class: "muted" }, "No failed attempt."),
      h("h2", {}, "Payload"), json(j.payload),
      j.result !== undefined && j.result !== null ? [h("h2", {}, "Result"), json(j.result)] : null);
    return j;
  };
  const act = async (what) => {
    if (!(await confirmDialog(`${what} job ${id}?`))) return;
    const j = await attempt(async () => {
      if (what === "delete") return api("DELETE", `/api/v1/queues/${root.dataset.queue}/jobs/${id}`);
      return api("POST", `/api/v1/queues/${root.dataset.queue}/jobs/${id}/${what}`);
    });
    if (j !== undefined) { flash(`Job ${what} done.`, true); if (what === "delete") location.hash = `#/queues/${root.dataset.queue}`; else jobPage(id); }
  };
  const j = await render();
  if (!j) return;
  root.dataset.queue = j.queue;
  const refresh = throttle(render, 1000);
  follow(`/api/v1/jobs/${encodeURIComponent(id)}/events`, (type, e, es) => {
    if (!e) return;
    timeline.append(h("li", { "data-type": type }, when(e.ts), " ", h("strong", {}, type),
      e.attempt ? ` attempt ${e.attempt}` : "", e.message ? ` — ${e.message}` : ""));
    if (type === "job:progress") {
      bar.value = e.progress;
      const d = e.data || {};
      const rps = d.rows_per_sec !== undefined ? d.rows_per_sec : d.rows_per_s;
      const eta = d.eta_secs !== undefined ? d.eta_secs : d.eta_s;
      rate.textContent = ` ${e.progress} %` + (rps !== undefined ? ` · ${Math.round(rps)} rows/s` : "") +
        (eta !== undefined && eta !== null ? ` · ETA ${Math.round(eta)} s` : "");
    } else {
      refresh();
    }
    if (type === "job:completed") { bar.value = 100; rate.textContent = " 100 % — completed"; }
    if (TERMINAL.includes(type)) es.close();
  }, "live");
}

async function workersPage() {
  const root = h("div", {}, h("h1", {}, "Workers"));
  main().replaceChildren(root);
  const box = h("div", { id: "workers" });
  root.append(box);
  const load = async () => {
    const w = await attempt(() => api("GET", "/api/v1/workers"));
    if (!w) return;
    const list = w.workers;
    if (!list.length) { box.replaceChildren(empty("No live worker. Start one with ", h("code", {}, "drover-worker"), " or ", h("code", {}, "cargo run"), ".")); return; }
    box.replaceChildren(h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "worker"), h("th", {}, "queue"), h("th", {}, "running now"), h("th", {}, "heartbeat"), h("th", { class: "opt" }, "host / pid"))),
      h("tbody", {}, list.map((x) => {
        const info = x.info || {};
        const running = info.running !== undefined ? info.running : info.active;
        return h("tr", { "data-worker": x.id },
          h("td", { class: "id" }, x.id),
          h("td", {}, h("a", { href: `#/queues/${x.queue}` }, x.queue)),
          h("td", {}, running === undefined ? `concurrency ${info.concurrency ?? "?"}` : (Array.isArray(running) ? running.map((id) => h("a", { href: `#/jobs/${id}` }, id + " ")) : String(running))),
          h("td", {}, ago(Date.now() - new Date(x.last_seen_at).getTime()), " ago (", when(x.last_seen_at), ")"),
          h("td", { class: "opt" }, `${info.host ?? ""} ${info.pid ?? ""}`));
      })))));
  };
  await load();
  const t = setInterval(load, 5000); // heartbeats are not events: read them every 5 s
  cleanups.push(() => clearInterval(t));
}

async function datasetsPage() {
  const root = h("div", {}, h("h1", {}, "Datasets"));
  main().replaceChildren(root);
  const file = h("input", { id: "dataset-file", type: "file", accept: ".csv,text/csv" });
  const bar = h("progress", { id: "upload-progress", max: "100", value: "0", hidden: true, "aria-label": "upload progress" });
  const list = h("div", { id: "datasets" });
  const upload = () => new Promise((resolve) => {
    const f = file.files[0];
    if (!f) { flash("Choose a CSV file first."); resolve(null); return; }
    const x = new XMLHttpRequest();
    x.open("POST", `/api/v1/datasets?name=${encodeURIComponent(f.name)}`);
    x.setRequestHeader("Content-Type", "text/csv");
    x.setRequestHeader("X-CSRF-Token", me.csrf);
    bar.hidden = false;
    x.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round((e.loaded * 100) / e.total); };
    x.onload = () => {
      let d = null;
      try { d = JSON.parse(x.responseText); } catch (_) { d = null; }
      if (x.status >= 200 && x.status < 300) { bar.value = 100; resolve(d); }
      else { flash((d && d.error && d.error.message) || `upload failed: ${x.status}`); resolve(null); }
    };
    x.onerror = () => { flash("The upload was interrupted."); resolve(null); };
    x.send(f);
  });
  root.append(h("form", { class: "card row", id: "upload", onsubmit: async (e) => {
    e.preventDefault();
    const d = await upload();
    if (d) location.hash = `#/datasets/${d.id}`;
  } }, h("label", {}, "CSV file", file), h("button", { type: "submit", class: "primary" }, "Upload"), bar), list);
  const page = await attempt(() => api("GET", "/api/v1/datasets"));
  if (!page) return;
  if (!page.items.length) { list.append(empty("No dataset yet: upload a CSV above.")); return; }
  list.append(h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "rows"), h("th", {}, "bytes"), h("th", { class: "opt" }, "uploaded"))),
    h("tbody", {}, page.items.map((d) => h("tr", {}, h("td", {}, h("a", { href: `#/datasets/${d.id}` }, d.name)), h("td", {}, d.rows), h("td", {}, d.bytes), h("td", { class: "opt" }, when(d.created_at)))))));
}

async function datasetPage(id) {
  const root = h("div", {}, h("h1", {}, "Dataset"));
  main().replaceChildren(root);
  const d = await attempt(() => api("GET", `/api/v1/datasets/${encodeURIComponent(id)}`));
  if (!d) return;
  const cols = [...d.columns].sort((a, b) => b.text_score - a.text_score);
  const estimate = h("p", { id: "estimate", class: "muted" }, "Choose columns to see the estimate.");
  const boxes = cols.map((c) => h("input", { type: "checkbox", value: c.name, "data-column": c.name, "aria-label": `analyse column ${c.name}` }));
  const chosen = () => boxes.filter((b) => b.checked).map((b) => b.value);
  const estimateNow = async () => {
    const columns = chosen();
    if (!columns.length) { estimate.textContent = "Choose columns to see the estimate."; return; }
    const e = await attempt(() => api("POST", "/api/v1/analysis/estimate", { dataset_id: d.id, columns }));
    if (e) estimate.textContent = `About ${e.seconds.toFixed(1)} s (${e.lower_seconds.toFixed(1)}–${e.upper_seconds.toFixed(1)} s) for ${e.rows} rows, ${e.cells} cells.`;
  };
  boxes.forEach((b) => b.addEventListener("change", estimateNow));
  root.append(h("div", { class: "card" }, h("strong", {}, d.name), ` · ${d.rows} rows · ${d.bytes} bytes · ${d.malformed_rows} malformed · uploaded `, when(d.created_at)),
    h("h2", {}, "Columns (text worth analysing first)"),
    h("div", { class: "scroll" }, h("table", { id: "columns" }, h("thead", {}, h("tr", {}, h("th", {}, "analyse"), h("th", {}, "column"), h("th", {}, "type"), h("th", {}, "text score"), h("th", { class: "opt" }, "avg length"), h("th", { class: "opt" }, "empty"))),
      h("tbody", {}, cols.map((c, i) => h("tr", { "data-column-row": c.name }, h("td", {}, boxes[i]), h("td", {}, c.name), h("td", {}, c.kind), h("td", {}, c.text_score.toFixed(2)), h("td", { class: "opt" }, c.avg_len.toFixed(1)), h("td", { class: "opt" }, `${Math.round(c.null_share * 100)} %`)))))),
    estimate,
    h("p", {}, h("button", { type: "button", class: "primary", id: "start-analysis", onclick: async () => {
      const columns = chosen();
      if (!columns.length) { flash("Choose at least one column."); return; }
      const j = await attempt(() => api("POST", "/api/v1/queues/analysis/jobs", { payload: { dataset_id: d.id, columns, chain_type: "sentiment" } }));
      if (j) location.hash = `#/jobs/${j.id}`;
    } }, "Start the analysis")));
}

async function analysisPage(jobId) {
  const root = h("div", {}, h("h1", {}, "Analysis results"), h("p", {}, h("a", { href: `#/jobs/${jobId}` }, "the job")));
  main().replaceChildren(root);
  const a = await attempt(() => api("GET", `/api/v1/analysis/${encodeURIComponent(jobId)}`));
  if (!a) return;
  root.append(h("div", { class: "card" }, `status ${a.status} · ${a.rows} rows · ${a.malformed_rows} malformed`,
    a.rows_per_sec ? ` · ${Math.round(a.rows_per_sec)} rows/s` : "", a.error ? h("p", { class: "error" }, a.error) : null,
    a.status === "completed" ? h("p", {}, h("a", { href: `/api/v1/analysis/${jobId}/results`, id: "results-download" }, "Download the per-row results (CSV)")) : null));
  if (!a.summaries.length) { root.append(empty("No results yet: the analysis has not finished.")); return; }
  a.summaries.forEach((s, i) => root.append(h("section", { class: "card" },
    h("h2", {}, `Column ${s.column}`), h("p", { class: "muted" }, `mean compound ${s.mean_compound.toFixed(3)}`),
    barChart([["positive", s.positive], ["neutral", s.neutral], ["negative", s.negative]], `${s.column}: labels`, i === 0 ? "labels-chart" : null),
    h("h3", {}, "Compound score"), histogram(s.histogram, `${s.column}: compound histogram`, i === 0 ? "histogram-chart" : null))));
}

async function exportsPage() {
  const root = h("div", {}, h("h1", {}, "Exports"));
  main().replaceChildren(root);
  const page = await attempt(() => api("GET", "/api/v1/exports"));
  if (!page) return;
  const items = page.exports;
  if (!items.length) { root.append(empty("No export yet: submit one with ", h("code", {}, `POST /api/v1/queues/export/jobs {"payload": {"source": "job_history", "format": "csv"}}`))); return; }
  root.append(h("div", { class: "scroll" }, h("table", { id: "exports" }, h("thead", {}, h("tr", {}, h("th", {}, "export"), h("th", {}, "rows"), h("th", {}, "bytes"), h("th", { class: "opt" }, "created"), h("th", {}, ""))),
    h("tbody", {}, items.map((x) => h("tr", {}, h("td", { class: "id" }, x.id), h("td", {}, x.rows), h("td", {}, x.bytes), h("td", { class: "opt" }, when(x.created_at)),
      h("td", {}, h("a", { href: `/api/v1/exports/${x.id}/download` }, "download"))))))));
}

async function schedulesPage() {
  const root = h("div", {}, h("h1", {}, "Schedules"));
  main().replaceChildren(root);
  const load = async () => {
    const page = await attempt(() => api("GET", "/api/v1/schedules"));
    if (!page) return;
    const items = page.schedules;
    const box = h("div", { id: "schedules" });
    root.replaceChildren(root.firstChild, box);
    if (!items.length) { box.append(empty("No schedule: create one with ", h("code", {}, "POST /api/v1/schedules"))); return; }
    box.append(h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "cron"), h("th", {}, "queue"), h("th", {}, "next fire"), h("th", {}, "last fire"), h("th", {}, "last job"), h("th", {}, ""))),
      h("tbody", {}, items.map((s) => h("tr", { "data-schedule": s.name },
        h("td", {}, s.name), h("td", {}, h("code", {}, s.cron)), h("td", {}, s.queue),
        h("td", {}, when(s.next_fire_at)), h("td", {}, s.last_fire ? [when(s.last_fire.scheduled_at), ` ${s.last_fire.status}`] : "never"),
        h("td", {}, s.last_job ? h("a", { href: `#/jobs/${s.last_job.id}` }, badge(s.last_job.state)) : "—"),
        h("td", {}, me.admin ? h("span", { class: "row" },
          h("button", { type: "button", onclick: async () => { if (await attempt(() => api("PATCH", `/api/v1/schedules/${encodeURIComponent(s.name)}`, { enabled: !s.enabled }))) load(); } }, s.enabled ? "Disable" : "Enable"),
          h("button", { type: "button", onclick: async () => { const r = await attempt(() => api("POST", `/api/v1/schedules/${encodeURIComponent(s.name)}/trigger`)); if (r) { flash("Triggered.", true); load(); } } }, "Trigger now")) : (s.enabled ? "enabled" : "disabled"))))))));
  };
  await load();
}

// ---------- routing ----------

function route() {
  if (!me) return;
  for (const c of cleanups.splice(0)) c();
  delete document.body.dataset.live;
  flash("");
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("#nav a")) {
    const target = a.getAttribute("href").slice(1);
    a.toggleAttribute("aria-current", target === "/" ? path === "/" : path.startsWith(target));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  const pages = {
    "": () => overview(),
    queues: () => queuePage(parts[1], params),
    jobs: () => jobPage(parts[1]),
    workers: () => workersPage(),
    datasets: () => (parts[1] ? datasetPage(parts[1]) : datasetsPage()),
    analysis: () => analysisPage(parts[1]),
    exports: () => exportsPage(),
    schedules: () => schedulesPage(),
  };
  const page = pages[parts[0] || ""];
  if (!page) { main().replaceChildren(empty("No such page. ", h("a", { href: "#/" }, "Go to the overview."))); return; }
  page().then(() => { document.body.dataset.page = parts[0] || "overview"; });
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", async () => {
  $("#sign-out").addEventListener("click", signOut);
  try {
    const s = await api("GET", "/ui/session");
    if (s && s.signed_in) { me = s; start(); } else renderSignIn();
  } catch (_) {
    renderSignIn();
  }
});
