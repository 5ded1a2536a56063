// Rep console: login, presence, queue, screen-pop, accept/decline/hang up, wrap-up.
"use strict";

const state = {
  user: null,
  dispositions: [],
  socket: null,
  reconnectDelayMs: 1000,
  offerId: null,
  offer: null,
  call: null, // {handoffId, callId, screenPop}
  lastCall: null,
  audio: null,
  queue: [],
};

const $ = (id) => document.getElementById(id);

function show(id, visible) {
  $(id).classList.toggle("hidden", !visible);
}

async function api(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = {};
  try {
    data = await response.json();
  } catch (error) {
    data = {};
  }
  if (!response.ok) {
    const failure = new Error(data.error || response.statusText);
    failure.status = response.status;
    throw failure;
  }
  return data;
}

function showError(message) {
  $("action-error").textContent = message || "";
}

// Login

async function checkSession() {
  try {
    const data = await api("GET", "/console/api/me");
    onLoggedIn(data);
  } catch (error) {
    show("login-panel", true);
    show("work-panel", false);
  }
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const data = await api("POST", "/console/api/login", {
      username: $("login-username").value,
      password: $("login-password").value,
    });
    $("login-password").value = "";
    onLoggedIn(data);
  } catch (error) {
    $("login-error").textContent = error.status === 401 ? t("login_failed") : error.message;
  }
}

function onLoggedIn(data) {
  state.user = data.user;
  state.dispositions = data.dispositions || [];
  $("user-name").textContent = `${data.user.name} (${data.user.username})`;
  show("login-panel", false);
  show("work-panel", true);
  show("logout-btn", true);
  renderDispositions();
  if (data.presence) {
    renderPresence(data.presence.status);
  }
  connectSocket();
  refreshQueue();
}

async function logout() {
  try {
    await api("POST", "/console/api/logout", {});
  } finally {
    window.location.reload();
  }
}

// Live events

function connectSocket() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/console/ws`);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  socket.onopen = () => {
    state.reconnectDelayMs = 1000;
    $("connection-status").textContent = t("connected");
    window.voicebotStats.socket = "open";
  };
  socket.onmessage = (event) => {
    if (typeof event.data === "string") {
      onEvent(JSON.parse(event.data));
    } else if (state.audio) {
      state.audio.onCallerAudio(event.data);
    }
  };
  socket.onclose = (event) => {
    window.voicebotStats.socket = "closed";
    $("connection-status").textContent = t("disconnected");
    if (state.audio) {
      state.audio.stop();
      state.audio = null;
    }
    if (event.code === 4000 || event.code === 1000 || !state.user) {
      return;
    }
    setTimeout(connectSocket, state.reconnectDelayMs);
    state.reconnectDelayMs = Math.min(state.reconnectDelayMs * 2, 15000);
  };
}

function onEvent(message) {
  if (message.type === "queue_changed") {
    refreshQueue();
  } else if (message.type === "offer") {
    showOffer(message.handoff_id);
  } else if (message.type === "offer_withdrawn") {
    if (state.offerId === message.handoff_id) {
      clearOffer();
      showError(t("offer_withdrawn"));
    }
  } else if (message.type === "call_ended") {
    endCall(message.handoff_id);
  } else if (message.type === "presence") {
    renderPresence(message.status);
  }
}

// Presence

function renderPresence(status) {
  $("presence-status").textContent = t(status);
  $("presence-status").dataset.status = status;
  for (const button of document.querySelectorAll(".presence-buttons button")) {
    button.classList.toggle("active", button.dataset.status === status);
  }
}

async function setPresence(status) {
  showError("");
  try {
    const data = await api("POST", "/console/api/presence", { status });
    renderPresence(data.presence ? data.presence.status : status);
  } catch (error) {
    showError(error.message);
  }
}

// Queue

async function refreshQueue() {
  try {
    const data = await api("GET", "/console/api/queue");
    state.queue = data.handoffs;
    renderQueue();
  } catch (error) {
    showError(error.message);
  }
}

function renderQueue() {
  const body = document.querySelector("#queue-table tbody");
  body.replaceChildren();
  for (const handoff of state.queue) {
    const row = document.createElement("tr");
    row.dataset.handoffId = handoff.handoff_id;
    const reasons = document.createElement("td");
    for (const reason of handoff.reasons) {
      reasons.append(reasonBadge(reason));
    }
    row.append(
      cell(handoff.position === null ? "-" : String(handoff.position)),
      cell(t(`skill.${handoff.skill}`)),
      cell(String(handoff.priority)),
      cell(`${Math.round(handoff.waited_s)} ${t("seconds")}`),
      reasons,
      cell(t(`state.${handoff.state}`)),
    );
    body.append(row);
  }
  show("queue-empty", state.queue.length === 0);
}

function cell(text) {
  const element = document.createElement("td");
  element.textContent = text;
  return element;
}

function reasonBadge(reason) {
  const badge = document.createElement("span");
  badge.className = "reason";
  badge.textContent = voicebotLang === "zh" ? reason.label : `${reason.label} (${reason.code})`;
  badge.dataset.code = reason.code;
  return badge;
}

// Screen-pop

function renderScreenPop(container, handoff) {
  container.replaceChildren();
  const pop = handoff.screen_pop || {};
  const reasons = document.createElement("div");
  reasons.className = "reasons";
  const reasonsTitle = document.createElement("h3");
  reasonsTitle.textContent = t("reasons");
  reasons.append(reasonsTitle);
  for (const reason of handoff.reasons) {
    reasons.append(reasonBadge(reason));
  }

  const summaryTitle = document.createElement("h3");
  summaryTitle.textContent = t("summary");
  const summary = document.createElement("p");
  summary.className = "summary";
  summary.textContent = pop.summary || "-";

  const facts = document.createElement("dl");
  facts.className = "slots";
  const addFact = (name, value) => {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = value;
    facts.append(term, detail);
  };
  addFact(t("skill"), t(`skill.${handoff.skill}`));
  addFact(t("verification"), t(`verification.${pop.verification || "unknown"}`));
  addFact(t("language"), pop.language || "-");
  addFact(t("centre"), pop.centre || "-");
  addFact(t("call_start"), pop.call_started_at ? new Date(pop.call_started_at * 1000).toLocaleTimeString() : "-");
  addFact(t("waited"), `${Math.round(handoff.waited_s)} ${t("seconds")}`);

  const slotsTitle = document.createElement("h3");
  slotsTitle.textContent = t("slots");
  const slots = document.createElement("dl");
  slots.className = "slots collected";
  for (const [name, value] of Object.entries(pop.slots || {})) {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = value;
    slots.append(term, detail);
  }

  const transcriptTitle = document.createElement("h3");
  transcriptTitle.textContent = t("transcript");
  const transcript = document.createElement("div");
  transcript.className = "transcript";
  for (const [role, text] of pop.transcript || []) {
    const line = document.createElement("p");
    line.className = role;
    line.textContent = `${t(role)}：${text}`;
    transcript.append(line);
  }
  container.append(reasons, summaryTitle, summary, facts, slotsTitle, slots, transcriptTitle, transcript);
}

async function showOffer(handoffId) {
  try {
    const data = await api("GET", `/console/api/handoffs/${encodeURIComponent(handoffId)}`);
    state.offerId = handoffId;
    state.offer = data.handoff;
    renderScreenPop($("screen-pop"), data.handoff);
    show("offer-panel", true);
  } catch (error) {
    showError(error.message);
  }
}

function clearOffer() {
  state.offerId = null;
  state.offer = null;
  show("offer-panel", false);
}

async function accept() {
  const handoffId = state.offerId;
  if (!handoffId) {
    return;
  }
  showError("");
  // Created inside the click handler so the browser lets audio start.
  const audio = new CallAudio(state.socket, 8000);
  const prepared = audio.prepare();
  try {
    const data = await api("POST", `/console/api/handoffs/${encodeURIComponent(handoffId)}/accept`, {});
    await prepared;
    audio.bridgeRate = data.sample_rate_hz;
    audio.frameSamples = data.sample_rate_hz / 50;
    state.call = { handoffId, callId: data.call_id, handoff: state.offer };
    state.audio = audio;
    renderScreenPop($("call-screen-pop"), state.offer);
    clearOffer();
    show("call-panel", true);
    show("wrapup-panel", false);
    await audio.start();
  } catch (error) {
    audio.stop();
    showError(error.message);
  }
}

async function decline() {
  const handoffId = state.offerId;
  if (!handoffId) {
    return;
  }
  clearOffer();
  try {
    await api("POST", `/console/api/handoffs/${encodeURIComponent(handoffId)}/decline`, {});
  } catch (error) {
    showError(error.message);
  }
}

async function hangup() {
  if (!state.call) {
    return;
  }
  const handoffId = state.call.handoffId;
  try {
    await api("POST", `/console/api/handoffs/${encodeURIComponent(handoffId)}/hangup`, {});
  } catch (error) {
    showError(error.message);
  }
  endCall(handoffId);
}

function endCall(handoffId) {
  if (!state.call || state.call.handoffId !== handoffId) {
    return;
  }
  if (state.audio) {
    state.audio.stop();
    state.audio = null;
  }
  state.lastCall = state.call;
  state.call = null;
  show("call-panel", false);
  show("wrapup-panel", true);
  $("disposition-saved").textContent = "";
  $("correction-saved").textContent = "";
  showError(t("call_ended"));
}

// Wrap-up

function renderDispositions() {
  const select = $("disposition-select");
  const current = select.value;
  select.replaceChildren();
  for (const code of state.dispositions) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = t(`disposition.${code}`);
    select.append(option);
  }
  if (current) {
    select.value = current;
  }
}

async function saveDisposition() {
  if (!state.lastCall) {
    return;
  }
  try {
    await api("POST", `/console/api/calls/${encodeURIComponent(state.lastCall.callId)}/disposition`, {
      handoff_id: state.lastCall.handoffId,
      disposition: $("disposition-select").value,
      notes: $("notes").value,
    });
    $("disposition-saved").textContent = t("saved");
  } catch (error) {
    showError(error.message);
  }
}

async function saveCorrection() {
  if (!state.lastCall) {
    return;
  }
  try {
    await api("POST", `/console/api/calls/${encodeURIComponent(state.lastCall.callId)}/correction`, {
      handoff_id: state.lastCall.handoffId,
      bot_text: $("correction-bot").value,
      corrected_text: $("correction-text").value,
    });
    $("correction-saved").textContent = t("saved");
    $("correction-text").value = "";
  } catch (error) {
    showError(error.message);
  }
}

function updateAudioStats() {
  const stats = window.voicebotStats;
  $("audio-stats").textContent =
    `in ${stats.receivedFrames} (${stats.receivedRms.toFixed(3)}) / out ${stats.sentFrames} (${stats.sentRms.toFixed(3)})`;
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  $("lang-switch").addEventListener("click", switchLanguage);
  $("login-form").addEventListener("submit", login);
  $("logout-btn").addEventListener("click", logout);
  for (const button of document.querySelectorAll(".presence-buttons button")) {
    button.addEventListener("click", () => setPresence(button.dataset.status));
  }
  $("accept-btn").addEventListener("click", accept);
  $("decline-btn").addEventListener("click", decline);
  $("hangup-btn").addEventListener("click", hangup);
  $("save-disposition").addEventListener("click", saveDisposition);
  $("save-correction").addEventListener("click", saveCorrection);
  document.addEventListener("voicebot-language", () => {
    renderQueue();
    renderDispositions();
    if (state.offer) {
      renderScreenPop($("screen-pop"), state.offer);
    }
    const status = $("presence-status").dataset.status;
    if (status) {
      renderPresence(status);
    }
  });
  setInterval(updateAudioStats, 500);
  checkSession();
});
