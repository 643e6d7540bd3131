// The live page of bd serve: message log, task board and agents, kept current over a
// WebSocket that pushes every new record. Plain JS, no build step.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { project: null, statuses: [], known: new Set(), socket: null, retry: 500,
                boardTimer: null, agentsTimer: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function showAlert(text, kind) {  // kind: "error" (pink) or "warn" (yellow)
  $("#banner-text").textContent = text; $("#banner").className = kind; $("#banner").hidden = false;
}
function showError(text) { showAlert(text, "error"); }
$("#banner-close").addEventListener("click", () => { $("#banner").hidden = true; });

function headers(json) {
  const h = {};
  const token = sessionStorage.getItem("bd-token");
  if (token) h["Authorization"] = "Bearer " + token;
  const who = $("#identity").value.trim();
  if (who && !token) h["X-Beads-Identity"] = who;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function api(path, body) {
  const opts = body === undefined ? { headers: headers(false) }
    : { method: "POST", headers: headers(true), body: JSON.stringify(body) };
  let res;
  try { res = await fetch(path, opts); } catch (e) {
    throw new Error("the server did not answer: is bd serve still running? Reload once it is.");
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error((data.error && data.error.message) || res.statusText);
    err.status = res.status; err.detail = data.error || {};
    throw err;
  }
  return data;
}

function when(iso) {  // the time of day today, the date too on any other day
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString()
    : d.toLocaleString();
}

// -- message log -------------------------------------------------------------------

function filters() {
  return { agent: $("#f-agent").value, channel: $("#f-channel").value, type: $("#f-type").value };
}

function matches(m) {
  const f = filters();
  if (f.type && m.type !== f.type) return false;
  if (f.channel && !m.to.includes("#" + f.channel)) return false;
  if (f.agent && m.from !== f.agent && !m.to.includes(f.agent)) return false;
  return true;
}

// whether a record (or an agent's profile record) is signed, as a word, not colour alone
function sigBadge(r) {
  if (!r.verified) return null;
  return el("span", { class: "badge sig " + r.verified, title: r.signed_by ?
    "signed by replica " + r.signed_by + (r.via ? " via bd " + r.via : "") : r.verified },
    r.verified === "verified" ? "\u2713 verified" : r.verified);
}

function renderMessage(m, fresh) {
  const threadBox = el("div", { class: "thread", hidden: "" });
  const toggle = el("button", { class: "thread-toggle", type: "button",
    onclick: () => toggleThread(m, threadBox, toggle) }, "thread");
  return el("li", { class: "msg" + (fresh ? " new" : ""), dataset: { id: m.id } },
    el("div", { class: "meta" },
      el("span", { class: "from" }, m.from), "→", el("span", { class: "to" }, m.to.join(", ")),
      el("span", { class: "badge type" }, m.type),
      sigBadge(m),
      el("span", { class: "badge p" + m.priority, title: "priority" }, "P" + m.priority),
      el("time", { datetime: m.created_at, title: m.created_at }, when(m.created_at)),
      m.replies_to ? el("span", {}, "re " + m.replies_to.slice(0, 8)) : null, toggle),
    el("div", { class: "subject" }, m.subject),
    m.body !== m.subject ? el("div", { class: "body" }, m.body) : null,
    threadBox);
}

async function toggleThread(m, box, button) {
  if (!box.hidden) { box.hidden = true; button.textContent = "thread"; return; }
  try {
    const thread = await api(`/api/messages/${encodeURIComponent(m.id)}/thread`);
    box.replaceChildren(...thread.map((t) => el("div", { class: "thread-item" },
      el("span", { class: "from" }, t.from), ` (${when(t.created_at)}): `,
      el("strong", {}, t.subject), t.body !== t.subject ? " — " + t.body : "")));
    box.hidden = false;
    button.textContent = `hide thread (${thread.length})`;
  } catch (e) { showError("thread: " + e.message); }
}

async function loadLog() {
  const f = filters();
  const q = new URLSearchParams({ limit: "200" });
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  try {
    const messages = await api("/api/messages?" + q);
    state.known = new Set(messages.map((m) => m.id));
    $("#log").replaceChildren(...messages.map((m) => renderMessage(m, false)));
    if (!messages.length) $("#log").append(el("li", { class: "empty" }, Object.values(f).some(Boolean)
      ? "No messages match these filters."
      : "No messages yet: send one below, or from a shell: bd mail send AGENT -s SUBJECT -m TEXT"));
    $("#log").scrollTop = $("#log").scrollHeight;
  } catch (e) { showError("messages: " + e.message); }
}

function addOption(select, value, label) {
  if ([...select.options].some((o) => o.value === value)) return;
  select.append(el("option", { value }, label || value));
}

function arrived(m) {
  addOption($("#f-agent"), m.from);  // (recipients may be typos: only senders surely exist)
  if (state.known.has(m.id) || !matches(m)) return;
  state.known.add(m.id);
  const log = $("#log");
  for (const empty of log.querySelectorAll(".empty")) empty.remove();
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(renderMessage(m, true));
  if (atBottom) log.scrollTop = log.scrollHeight;
}

// -- task board ----------------------------------------------------------------------

async function move(task, status) {
  try {
    await api(`/api/tasks/${encodeURIComponent(task.id)}/move`, { status, version: task.version });
  } catch (e) {
    const card = document.querySelector(`.card[data-task="${task.id}"]`);
    if (card) card.classList.add("conflict");
    showError((e.status === 409 ? "Version conflict: " : "Move refused: ") + e.message);
  }
  await loadBoard(true);
}

function renderCard(task) {
  const select = el("select", { "aria-label": "move " + task.title,
    onchange: (ev) => move({ id: task.id, version: Number(card.dataset.version) }, ev.target.value) },
    ...state.statuses.map((s) => { const o = el("option", { value: s }, s);
                                   if (s === task.status) o.selected = true; return o; }));
  const card = el("div", { class: "card", draggable: "true",
    dataset: { task: task.id, version: String(task.version), status: task.status },
    ondragstart: (ev) => ev.dataTransfer.setData("text/plain", task.id) },
    el("div", { class: "title" }, task.title),
    el("div", { class: "meta" }, el("span", { class: "badge" }, task.priority),
      el("span", {}, task.assigned_to || "unassigned"), el("span", {}, "v" + task.version),
      sigBadge(task)),
    select);
  return card;
}

function renderColumn(col) {
  const column = el("div", { class: "column", dataset: { status: col.status },
    ondragover: (ev) => { ev.preventDefault(); column.classList.add("over"); },
    ondragleave: () => column.classList.remove("over"),
    ondrop: (ev) => {
      ev.preventDefault(); column.classList.remove("over");
      const card = document.querySelector(`.card[data-task="${ev.dataTransfer.getData("text/plain")}"]`);
      if (card && card.dataset.status !== col.status)
        move({ id: card.dataset.task, version: Number(card.dataset.version) }, col.status);
    } },
    el("h3", {}, `${col.status.replace("_", " ")} (${col.count})`), ...col.tasks.map(renderCard));
  return column;
}

async function loadBoard(keepBanner) {
  try {
    const board = await api("/api/board?limit=100");
    $("#board").replaceChildren(...board.columns.map(renderColumn));
  } catch (e) { if (!keepBanner) showError("board: " + e.message); }
}

// -- agents -----------------------------------------------------------------------

function seen(a) {
  const s = a.seen_seconds_ago;
  if (s === null || s === undefined) return "never seen";
  return "last seen " + (s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min`
    : `${Math.round(s / 3600)} h`) + " ago";
}

async function loadAgents() {
  try {
    const [agents, info] = await Promise.all([api("/api/agents?all=true"), api("/api/info")]);
    const connected = new Set(info.connected);
    const ids = new Set(agents.map((a) => a.id));
    const rows = agents.map((a) => el("li", { dataset: { agent: a.id } },
      el("span", {}, a.id, a.role ? el("small", {}, ` ${a.role}`) : null,
         a.review_queue_count == null ? null : el("small", { class: "attention",
           title: "tasks waiting in review (attention score: 10 per task, at most 50)" },
           ` · review ${a.review_queue_count} · attention ${a.attention_score}`)),
      el("span", {}, connected.has(a.id) ? el("span", { class: "liveness connected" }, "connected") : null,
         " ", el("span", { class: "liveness " + a.liveness, title: seen(a) }, a.liveness),
         " ", sigBadge(a))));
    for (const id of connected) if (!ids.has(id)) rows.push(el("li", { dataset: { agent: id } },
      el("span", {}, id), el("span", { class: "liveness connected" }, "connected")));
    if (!rows.length) rows.push(el("li", { class: "empty" }, "no agents registered or connected"));
    $("#agents").replaceChildren(...rows);
    book.agents = agents; renderAddresses();
    for (const id of [...ids, ...connected]) addOption($("#f-agent"), id);
  } catch (e) { showError("agents: " + e.message); }
  await loadReservations();
}

async function loadReservations() {
  try {
    const held = await api("/api/reservations");
    const rows = held.map((r) => el("li", { class: r.state, dataset: { id: r.id } },
      el("strong", {}, r.pattern), ` ${r.holder} · ${r.mode} · until ${when(r.until)}`,
      r.reason ? el("small", {}, ` (${r.reason})`) : null,
      r.state === "lost" ? el("small", {}, ` lost to ${r.lost_to}`) : null));
    if (!rows.length) rows.push(el("li", { class: "empty" }, "no files reserved"));
    $("#reservations").replaceChildren(...rows);
  } catch (e) { showError("reservations: " + e.message); }
}

async function loadChannels() {
  try { book.channels = await api("/api/channels"); renderAddresses(); }
  catch (e) { showError("channels: " + e.message); }
}

// -- addresses ---------------------------------------------------------------------
// The page offers only addresses that exist: channels, registered agents that are not
// stopped, their groups, and '*'. The compose box starts at the first channel the viewer
// is in (the project's first), else empty with a placeholder.

const book = { agents: [], channels: [], autoTo: "" };

function renderAddresses() {
  const live = book.agents.filter((a) => a.registered && a.status !== "stopped");
  const groups = [...new Set(live.map((a) => a.group).filter(Boolean))].sort();
  const addresses = [...book.channels.map((c) => "#" + c.name), ...live.map((a) => a.id),
                     ...groups.map((g) => "@" + g), ...(live.length ? ["*"] : [])];
  $("#c-to-list").replaceChildren(...addresses.map((a) => el("option", { value: a })));
  const chosen = $("#f-channel").value;
  $("#f-channel").replaceChildren(el("option", { value: "" }, "all"),
    ...book.channels.map((c) => el("option", { value: c.name }, "#" + c.name)));
  $("#f-channel").value = book.channels.some((c) => c.name === chosen) ? chosen : "";
  defaultTo();
}

function defaultTo() {  // replaces the box's text only while it is the previous default
  const me = $("#identity").value.trim();
  const mine = book.channels.filter((c) => c.members.includes(me));
  const pick = mine.find((c) => c.name === state.project) || mine[0];
  const to = pick ? "#" + pick.name : "";
  if ($("#c-to").value.trim() === book.autoTo) $("#c-to").value = to;
  book.autoTo = to;
}

// -- live updates -----------------------------------------------------------------

function later(key, fn, ms) { clearTimeout(state[key]); state[key] = setTimeout(fn, ms); }
function soon(key, fn, ms) {  // at most one call pending: a stream of records cannot starve it
  if (!state[key]) state[key] = setTimeout(() => { state[key] = null; fn(); }, ms);
}

function connect() {
  const token = sessionStorage.getItem("bd-token");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}/ws/watch/${encodeURIComponent(state.project)}` +
    (token ? "?token=" + encodeURIComponent(token) : "");
  const socket = new WebSocket(url);
  state.socket = socket;
  socket.onopen = () => { state.retry = 500; $("#live").textContent = "live";
                          $("#live").className = "live on"; loadLog(); loadBoard(); };
  socket.onmessage = (ev) => {
    const frame = JSON.parse(ev.data);
    if (frame.type !== "record") return;
    const r = frame.record;
    if (r.kind === "message") arrived(r);
    if (["task", "task_event", "comment"].includes(r.kind)) later("boardTimer", () => loadBoard(true), 100);
    // any record is a sign of life of its writer: the agents' liveness follows it
    soon("agentsTimer", loadAgents, ["agent", "membership", "channel"].includes(r.kind) ? 200 : 1000);
    if (r.kind === "channel") loadChannels();
    if (r.kind === "reservation") later("reservationsTimer", loadReservations, 200);
  };
  socket.onclose = () => {
    $("#live").textContent = "offline"; $("#live").className = "live off";
    setTimeout(connect, state.retry); state.retry = Math.min(state.retry * 2, 10000);
  };
}

// -- start ------------------------------------------------------------------------

async function start() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) { sessionStorage.setItem("bd-token", fromHash); history.replaceState(null, "", "/"); }
  let info;
  try { info = await api("/api/info"); } catch (e) {
    if (e.status === 401 || e.status === 403) {
      $("#token-box").hidden = false;
      showError("This server needs an agent token: paste it above (bd agent token create NAME).");
      return;
    }
    showError("cannot reach the server: " + e.message); return;
  }
  state.project = info.projects[0];
  state.statuses = info.statuses;
  $("#project").textContent = info.projects.join(", ");
  if (!$("#identity").value) $("#identity").value = localStorage.getItem("bd-identity") || info.identity;
  if (info.tokens_required) $("#identity").disabled = true;
  for (const t of info.types) { addOption($("#f-type"), t); addOption($("#c-type"), t); }
  $("#c-type").value = "status";
  for (const f of ["#f-agent", "#f-channel", "#f-type"]) $(f).addEventListener("change", loadLog);
  await Promise.all([loadChannels(), loadAgents()]);
  setInterval(loadAgents, 15000);
  connect();
}

$("#identity").addEventListener("change", () => {
  localStorage.setItem("bd-identity", $("#identity").value.trim()); defaultTo();
});
$("#token-box").addEventListener("submit", (ev) => ev.preventDefault());
$("#token").addEventListener("change", () => { sessionStorage.setItem("bd-token", $("#token").value.trim()); location.reload(); });
$("#compose").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const to = $("#c-to").value.split(/[\s,]+/).filter(Boolean);
  const body = { to, type: $("#c-type").value, body: $("#c-body").value };
  if ($("#c-subject").value.trim()) body.subject = $("#c-subject").value.trim();
  try {
    const sent = await api("/api/messages", body);
    $("#c-body").value = ""; $("#c-subject").value = "";
    const warnings = (sent.warnings || []).map((w) => w.replace(/^warning: /, ""));
    if (warnings.length) showAlert("Sent, but " + warnings.join(" "), "warn");
  } catch (e) { showError("send: " + e.message); }
});
$("#new-task").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try { await api("/api/tasks", { title: $("#t-title").value }); $("#t-title").value = ""; }
  catch (e) { showError("new task: " + e.message); }
});
// -- search ------------------------------------------------------------------------

function marked(text) {  // "**word**" marks from the server become <mark>, never markup
  const out = el("span");
  (text || "").split("**").forEach((part, i) => out.append(i % 2 ? el("mark", {}, part) : part));
  return out;
}

function renderHit(h) {
  const head = h.kind === "task" ? `task ${h.id} [${h.status}] ${h.title}`
    : h.kind === "comment" ? `comment on ${h.task} by ${h.actor}`
    : `${h.kind} ${h.id} ${h.from} → ${h.to.join(", ")}: ${h.subject}`;
  return el("li", { class: "hit", dataset: { id: h.id, kind: h.kind } },
    el("div", { class: "meta" }, el("span", { class: "badge" }, h.kind), head, when(h.created_at)),
    el("div", { class: "body" }, marked(h.snippet || h.title_snippet)));
}

$("#search").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = $("#s-q").value.trim();
  const box = $("#results");
  if (!q) return;
  try {
    const hits = await api("/api/search?" + new URLSearchParams({ q, limit: "30" }));
    box.replaceChildren(...(hits.length ? hits.map(renderHit)
                                        : [el("li", { class: "hit" }, "No matches.")]));
    box.hidden = false; $("#s-clear").hidden = false;
  } catch (e) { showError("search: " + e.message); }
});
$("#s-clear").addEventListener("click", () => {
  $("#results").hidden = true; $("#s-clear").hidden = true; $("#s-q").value = "";
});
start();
