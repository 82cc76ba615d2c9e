// The sandbox inbox page: loads rendered cards, follows /_sandbox/events, drives the sandbox's
// control API. Cards arrive as HTML the server built (message content escaped there); anything
// this script builds from data uses textContent, never innerHTML.
"use strict";

const API = "/_sandbox";
const CHANNELS = {
  wecom_robot: ["WeCom robot", "wecom"],
  wecom_app: ["WeCom app", "wecom"],
  dingtalk_robot: ["DingTalk robot", "dingtalk"],
  dingtalk_work: ["DingTalk work", "dingtalk"],
};
// Faults the side panel offers; each becomes a POST /_sandbox/faults for the account.
const FAULTS = {
  http500: { label: "HTTP 500", fault: { http_status: 500 } },
  http503: { label: "HTTP 503", fault: { http_status: 503 } },
  busy: { label: "errcode -1 (system busy)", fault: { errcode: -1, errmsg: "system busy" } },
  slow: { label: "answer 10 s late", fault: { delay: 10 } },
  drop: { label: "drop the connection", fault: { drop: "before" } },
  throttled: {
    label: "rate limited",
    byChannel: { wecom_robot: 45009, wecom_app: 45009, dingtalk_robot: 130101, dingtalk_work: 90018 },
  },
};

const $ = (id) => document.getElementById(id);
const state = { accounts: [], selected: "" };

// -- theme ----------------------------------------------------------------------------------

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function currentTheme() {
  const chosen = document.documentElement.dataset.theme;
  if (chosen) return chosen;
  return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

applyTheme(localStorage.getItem("inbox-theme"));

// -- requests -------------------------------------------------------------------------------

async function call(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, options);
  if (!response.ok) {
    const text = await response.text();
    throw new Error(`${method} ${path}: ${response.status} ${text}`);
  }
  return response.status === 204 ? null : response.json();
}

// -- entries --------------------------------------------------------------------------------

function cardElement(card) {
  const template = document.createElement("template");
  template.innerHTML = card.html.trim();
  const element = template.content.firstElementChild;
  element.dataset.seq = card.seq;
  element.dataset.channel = card.channel;
  element.dataset.account = card.account;
  element.dataset.kind = card.kind;
  element.dataset.search = card.search;
  if (card.vendor_id) element.dataset.vendorId = card.vendor_id;
  for (const time of element.querySelectorAll("time[datetime]")) {
    time.textContent = new Date(time.getAttribute("datetime")).toLocaleTimeString();
    time.title = time.getAttribute("datetime");
  }
  return element;
}

function markRecalled(vendorId) {
  for (const element of document.querySelectorAll(".entry.message")) {
    if (element.dataset.vendorId === vendorId) element.classList.add("recalled");
  }
}

function addCard(card, fresh) {
  if (document.getElementById(`entry-${card.seq}`)) return;
  const element = cardElement(card);
  if (fresh) element.classList.add("fresh");
  const list = $("entries");
  // Newest first: insert before the first card with a smaller sequence number.
  const later = [...list.children].find((child) => Number(child.dataset.seq) < card.seq);
  list.insertBefore(element, later || null);
  if (card.recalls) markRecalled(card.recalls);
  applyFilters();
}

async function loadEntries() {
  const data = await call("GET", "/inbox/entries");
  // Cards that arrived by event while this list was being fetched are newer than it: keep them.
  const newer = [...$("entries").children].filter((child) => Number(child.dataset.seq) >= data.next_seq);
  $("entries").replaceChildren(...newer, ...data.entries.map(cardElement));
  applyFilters();
}

function applyFilters() {
  const channel = $("filter-channel").value;
  const account = $("filter-account").value;
  const words = $("filter-text").value.toLowerCase().split(/\s+/).filter(Boolean);
  const calls = $("show-calls").checked;
  let shown = 0;
  let messages = 0;
  for (const element of $("entries").children) {
    const visible =
      (!channel || element.dataset.channel === channel) &&
      (!account || element.dataset.account === account) &&
      words.every((word) => element.dataset.search.includes(word));
    element.classList.toggle("hidden", !visible);
    element.classList.toggle("shown", calls);
    if (element.dataset.kind === "message") messages += 1;
    if (visible && (calls || element.dataset.kind === "message")) shown += 1;
  }
  $("empty").classList.toggle("hidden", shown > 0);
  $("entry-count").textContent = shown === messages ? `${messages} messages` : `${shown} shown of ${messages} messages`;
  for (const element of document.querySelectorAll(".account-card")) {
    element.classList.toggle("selected", element.dataset.name === account);
  }
}

// -- accounts -------------------------------------------------------------------------------

function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function fact(list, label, value, className) {
  list.append(el("dt", "", label));
  const dd = el("dd", className || "");
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value;
  list.append(dd);
  return dd;
}

function rateView(rate) {
  const wrap = el("span");
  const meter = el("span", "meter" + (rate.used >= rate.limit ? " full" : ""));
  const fill = el("span");
  fill.style.width = `${Math.min(100, (100 * rate.used) / rate.limit)}%`;
  meter.append(fill);
  wrap.append(meter, `${rate.used} / ${rate.limit} ${rate.unit}`);
  return wrap;
}

function faultText(fault) {
  if (fault.drop) return `drop ${fault.drop}`;
  const parts = [];
  if (fault.http_status) parts.push(`HTTP ${fault.http_status}`);
  if (fault.errcode !== undefined) parts.push(`errcode ${fault.errcode}`);
  if (fault.delay) parts.push(`${fault.delay} s late`);
  return parts.join(", ");
}

function accountElement(account) {
  const [label, vendor] = CHANNELS[account.channel] || [account.channel, "other"];
  const card = el("div", "account-card");
  card.dataset.name = account.name;
  card.dataset.channel = account.channel;
  const head = el("div", "account-head");
  const name = el("span", "account-name", account.name);
  name.title = "Show only this account's messages";
  name.addEventListener("click", () => {
    const select = $("filter-account");
    select.value = select.value === account.name ? "" : account.name;
    applyFilters();
  });
  head.append(el("span", `badge ${vendor}`, label), name, el("span", "account-count", String(account.delivered)));
  card.append(head);

  const facts = el("dl", "facts");
  if (account.token) {
    const token = account.token;
    const text = token.state === "none" ? "none issued" : token.state === "valid" ? `valid, ${token.expires_in} s left` : token.state;
    fact(facts, "token", text, `token-state ${token.state}`);
    fact(facts, "gettoken calls", String(account.gettoken_calls), "gettoken-calls");
  }
  fact(facts, "rate", rateView(account.rate));
  if (account.throttled_for) fact(facts, "throttled", `${Math.ceil(account.throttled_for)} s more`, "fault-list");
  if (account.disabled) fact(facts, "robot", "disabled", "fault-list");
  const faults = account.faults.length ? account.faults.map(faultText).join("; ") : "none";
  fact(facts, "faults", faults, account.faults.length ? "fault-list faults" : "faults");
  card.append(facts);

  const actions = el("div", "account-actions");
  if (account.token) {
    const expire = el("button", "button small expire-tokens", "Expire tokens");
    expire.type = "button";
    expire.addEventListener("click", () => act(() => call("POST", `/apps/${encodeURIComponent(account.name)}/expire-tokens`)));
    actions.append(expire);
  }
  const select = el("select", "fault-kind");
  select.setAttribute("aria-label", `Fault for ${account.name}`);
  for (const [key, preset] of Object.entries(FAULTS)) {
    const option = el("option", "", preset.label);
    option.value = key;
    select.append(option);
  }
  const inject = el("button", "button small inject-fault", "Inject once");
  inject.type = "button";
  inject.addEventListener("click", () => {
    const preset = FAULTS[select.value];
    const fault = preset.fault || { errcode: preset.byChannel[account.channel], errmsg: "rate limited (injected)" };
    act(() => call("POST", "/faults", { channel: account.channel, robot: account.name, ...fault }));
  });
  actions.append(select, inject);
  card.append(actions);
  return card;
}

async function loadAccounts() {
  const data = await call("GET", "/inbox/accounts");
  state.accounts = data.accounts;
  $("accounts").replaceChildren(...data.accounts.map(accountElement));
  const select = $("filter-account");
  const chosen = select.value;
  const options = [el("option", "", "All accounts")];
  options[0].value = "";
  for (const account of data.accounts) {
    const option = el("option", "", account.name);
    option.value = account.name;
    options.push(option);
  }
  select.replaceChildren(...options);
  select.value = data.accounts.some((account) => account.name === chosen) ? chosen : "";
  applyFilters();
}

let accountsTimer = null;
function refreshAccountsSoon() {
  if (accountsTimer !== null) return;
  accountsTimer = setTimeout(() => {
    accountsTimer = null;
    loadAccounts().catch(console.error);
  }, 100);
}

async function act(action) {
  try {
    await action();
  } catch (error) {
    console.error(error);
    alert(error.message);
  }
  await loadAccounts();
}

// -- live updates ---------------------------------------------------------------------------

function follow() {
  const source = new EventSource(`${API}/events`);
  // Every (re)connection reloads the list, so nothing missed while disconnected stays missing.
  source.addEventListener("open", () => {
    $("live").textContent = "live";
    $("live").classList.add("on");
    Promise.all([loadEntries(), loadAccounts()]).catch(console.error);
  });
  source.addEventListener("error", () => {
    $("live").textContent = "reconnecting";
    $("live").classList.remove("on");
  });
  source.addEventListener("entry", (event) => {
    addCard(JSON.parse(event.data), true);
    refreshAccountsSoon();
  });
  source.addEventListener("cleared", () => {
    $("entries").replaceChildren();
    applyFilters();
    refreshAccountsSoon();
  });
}

// -- wiring ---------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["filter-channel", "filter-account", "filter-text", "show-calls"]) {
    $(id).addEventListener("input", applyFilters);
  }
  $("theme-toggle").addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    localStorage.setItem("inbox-theme", next);
    applyTheme(next);
  });
  $("clear-inbox").addEventListener("click", () => act(() => call("DELETE", "/messages")));
  $("clear-faults").addEventListener("click", () => act(() => call("DELETE", "/faults")));
  // A picture that cannot load (an outside URL, media no longer kept) shows as a placeholder.
  document.addEventListener("error", (event) => {
    if (event.target instanceof HTMLImageElement) event.target.classList.add("broken");
  }, true);
  follow();
  // Token lifetimes and rate windows move with time, not only with traffic.
  setInterval(() => loadAccounts().catch(console.error), 3000);
});
