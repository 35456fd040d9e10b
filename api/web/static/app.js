// spool's dashboard: plain JavaScript over the public JSON API (/v1).
// See package web's doc for what it shows and where it keeps things.
"use strict";

const POLL_MS = 2000;
const RING = 150; // samples kept per queue: five minutes at POLL_MS
const TOKEN_KEY = "spool-token";

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  selected: null, // the queue whose detail is shown
  history: new Map(), // queue name → [{t, enqueued, acked}]
  pending: null, // the action waiting for its confirmation
};

const $ = (id) => document.getElementById(id);

class Unauthorized extends Error {}

// api calls the JSON API; a 401 shows the token form.
async function api(method, path, body, raw) {
  const headers = {};
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  let payload;
  if (body !== undefined) {
    payload = raw ? body : JSON.stringify(body);
    headers["Content-Type"] = raw ? "application/octet-stream" : "application/json";
  }
  const resp = await fetch(path, { method, headers, body: payload });
  if (resp.status === 401) throw new Unauthorized();
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    const msg = data && data.error ? data.error.message || data.error.code : resp.status + " " + resp.statusText;
    throw new Error(msg);
  }
  return data;
}

const enc = encodeURIComponent;
const queuePath = (name, route = "") => "/v1/queues/" + enc(name) + route;

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

// record keeps a queue's counters and returns its rates per second over
// the ring: [in/s series, acks/s series].
function record(q, now) {
  if (!q.stats) return [[], []];
  let ring = state.history.get(q.name);
  if (!ring) { ring = []; state.history.set(q.name, ring); }
  ring.push({ t: now, enqueued: q.stats.enqueued, acked: q.stats.acked });
  if (ring.length > RING) ring.shift();
  const ins = [], acks = [];
  for (let i = 1; i < ring.length; i++) {
    const dt = (ring[i].t - ring[i - 1].t) / 1000;
    if (dt <= 0) continue;
    ins.push(Math.max(0, ring[i].enqueued - ring[i - 1].enqueued) / dt);
    acks.push(Math.max(0, ring[i].acked - ring[i - 1].acked) / dt);
  }
  return [ins, acks];
}

const SVG = "http://www.w3.org/2000/svg";

// spark draws a series as a small line, with its last value beside it.
function spark(series) {
  const last = series.length ? series[series.length - 1] : 0;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 64 18");
  const top = Math.max(1, ...series);
  const pts = series.map((v, i) => {
    const x = series.length > 1 ? (i * 64) / (series.length - 1) : 0;
    return x.toFixed(1) + "," + (17 - (v / top) * 16).toFixed(1);
  });
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(line);
  const cell = el("td", { "data-k": "rate" }, svg, " " + (last < 10 ? last.toFixed(1) : Math.round(last)));
  return cell;
}

function renderQueues(queues) {
  const body = $("queues").tBodies[0];
  const now = Date.now();
  const rows = [];
  for (const q of queues) {
    const [ins, acks] = record(q, now);
    const c = q.counts || {};
    const tr = el("tr", { class: "queue" + (q.name === state.selected ? " selected" : ""), id: "q-" + q.name },
      el("td", { "data-k": "name" }, q.name),
      el("td", { "data-k": "ready" }, String(c.ready ?? "")),
      el("td", { "data-k": "delayed" }, String(c.delayed ?? "")),
      el("td", { "data-k": "leased" }, String(c.leased ?? "")),
      el("td", { "data-k": "dead" }, String(c.dead ?? "")),
      el("td", { "data-k": "total" }, String(c.total ?? "")),
      el("td", { "data-k": "bytes" }, q.unavailable ? "unavailable" : fmtBytes(q.bytes || 0)),
      spark(ins), spark(acks));
    if (q.unavailable) tr.title = q.unavailable;
    tr.addEventListener("click", () => select(q.name));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $("no-queues").hidden = queues.length > 0;
  const sel = queues.find((q) => q.name === state.selected);
  if (sel) showConfig(sel);
  else if (state.selected) select(null);
}

function renderTopics(topics) {
  const rows = [];
  for (const t of topics) {
    rows.push(el("tr", { id: "t-" + t.name }, el("td", {}, t.name), el("td"), el("td"), el("td"), el("td"),
      el("td", {}, t.unavailable ? "unavailable" : fmtBytes(t.bytes || 0))));
    for (const s of t.subscriptions || []) {
      const c = s.counts || {};
      rows.push(el("tr", { class: "sub", id: "s-" + t.name + "/" + s.name }, el("td", {}, t.name + "/" + s.name),
        el("td", {}, String(c.ready)), el("td", {}, String(c.leased)), el("td", {}, String(c.dead)), el("td", {}, String(s.lag)), el("td")));
    }
  }
  $("topics").tBodies[0].replaceChildren(...rows);
  $("no-topics").hidden = topics.length > 0;
}

function showConfig(q) {
  const parts = ["visibility " + q.visibility_timeout, "max attempts " + q.max_attempts];
  if (q.dead_letter_queue) parts.push("dead letters to " + q.dead_letter_queue);
  if (q.retention && q.retention !== "0s") parts.push("retention " + q.retention);
  if (q.delay && q.delay !== "0s") parts.push("delay " + q.delay);
  $("detail-config").textContent = parts.join(" · ");
}

function select(name) {
  state.selected = name;
  cancelConfirm();
  $("detail").hidden = !name;
  $("messages").replaceChildren();
  $("result").textContent = "";
  if (name) $("detail-name").textContent = name;
  for (const tr of $("queues").tBodies[0].rows) tr.classList.toggle("selected", tr.id === "q-" + name);
}

function say(text, isError) {
  $("result").textContent = text;
  $("result").className = isError ? "error" : "";
}

async function refresh() {
  try {
    const [qs, ts] = await Promise.all([api("GET", "/v1/queues"), api("GET", "/v1/topics")]);
    $("login").hidden = true;
    $("main").hidden = false;
    $("signout").hidden = !state.token;
    renderQueues(qs.queues || []);
    renderTopics(ts.topics || []);
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof Unauthorized) {
      $("main").hidden = true;
      $("login").hidden = false;
      $("status").textContent = "sign in";
      if (state.token) {
        $("login-error").textContent = "That token was refused.";
        $("login-error").hidden = false;
      }
    } else {
      $("status").textContent = "cannot reach the server: " + e.message;
    }
  }
}

// act runs one action on the selected queue, says how it went, and
// refreshes the counts.
async function act(label, fn) {
  const name = state.selected;
  if (!name) return;
  try {
    say(await fn(name));
  } catch (e) {
    if (e instanceof Unauthorized) return refresh();
    say(label + " failed: " + e.message, true);
  }
  refresh();
}

function showMessages(list, what) {
  const items = (list.messages || []).map((m) => {
    const body = m.body !== undefined ? m.body : "(binary, " + (m.body_base64 || "").length + " base64 chars)";
    return el("li", { "data-id": m.id },
      el("span", { class: "meta" }, "#" + m.id + " " + (m.state || "dead") + ", " + m.attempts + " attempts · "),
      body.length > 500 ? body.slice(0, 500) + "…" : body);
  });
  $("messages").replaceChildren(...items);
  return items.length + " " + what;
}

function confirmThen(text, fn) {
  state.pending = fn;
  $("confirm-text").textContent = text;
  $("confirm").hidden = false;
}

function cancelConfirm() {
  state.pending = null;
  $("confirm").hidden = true;
}

function wire() {
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    $("login-error").hidden = true;
    refresh();
  });
  $("signout").addEventListener("click", () => {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    refresh();
  });
  $("peek").addEventListener("click", () => act("Peek", async (q) => showMessages(await api("GET", queuePath(q, "/messages") + "?limit=100"), "messages (up to 100)")));
  $("dead").addEventListener("click", () => act("Dead letters", async (q) => showMessages(await api("GET", queuePath(q, "/dead") + "?limit=100"), "dead letters (up to 100)")));
  $("redrive").addEventListener("click", () => act("Redrive", async (q) => {
    const r = await api("POST", queuePath(q, "/redrive"));
    return "redriven: " + (r ? r.redriven : 0);
  }));
  $("purge").addEventListener("click", () => confirmThen("Remove every message of " + state.selected + "?", () =>
    act("Purge", async (q) => { await api("POST", queuePath(q, "/purge")); $("messages").replaceChildren(); return "purged " + q; })));
  $("delete").addEventListener("click", () => confirmThen("Delete " + state.selected + " and all its messages?", () =>
    act("Delete", async (q) => { await api("POST", queuePath(q, "/delete")); select(null); return "deleted " + q; })));
  $("confirm-yes").addEventListener("click", () => { const fn = state.pending; cancelConfirm(); if (fn) fn(); });
  $("confirm-no").addEventListener("click", cancelConfirm);
  $("send-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = $("send-body").value;
    act("Send", async (q) => {
      const r = await api("POST", queuePath(q, "/messages"), body, true);
      $("send-body").value = "";
      return "sent: id " + (r && r.ids ? r.ids[0] : "?");
    });
  });
}

wire();
refresh();
setInterval(refresh, POLL_MS);
