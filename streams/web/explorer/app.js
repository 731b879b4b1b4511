// The session explorer: vanilla JS, no build step, nothing from the network but this worker's API.
// The service key lives in sessionStorage and goes out only as "Authorization: Bearer"; session
// ids and keys never go into the URL.
"use strict";

const KEY_STORAGE = "sessionExplorerKey";
const POLL_TIMELINE_MS = 2000;
const POLL_RECENT_MS = 5000;
const POLL_OPERATIONS_MS = 2000;

const $ = (id) => document.getElementById(id);
const state = {
  view: "sessions",
  sessionId: null,
  events: [], // the open session's timeline, log order
  meta: null,
  past: null, // null: now; {after: id} or {at: iso}
  timers: [],
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function key() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

async function api(path) {
  const headers = { Accept: "application/json" };
  if (key()) headers.Authorization = "Bearer " + key();
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  } catch (err) {
    throw new ApiError(0, "network", "The worker did not answer. Is it running?");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText);
  }
  return body;
}

// --- messages ----------------------------------------------------------------------------------

function showAlert(text) {
  const alert = $("alert");
  alert.textContent = text;
  alert.hidden = false;
}

function clearAlert() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}

function say(text) {
  $("status").textContent = text;
}

function explain(err, what) {
  if (!(err instanceof ApiError)) return `${what}: ${err}`;
  if (err.status === 401) {
    return key()
      ? "The service key was refused (401 unauthorized): check it and enter it again."
      : "Enter a service key first (the API answered 401 unauthorized).";
  }
  if (err.status === 403) return `This service key may not do that (403): ${err.message}.`;
  if (err.code === "session_not_found") return "No such session.";
  if (err.status === 503) return `${what}: the worker is busy (503): ${err.message}. Try again shortly.`;
  return `${what}: ${err.message} (${err.status || "no answer"})`;
}

function fail(err, what) {
  showAlert(explain(err, what));
  if (err instanceof ApiError && err.status === 401) $("key-input").focus();
}

// --- small DOM helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function show(value) {
  if (value === null || value === undefined) return "null";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function clip(text, size) {
  return text.length > size ? text.slice(0, size - 1) + "…" : text;
}

function formatTime(iso) {
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toISOString().replace("T", " ").replace("Z", " UTC");
}

function ago(epochSeconds) {
  const seconds = Math.max(0, Math.round(Date.now() / 1000 - epochSeconds));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

// --- views -------------------------------------------------------------------------------------

function setView(view) {
  state.view = view;
  $("tab-sessions").setAttribute("aria-pressed", String(view === "sessions"));
  $("tab-operations").setAttribute("aria-pressed", String(view === "operations"));
  $("view-sessions").hidden = view !== "sessions";
  $("view-operations").hidden = view !== "operations";
  clearAlert();
  say("");
  if (view === "operations") refreshOperations();
  else refreshRecent();
}

// --- recent sessions ---------------------------------------------------------------------------

async function refreshRecent() {
  if (state.view !== "sessions" || !key()) return;
  let body;
  try {
    body = await api("/api/v1/sessions?limit=50");
  } catch (err) {
    if (err.status === 401 || err.status === 403) fail(err, "Recent sessions");
    return;
  }
  const list = $("recent");
  const ids = body.sessions.map((item) => item.id).join(",");
  if (list.dataset.ids === ids) {
    list.querySelectorAll(".ago").forEach((span, index) => (span.textContent = ago(body.sessions[index].lastFoldedAt)));
    return;
  }
  const focused = document.activeElement && document.activeElement.getAttribute("data-session");
  list.dataset.ids = ids;
  list.replaceChildren();
  if (!body.sessions.length) list.append(el("li", { className: "help", text: "No session folded since the workers started." }));
  for (const item of body.sessions) {
    const button = el("button", { type: "button", "data-session": item.id }, item.id);
    button.append(el("span", { className: "ago", text: ago(item.lastFoldedAt) }));
    button.addEventListener("click", () => openSession(item.id));
    list.append(el("li", {}, button));
    if (focused === item.id) button.focus();
  }
}

// --- one session -------------------------------------------------------------------------------

async function fetchTimeline(id) {
  const events = [];
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const query = new URLSearchParams({ limit: "1000" });
    if (cursor) query.set("cursor", cursor);
    const body = await api(`/api/v1/sessions/${encodeURIComponent(id)}/events?${query}`);
    events.push(...body.events);
    cursor = body.next;
    if (!cursor) break;
  }
  return events;
}

async function openSession(id) {
  id = id.trim().toLowerCase();
  clearAlert();
  if (!key()) {
    showAlert("Enter a service key first.");
    $("key-input").focus();
    return;
  }
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) {
    showAlert("No such session: a session id is a lowercase UUID.");
    return;
  }
  say(`Opening session ${id}…`);
  let document_;
  try {
    document_ = await api(`/api/v1/sessions/${id}`);
  } catch (err) {
    $("session").hidden = true;
    state.sessionId = null;
    say("");
    fail(err, "Opening the session");
    return;
  }
  state.sessionId = id;
  state.past = null;
  state.meta = document_.meta;
  state.events = [];
  $("session-id").textContent = id;
  $("session").hidden = false;
  try {
    state.events = await fetchTimeline(id);
  } catch (err) {
    fail(err, "Reading the timeline");
  }
  renderSession(document_);
  renderTimeline();
  renderSlider();
  loadSegment(id);
  say(`Session ${id} opened: ${state.events.length} events.`);
  $("session-heading").setAttribute("tabindex", "-1");
  $("session-heading").focus();
}

async function loadSegment(id) {
  const body = $("segment").tBodies[0];
  body.replaceChildren();
  let answer;
  try {
    answer = await api(`/api/v1/sessions/${id}/segment`);
  } catch (err) {
    body.append(el("tr", {}, el("td", { colspan: "2", text: explain(err, "The segment") })));
    return;
  }
  for (const [field, value] of Object.entries(answer.segment)) {
    body.append(el("tr", {}, el("th", { scope: "row", text: field }), el("td", { className: "value", text: show(value) })));
  }
}

// Which event last set each "namespace.key", among the events up to the state shown.
function setters(events) {
  const by = new Map();
  for (const event of events) for (const path of event.changes || []) by.set(path, event);
  return by;
}

function eventsUpTo() {
  if (!state.past) return state.events;
  if (state.past.after) {
    const index = state.events.findIndex((e) => e.id === state.past.after);
    return state.events.slice(0, index + 1);
  }
  const at = Date.parse(state.past.at);
  return state.events.filter((e) => Date.parse(e.time) <= at);
}

function renderSession(document_) {
  const meta = document_.meta || state.meta;
  $("session-meta").textContent = meta
    ? `${meta.eventCount} events, first ${formatTime(meta.firstEventTime)}, last ${formatTime(meta.lastEventTime)}`
    : "";
  let when = "Now";
  if (state.past && state.past.after) {
    const event = state.events.find((e) => e.id === state.past.after);
    when = `As it was right after event ${event ? `${event.type} at ${formatTime(event.time)}` : state.past.after}`;
  } else if (state.past && state.past.at) {
    when = `As it was at ${formatTime(state.past.at)}`;
  }
  $("session-when").textContent = when;
  $("namespaces-caption").textContent = `Namespaces: ${when.toLowerCase()}`;
  $("back-to-now").hidden = !state.past;
  const by = setters(eventsUpTo());
  const body = $("namespaces").tBodies[0];
  body.replaceChildren();
  const namespaces = document_.namespaces || {};
  for (const namespace of Object.keys(namespaces).sort()) {
    for (const [name, entry] of Object.entries(namespaces[namespace]).sort()) {
      const setter = by.get(`${namespace}.${name}`);
      const setBy = setter ? `${setter.type}, ${formatTime(setter.time)}` : "not in the timeline";
      body.append(
        el(
          "tr",
          { "data-path": `${namespace}.${name}` },
          el("td", { "data-label": "Namespace", text: namespace }),
          el("th", { scope: "row", "data-label": "Key", text: name }),
          el("td", { className: "value", "data-label": "Value", text: show(entry && entry.value) }),
          el("td", { className: "by", "data-label": "Set by", text: setBy, title: setter ? `event ${setter.id}` : "" }),
        ),
      );
    }
  }
  if (!body.rows.length) body.append(el("tr", {}, el("td", { colspan: "4", text: "No values." })));
}

const INTERESTING = [
  "url", "pageType", "title", "utm_source", "utm_medium", "utm_campaign", "utmi_cp", "userId",
  "sku", "quantity", "price", "currency", "account",
];

function fieldsOf(event) {
  const data = event.data || {};
  const parts = [];
  for (const name of INTERESTING) if (data[name] != null) parts.push(`${name}=${show(data[name])}`);
  if (data.public) for (const [name, entry] of Object.entries(data.public)) parts.push(`public.${name}=${show(entry && entry.value)}`);
  if (!parts.length) {
    for (const [name, value] of Object.entries(data).filter(([, v]) => v != null).slice(0, 3)) {
      parts.push(`${name}=${show(value)}`);
    }
  }
  return clip(parts.join("  "), 240);
}

function renderTimeline() {
  const list = $("timeline");
  const focused = document.activeElement && document.activeElement.getAttribute("data-event");
  list.replaceChildren();
  state.events.forEach((event, index) => {
    const selected = state.past && state.past.after === event.id;
    const changes = (event.changes || []).length ? `changed ${event.changes.join(", ")}` : "changed nothing";
    const button = el(
      "button",
      { type: "button", "data-event": event.id, "aria-current": String(Boolean(selected)) },
      el("span", { className: "visually-hidden", text: `Event ${index + 1}: ` }),
      el("span", { className: "time", text: formatTime(event.time) }),
      el("span", { className: "type", text: event.type + (event.rejected ? " (refused)" : "") }),
      el("span", { className: "fields", text: fieldsOf(event) || "no data" }),
      el("span", { className: "changes", text: changes }),
    );
    button.addEventListener("click", () => showPast({ after: event.id }));
    list.append(el("li", {}, button));
    if (focused === event.id) button.focus();
  });
  $("live").textContent = `(${state.events.length} events, live)`;
}

// The slider runs over the lifetime in milliseconds: its first event's time to its last one's.
function renderSlider() {
  const slider = $("time-slider");
  if (!state.events.length) {
    slider.disabled = true;
    return;
  }
  const first = Date.parse(state.events[0].time);
  const last = Date.parse(state.events[state.events.length - 1].time);
  slider.disabled = false;
  slider.min = String(first);
  slider.max = String(Math.max(last, first + 1));
  if (!state.past) slider.value = slider.max;
  updateSliderOutput();
}

function sliderTime() {
  return new Date(Number($("time-slider").value)).toISOString();
}

function updateSliderOutput() {
  const text = formatTime(sliderTime());
  $("time-output").textContent = text;
  $("time-slider").setAttribute("aria-valuetext", text);
}

async function showPast(past) {
  const id = state.sessionId;
  if (!id) return;
  clearAlert();
  const query = past.after ? `after=${encodeURIComponent(past.after)}` : `at=${encodeURIComponent(past.at)}`;
  let document_;
  try {
    document_ = await api(`/api/v1/sessions/${id}?${query}`);
  } catch (err) {
    if (err.code === "no_state_at") {
      showAlert("The session had no state at that time.");
      return;
    }
    fail(err, "Reading the past state");
    return;
  }
  if (id !== state.sessionId) return;
  state.past = past;
  renderSession(document_);
  renderTimeline();
  say(past.after ? "Showing the state right after the selected event." : `Showing the state at ${formatTime(past.at)}.`);
}

async function backToNow() {
  const id = state.sessionId;
  if (!id) return;
  state.past = null;
  try {
    const document_ = await api(`/api/v1/sessions/${id}`);
    state.meta = document_.meta;
    renderSession(document_);
  } catch (err) {
    fail(err, "Reading the session");
  }
  renderTimeline();
  renderSlider();
  say("Showing the session now.");
}

// Live: poll the open session's document (small); when its event count or last event time moved,
// read the timeline again: new events are added, and "now" is re-rendered.
async function pollSession() {
  const id = state.sessionId;
  if (!id || state.view !== "sessions" || !key()) return;
  let document_;
  let events;
  try {
    document_ = await api(`/api/v1/sessions/${id}`);
    const before = state.meta || {};
    const after = document_.meta || {};
    if (after.eventCount === before.eventCount && after.lastEventTime === before.lastEventTime) return;
    events = await fetchTimeline(id);
  } catch (err) {
    return; // a transient failure: the next poll tries again
  }
  if (id !== state.sessionId) return;
  const added = events.length - state.events.length;
  state.events = events;
  state.meta = document_.meta;
  renderTimeline();
  if (!state.past) {
    renderSession(document_);
    renderSlider();
    loadSegment(id);
  }
  if (added > 0) say(`${added} new event${added === 1 ? "" : "s"} arrived.`);
}

// --- operations ----------------------------------------------------------------------------------

async function refreshOperations() {
  if (state.view !== "operations" || !key()) return;
  let body;
  try {
    body = await api("/api/v1/operations?seconds=300");
  } catch (err) {
    fail(err, "Operations");
    return;
  }
  clearAlert();
  renderChart(body);
  const deadRecent = body.deadLetters.reduce((a, b) => a + b, 0);
  $("dead-summary").textContent =
    `${body.totals.deadLetters} set aside since the workers started, ${deadRecent} in the last 5 minutes ` +
    "(sessionctl dlq list shows them).";
  const workers = $("workers").tBodies[0];
  workers.replaceChildren();
  for (const worker of body.workers) {
    const stateText = !worker.reachable ? "not answering" : worker.ready ? "ready" : "restoring";
    workers.append(
      el(
        "tr",
        {},
        el("th", { scope: "row", text: worker.url }),
        el("td", { text: worker.reachable ? worker.partitions.join(", ") || "none" : "?" }),
        el("td", { text: worker.reachable ? worker.standbys.join(", ") || "none" : "?" }),
        el("td", { text: stateText }),
      ),
    );
  }
  const lag = $("lag").tBodies[0];
  lag.replaceChildren();
  const owners = [];
  for (const worker of body.workers) {
    if (worker.reachable) for (const partition of worker.partitions) owners.push([partition, worker.url]);
  }
  owners.sort((a, b) => a[0] - b[0]);
  for (const [partition, url] of owners) {
    const behind = body.lag[String(partition)];
    lag.append(
      el(
        "tr",
        {},
        el("th", { scope: "row", text: String(partition) }),
        el("td", { text: behind === undefined ? "not measured yet" : String(behind) }),
        el("td", { text: url }),
      ),
    );
  }
  if (!lag.rows.length) lag.append(el("tr", {}, el("td", { colspan: "3", text: "No partition served yet." })));
}

function renderChart(body) {
  const svg = $("rate-chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const values = body.folded;
  const max = Math.max(1, ...values);
  const width = 600 / values.length;
  values.forEach((value, index) => {
    if (!value && !body.deadLetters[index]) return;
    const height = (value / max) * 116;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("class", "bar");
    bar.setAttribute("x", String(index * width));
    bar.setAttribute("y", String(120 - height));
    bar.setAttribute("width", String(Math.max(width, 1)));
    bar.setAttribute("height", String(height));
    svg.append(bar);
    if (body.deadLetters[index]) {
      const mark = document.createElementNS(ns, "rect");
      mark.setAttribute("class", "dead");
      mark.setAttribute("x", String(index * width));
      mark.setAttribute("y", "0");
      mark.setAttribute("width", String(Math.max(width, 1)));
      mark.setAttribute("height", "4");
      svg.append(mark);
    }
  });
  const last10 = values.slice(-10);
  const recent = last10.reduce((a, b) => a + b, 0) / Math.max(1, last10.length);
  $("rate-summary").textContent =
    `Last 5 minutes: peak ${max === 1 && !values.some(Boolean) ? 0 : max}/s, ` +
    `${recent.toFixed(1)}/s over the last 10 s, ${body.totals.folded} since the workers started.`;
}

// --- start -----------------------------------------------------------------------------------------

function poll(fn, ms) {
  state.timers.push(setInterval(fn, ms));
}

async function checkKey() {
  // Any read that needs a key tells whether this one is known; the recent list needs sessions:read.
  try {
    await api("/api/v1/sessions?limit=1");
    clearAlert();
    say("Key accepted.");
    return true;
  } catch (err) {
    if (err.status === 403) {
      say("Key accepted (it lacks sessions:read: the recent list stays empty).");
      return true;
    }
    fail(err, "Checking the key");
    return false;
  }
}

function init() {
  $("tab-sessions").addEventListener("click", () => setView("sessions"));
  $("tab-operations").addEventListener("click", () => setView("operations"));
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = $("key-input").value.trim();
    $("key-input").value = "";
    if (!value) {
      showAlert("Enter a service key.");
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, value);
    if (await checkKey()) {
      if (state.view === "operations") refreshOperations();
      else refreshRecent();
    }
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $("recent").replaceChildren();
    delete $("recent").dataset.ids;
    say("Key forgotten.");
  });
  $("find-form").addEventListener("submit", (event) => {
    event.preventDefault();
    openSession($("find-input").value);
  });
  $("back-to-now").addEventListener("click", backToNow);
  const slider = $("time-slider");
  slider.addEventListener("input", updateSliderOutput);
  slider.addEventListener("change", () => {
    if (Number(slider.value) >= Number(slider.max)) backToNow();
    else showPast({ at: sliderTime() });
  });
  poll(pollSession, POLL_TIMELINE_MS);
  poll(refreshRecent, POLL_RECENT_MS);
  poll(refreshOperations, POLL_OPERATIONS_MS);
  if (key()) {
    say("Using the service key of this tab.");
    refreshRecent();
  } else {
    say("Enter a service key to begin.");
  }
}

document.addEventListener("DOMContentLoaded", init);
