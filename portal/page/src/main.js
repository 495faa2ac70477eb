// The customer dashboard: "Ma Conso en Direct", consumption charts and tables, index, virtual
// battery, surplus, alerts and contract, for the PDLs of the session (portal/, docs/portal.md).
import "./styles.css";
import { AuthError, EventStream, getJSON, pdlPath, putJSON } from "./api.js";
import { RollingLine, StackedBars, COLOURS, periodColour } from "./charts.js";
import { $, el, fillTable, setText, whenIdle } from "./dom.js";
import * as f from "./format.js";

const SILENT_SECONDS = 300; // no reading for this long: "compteur silencieux"

const state = {
  me: null,
  pdl: null,
  offers: [],
  stream: null,
  clockSkewMs: 0, // portal clock - browser clock (ages use the portal's clock)
  live: null,
  conso: null,
  battery: null,
  surplus: null,
  alerts: null,
  granularity: "hour",
  date: null, // "YYYY-MM-DD", Europe/Paris
  indexGranularity: "day",
  charts: {},
  activeTab: "live",
};

const now = () => Date.now() + state.clockSkewMs;

// ------------------------------------------------------------------ calendar (Europe/Paris)

const isoDay = new Intl.DateTimeFormat("en-CA", { timeZone: f.TZ, year: "numeric", month: "2-digit", day: "2-digit" });
const parisDate = (instant) => isoDay.format(instant);

function addDays(day, n) {
  const [y, m, d] = day.split("-").map(Number);
  const t = new Date(Date.UTC(y, m - 1, d + n));
  return t.toISOString().slice(0, 10);
}

function addMonths(day, n) {
  const [y, m] = day.split("-").map(Number);
  const t = new Date(Date.UTC(y, m - 1 + n, 1));
  return t.toISOString().slice(0, 10);
}

const firstOfMonth = (day) => `${day.slice(0, 7)}-01`;
const firstOfYear = (day) => `${day.slice(0, 4)}-01-01`;
const dateOf = (day) => new Date(`${day}T12:00:00Z`);

// ------------------------------------------------------------------ start-up

async function boot() {
  try {
    state.me = await getJSON("/api/me");
  } catch (err) {
    if (err instanceof AuthError) return showLogin();
    throw err;
  }
  if (!state.me || !state.me.pdls || !state.me.pdls.length) return showLogin();
  if (state.me.now) state.clockSkewMs = Date.parse(state.me.now) - Date.now();
  $("app").hidden = false;
  setupTabs();
  setupConso();
  setupIndex();
  setupAlertSettings();
  state.charts.live = new RollingLine($("live-chart"));
  state.charts.conso = new StackedBars($("conso-chart"));
  state.charts.battery = new StackedBars($("battery-chart"));
  const pdls = state.me.pdls;
  if (pdls.length > 1) {
    const select = $("pdl-select");
    select.replaceChildren(...pdls.map((p) => el("option", { value: p.pdl },
      `${p.pdl} — ${(p.offers || []).map((o) => f.OFFER_NAMES[o] || o).join(", ") || f.OFFER_NAMES.none}`)));
    select.addEventListener("change", () => selectPdl(select.value));
    $("pdl-choice").hidden = false;
  } else {
    $("pdl-one").hidden = false;
    setText("pdl-one", `Point de livraison ${pdls[0].pdl}`);
  }
  window.setInterval(tick, 1000);
  await selectPdl(pdls[0].pdl);
}

function showLogin() {
  if (state.stream) state.stream.stop();
  $("app").hidden = true;
  $("login-message").hidden = false;
  setText("connection", "");
}

async function selectPdl(pdl) {
  if (state.stream) state.stream.stop();
  const entry = state.me.pdls.find((p) => p.pdl === pdl) || {};
  const offers = entry.offers || [];
  Object.assign(state, { pdl, offers, live: null, conso: null, battery: null, surplus: null, alerts: null, date: null });
  $("tab-battery").hidden = !offers.includes("virtual_battery");
  $("tab-surplus").hidden = !offers.includes("surplus_resale");
  if ($(`tab-${state.activeTab}`).hidden) activateTab("live");
  state.stream = new EventStream(pdlPath(pdl, "events"), {
    live: onLive, conso: onConso, battery: onBattery, surplus: onSurplus, alerts: onAlerts, stale: onStale,
  }, onConnection);
  state.stream.start();
  await Promise.all([loadConso(), loadBattery(), loadAlerts(), loadAlertSettings(), loadIndex(), loadBill()].map((p) => p.catch(report)));
}

function report(err) {
  if (err instanceof AuthError) showLogin();
  else console.warn(err);
}

function onConnection(kind, seconds) {
  if (kind === "open") setText("connection", "Connecté, mise à jour en direct.");
  else if (kind === "retry") {
    setText("connection", `Connexion perdue, nouvelle tentative dans ${seconds} s…`);
    getJSON("/api/me").catch((err) => { if (err instanceof AuthError) showLogin(); });
  }
}

function onStale() {
  setText("connection", "Données momentanément indisponibles : affichage des dernières valeurs connues.");
}

// ------------------------------------------------------------------ tabs (keyboard: arrows, Home, End)

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => activateTab(tab.id.slice(4)));
    tab.addEventListener("keydown", (event) => {
      const visible = tabs.filter((t) => !t.hidden);
      const i = visible.indexOf(tab);
      let next = null;
      if (event.key === "ArrowRight") next = visible[(i + 1) % visible.length];
      else if (event.key === "ArrowLeft") next = visible[(i - 1 + visible.length) % visible.length];
      else if (event.key === "Home") next = visible[0];
      else if (event.key === "End") next = visible[visible.length - 1];
      if (next) {
        event.preventDefault();
        activateTab(next.id.slice(4));
        next.focus();
      }
    });
  }
}

function activateTab(name) {
  state.activeTab = name;
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !on;
  }
  whenIdle(() => window.dispatchEvent(new Event("resize")));
}

// ------------------------------------------------------------------ En direct

function onLive(payload) {
  if (!payload || payload.pdl !== state.pdl) return;
  state.live = payload;
  setText("live-drawn", f.va(payload.power_va));
  setText("live-injected", payload.mode === "historic" ? "non mesurée" : f.va(payload.export_power_va));
  setText("live-net", f.va(payload.net_power_va));
  setText("live-period", f.periodLabel(payload.tariff_period));
  const today = payload.tempo_today, tomorrow = payload.tempo_tomorrow;
  $("live-tempo-card").hidden = !today && !tomorrow;
  setText("live-tempo-today", today ? `Aujourd'hui : ${f.TEMPO_NAMES[today] || today}` : "");
  setText("live-tempo-tomorrow", tomorrow ? `Demain : ${f.TEMPO_NAMES[tomorrow] || tomorrow}` : "");
  $("live-tempo-card").dataset.colour = today || "";
  const t = Date.parse(payload.time) / 1000;
  state.charts.live.add(t, payload.power_va, payload.export_power_va);
  renderCurrentIndex();
  const contractKey = `${payload.subscribed_kva}|${payload.tariff_period}`;
  if (state.battery && contractKey !== state.contractKey) {
    state.contractKey = contractKey;
    renderContract(state.battery);
  }
  tick();
}

function tick() {
  const live = state.live;
  const age = $("live-age");
  if (!live) return;
  const seenAt = Date.parse(live.received_at || live.time);
  const seconds = (now() - seenAt) / 1000;
  const silentAlert = state.alerts && state.alerts.open && state.alerts.open.some((a) => a.kind === "meter_silent");
  const silent = silentAlert || seconds > SILENT_SECONDS;
  age.classList.toggle("silent", silent);
  const text = silent
    ? `Compteur silencieux : dernière mesure ${f.ago(seconds)} (${f.formatDateTime(live.time)}).`
    : `Dernière mesure ${f.ago(seconds)}.`;
  if (age.textContent !== text) age.textContent = text;
}

// ------------------------------------------------------------------ Ma conso

function setupConso() {
  for (const button of document.querySelectorAll("[data-granularity]")) {
    button.addEventListener("click", () => {
      state.granularity = button.dataset.granularity;
      for (const b of document.querySelectorAll("[data-granularity]")) b.setAttribute("aria-pressed", String(b === button));
      loadConso().catch(report);
    });
  }
  const step = (n) => {
    const g = state.granularity;
    state.date = g === "hour" ? addDays(state.date, n) : g === "day" ? addMonths(state.date, n) : addMonths(firstOfYear(state.date), 12 * n);
    loadConso().catch(report);
  };
  $("conso-prev").addEventListener("click", () => step(-1));
  $("conso-next").addEventListener("click", () => step(1));
  $("conso-date").addEventListener("change", (event) => {
    if (event.target.value) {
      state.date = event.target.value;
      loadConso().catch(report);
    }
  });
}

/** [from, to) of the selected period and of the one it is compared with. */
function consoRange() {
  const d = state.date;
  if (state.granularity === "hour") return { from: d, to: addDays(d, 1), cmpFrom: addDays(d, -1), cmpTo: d };
  if (state.granularity === "day") {
    const m = firstOfMonth(d);
    return { from: m, to: addMonths(m, 1), cmpFrom: addMonths(m, -1), cmpTo: m };
  }
  const y = firstOfYear(d);
  return { from: y, to: addMonths(y, 12), cmpFrom: addMonths(y, -12), cmpTo: y };
}

function consoTitle(from) {
  if (state.granularity === "hour") return f.formatLongDay(dateOf(from));
  if (state.granularity === "day") return f.formatMonth(dateOf(from));
  return `Année ${from.slice(0, 4)}`;
}

function defaultDate() {
  const latest = (state.conso && state.conso.time) || (state.live && state.live.time);
  return latest ? parisDate(new Date(latest)) : parisDate(new Date(now()));
}

async function consumption(from, to) {
  const q = new URLSearchParams({ granularity: state.granularity, from, to });
  const doc = await getJSON(`${pdlPath(state.pdl, "consumption")}?${q}`);
  return doc ? doc.buckets : [];
}

let consoRequest = 0;

async function loadConso() {
  if (!state.pdl) return;
  if (!state.date) state.date = defaultDate();
  const request = ++consoRequest;
  const { from, to, cmpFrom, cmpTo } = consoRange();
  $("conso-date").value = state.date;
  const [buckets, previous] = await Promise.all([consumption(from, to), consumption(cmpFrom, cmpTo)]);
  if (request !== consoRequest) return; // a newer navigation won
  setText("conso-title", consoTitle(from));
  renderConso(buckets);
  setText("conso-compare-title", `Pour comparer : ${consoTitle(cmpFrom).toLowerCase()}`);
  renderConsoTable($("conso-compare-table"), previous);
}

function periodsOf(buckets) {
  const order = [];
  const info = new Map();
  for (const b of buckets) {
    for (const key of Object.keys(b.by_period || {})) {
      if (!info.has(key)) {
        info.set(key, f.periodInfo(key, b.periods));
        order.push(key);
      }
    }
  }
  const rank = { HC: 0, BASE: 1, HP: 2 };
  order.sort((a, b) => (rank[info.get(a).kind] ?? 1) - (rank[info.get(b).kind] ?? 1) || a.localeCompare(b));
  return { order, info };
}

function labelsOf(buckets) {
  const seen = new Map();
  for (const b of buckets) {
    const l = f.bucketLabel(b.start, state.granularity);
    seen.set(l, (seen.get(l) || 0) + 1);
  }
  return buckets.map((b) => {
    const plain = f.bucketLabel(b.start, state.granularity);
    return seen.get(plain) > 1 ? f.bucketLabel(b.start, state.granularity, true) : plain;
  });
}

function renderConso(buckets) {
  const { order, info } = periodsOf(buckets);
  const labels = labelsOf(buckets);
  const stacks = order.map((key) => ({
    name: info.get(key).name,
    colour: periodColour(info.get(key)),
    values: buckets.map((b) => ((b.by_period || {})[key] || 0) / 1000),
  }));
  const hasExport = buckets.some((b) => b.export_wh);
  const below = hasExport ? { name: "Injection", colour: COLOURS.injection, values: buckets.map((b) => b.export_wh / 1000) } : null;
  whenIdle(() => state.charts.conso.draw(labels, stacks, below));
  $("conso-chart").dataset.expected = String(buckets.length);
  $("conso-legend").replaceChildren(
    ...[...stacks, ...(below ? [below] : [])].map((s) => {
      const swatch = el("i");
      swatch.style.background = s.colour; // CSSOM, allowed by the portal's CSP (no inline style attribute)
      return el("span", { class: "key" }, swatch, s.name);
    }),
  );
  const total = buckets.reduce((a, b) => a + b.import_wh, 0);
  const injected = buckets.reduce((a, b) => a + b.export_wh, 0);
  const costs = buckets.map((b) => b.cost).filter(Boolean);
  const cost = costs.length ? costs.reduce((a, c) => a + Number(c.total_eur), 0) : null;
  setText("conso-summary", `Total : ${f.kwh(total)} consommés` + (injected ? `, ${f.kwh(injected)} injectés` : "") +
    (cost !== null ? `, coût estimé ${f.eur(cost.toFixed(2))}` : ""));
  renderConsoTable($("conso-table"), buckets);
}

function renderConsoTable(table, buckets) {
  const { order, info } = periodsOf(buckets);
  const labels = labelsOf(buckets);
  const withCost = buckets.some((b) => b.cost);
  const headers = ["Période", ...order.map((k) => `${info.get(k).name} (kWh)`), "Total (kWh)", "Injection (kWh)"];
  if (withCost) headers.push("Coût TTC");
  const rows = buckets.map((b, i) => {
    const cells = [labels[i], ...order.map((k) => f.kwhNumber((b.by_period || {})[k] || 0)), f.kwhNumber(b.import_wh), f.kwhNumber(b.export_wh)];
    if (withCost) cells.push(b.cost ? f.eur(b.cost.total_eur) : "–");
    return cells;
  });
  fillTable(table, headers, rows);
  table.dataset.rows = String(rows.length);
}

function onConso(payload) {
  if (!payload || payload.pdl !== state.pdl) return;
  const first = !state.conso;
  state.conso = payload;
  if (first && !state.date) return void loadConso().catch(report);
  // Patch the open bucket when it is on screen; a new bucket (next hour/day) reloads the view.
  const open = payload[state.granularity];
  const { from, to } = consoRange();
  if (!open || open.start.slice(0, 10) < from || open.start.slice(0, 10) >= to) return;
  scheduleConsoReload();
}

let consoTimer = null;
function scheduleConsoReload() {
  if (consoTimer) return;
  consoTimer = window.setTimeout(() => {
    consoTimer = null;
    loadConso().catch(report);
  }, 2000);
}

// ------------------------------------------------------------------ Mon index

function setupIndex() {
  for (const button of document.querySelectorAll("[data-index-granularity]")) {
    button.addEventListener("click", () => {
      state.indexGranularity = button.dataset.indexGranularity;
      for (const b of document.querySelectorAll("[data-index-granularity]")) b.setAttribute("aria-pressed", String(b === button));
      loadIndex().catch(report);
    });
  }
}

function renderCurrentIndex() {
  const live = state.live;
  if (!live) return;
  const cards = [];
  const registers = live.import_wh_by_period || {};
  for (const [key, wh] of Object.entries(registers)) {
    cards.push(el("div", { class: "card" }, el("span", { class: "label" }, f.periodInfo(key, live.periods).name), el("span", { class: "value" }, f.kwh(wh))));
  }
  cards.push(el("div", { class: "card" }, el("span", { class: "label" }, "Total soutiré"), el("span", { class: "value", id: "index-total" }, f.kwh(live.import_wh))));
  if (live.export_wh !== null && live.export_wh !== undefined) {
    cards.push(el("div", { class: "card" }, el("span", { class: "label" }, "Injection"), el("span", { class: "value" }, f.kwh(live.export_wh))));
  }
  $("index-current").replaceChildren(...cards);
}

async function loadIndex() {
  if (!state.pdl) return;
  const g = state.indexGranularity;
  const day = defaultDate();
  const from = g === "day" ? addDays(day, -30) : addMonths(firstOfMonth(day), -12);
  const q = new URLSearchParams({ granularity: g, from, to: addDays(day, 1) });
  $("index-csv").href = `${pdlPath(state.pdl, "index")}?${q}&format=csv`;
  let doc = null;
  try {
    doc = await getJSON(`${pdlPath(state.pdl, "index")}?${q}`);
  } catch (err) {
    if (err instanceof AuthError) throw err;
  }
  const buckets = (doc && doc.statements) || [];
  const registers = [];
  const names = {};
  for (const b of buckets) {
    for (const [key, idx] of Object.entries(b.indexes || {})) {
      if (!registers.includes(key)) registers.push(key);
      names[key] = key === "EAIT" ? "Injection" : f.periodInfo(key, { [key]: { label: idx.label } }).name;
    }
  }
  registers.sort((a, b) => (a === "EAIT") - (b === "EAIT") || a.localeCompare(b));
  const headers = [g === "day" ? "Jour" : "Mois"];
  for (const key of registers) headers.push(`${names[key]} début (kWh)`, `${names[key]} fin (kWh)`);
  const rows = buckets.slice().reverse().map((b) => {
    const cells = [f.bucketLabel(b.start, g)];
    for (const key of registers) {
      const r = (b.indexes || {})[key];
      cells.push(r ? f.kwhNumber(r.start_wh) : "–", r ? f.kwhNumber(r.end_wh) : "–");
    }
    return cells;
  });
  fillTable($("index-table"), headers, rows);
}

// ------------------------------------------------------------------ Ma batterie virtuelle

async function loadBattery() {
  const doc = await getJSON(pdlPath(state.pdl, "battery"));
  if (!doc) return;
  state.battery = doc;
  renderBattery(doc);
  if (doc.surplus) renderSurplus(doc.surplus, doc.surplus.months || []);
  renderContract(doc);
}

function onBattery(payload) {
  if (!payload || payload.pdl !== state.pdl) return;
  state.battery = { ...(state.battery || {}), ...payload };
  renderBattery(state.battery);
}

function renderBattery(doc) {
  setText("battery-level", f.kwh(doc.level_wh));
  setText("battery-percent", doc.capacity_wh ? `${f.percent(doc.percent)} de ${f.kwh(doc.capacity_wh)}` : "capacité illimitée");
  $("battery-estimate").hidden = !doc.estimate;
  const used = (row) => (row ? row.used_wh : null);
  setText("battery-today-credited", f.kwh(doc.today && doc.today.credited_wh));
  setText("battery-today-used", f.kwh(used(doc.today)));
  setText("battery-month-credited", f.kwh(doc.month && doc.month.credited_wh));
  setText("battery-month-used", f.kwh(used(doc.month)));
  const months = doc.months || [];
  if (!months.length) return;
  const labels = months.map((m) => f.bucketLabel(`${m.month}-15T12:00:00Z`, "month"));
  whenIdle(() => state.charts.battery.draw(labels, [
    { name: "Stocké", colour: COLOURS.BASE, values: months.map((m) => m.credited_wh / 1000) },
  ], { name: "Utilisé", colour: COLOURS.HP, values: months.map((m) => m.used_wh / 1000) }));
  $("battery-chart").dataset.expected = String(months.length);
  fillTable($("battery-table"), ["Mois", "Ouverture", "Stocké", "Utilisé HP", "Utilisé HC", "Perdu (trop-plein)", "Clôture", "État"],
    months.map((m) => [f.bucketLabel(`${m.month}-15T12:00:00Z`, "month"), f.kwhNumber(m.opening_wh), f.kwhNumber(m.credited_wh),
      f.kwhNumber(m.used_hp_wh), f.kwhNumber(m.used_hc_wh), f.kwhNumber(m.overflow_wh), f.kwhNumber(m.closing_wh),
      m.final ? "clôturé" : "en cours"]));
}

// ------------------------------------------------------------------ Mon surplus

function onSurplus(payload) {
  if (!payload || payload.pdl !== state.pdl) return;
  state.surplus = payload;
  const months = (state.battery && state.battery.surplus && state.battery.surplus.months) || [];
  renderSurplus(payload, months);
}

function renderSurplus(payload, months) {
  const month = payload.month;
  setText("surplus-month-kwh", f.kwh(month && month.surplus_wh));
  setText("surplus-month-eur", f.eur(month && month.cagnotte_eur));
  setText("surplus-month-state", month ? (month.final ? " (définitif)" : " (provisoire)") : "");
  setText("surplus-total-eur", f.eur(payload.total_eur));
  const rows = months.slice().reverse().map((m) => [f.bucketLabel(`${m.month}-15T12:00:00Z`, "month"), f.kwhNumber(m.surplus_wh),
    f.eur(m.cagnotte_eur), m.final ? "définitif" : "provisoire"]);
  fillTable($("surplus-table"), ["Mois", "Surplus (kWh)", "Cagnotte", "État"], rows);
}

// ------------------------------------------------------------------ Mes alertes

async function loadAlerts() {
  const doc = await getJSON(pdlPath(state.pdl, "alerts"));
  if (doc) renderAlerts(doc);
}

function onAlerts(payload) {
  if (!payload || payload.pdl !== state.pdl) return;
  renderAlerts({ ...(state.alerts || {}), open: payload.open || [], recent: payload.recent || (state.alerts && state.alerts.recent) || [] });
  tick();
}

function renderAlerts(doc) {
  state.alerts = doc;
  const open = doc.open || [];
  $("alerts-none").hidden = open.length > 0;
  $("alerts-open").replaceChildren(...open.map((a) => el("li", { class: `alert ${a.kind}`, "data-kind": a.kind },
    el("strong", {}, f.alertSentence(a)), " ", el("span", { class: "since" }, `depuis le ${f.formatDateTime(a.since)}`))));
  const recent = doc.recent || [];
  $("alerts-recent").replaceChildren(...recent.slice(0, 20).map((a) => el("li", { class: "alert past" },
    f.alertSentence(a), " ", el("span", { class: "since" }, `du ${f.formatDateTime(a.since)} au ${f.formatDateTime(a.until)}`))));
}

function setupAlertSettings() {
  const box = $("alert-kinds");
  for (const [kind, name] of f.ALERT_KINDS) {
    box.append(el("label", { class: "check" }, el("input", { type: "checkbox", name: kind, checked: true }), name));
  }
  $("alert-settings").addEventListener("submit", async (event) => {
    event.preventDefault();
    const enabled = {};
    for (const input of box.querySelectorAll("input[type=checkbox]")) enabled[input.name] = input.checked;
    const budget = $("alert-budget").value.trim();
    const share = $("alert-bill-share").value.trim();
    const body = {
      enabled,
      daily_budget_wh: budget === "" ? null : Math.round(Number(budget.replace(",", ".")) * 1000),
      bill_over_installment_share: share === "" ? null : Number(share) / 100,
    };
    setText("alert-settings-status", "Enregistrement…");
    try {
      await putJSON(pdlPath(state.pdl, "alert-settings"), body);
      setText("alert-settings-status", "Réglages enregistrés : ils s'appliquent à partir de maintenant.");
    } catch (err) {
      if (err instanceof AuthError) return showLogin();
      setText("alert-settings-status", `Réglages refusés : ${err.message}`);
    }
  });
}

async function loadAlertSettings() {
  const doc = await getJSON(pdlPath(state.pdl, "alert-settings")).catch((err) => {
    if (err instanceof AuthError) throw err;
    return null;
  });
  if (!doc) return;
  for (const input of $("alert-kinds").querySelectorAll("input[type=checkbox]")) {
    input.checked = !(doc.enabled && doc.enabled[input.name] === false);
  }
  $("alert-budget").value = doc.daily_budget_wh ? String(doc.daily_budget_wh / 1000) : "";
  $("alert-bill-share").value = doc.bill_over_installment_share ? String(Math.round(doc.bill_over_installment_share * 100)) : "";
}

// ------------------------------------------------------------------ Mon contrat

function renderContract(doc) {
  const contract = doc.contract;
  const versions = (contract && contract.versions) || [];
  const today = parisDate(new Date(now()));
  const current = versions.filter((v) => v.effective_from <= today).slice(-1)[0] || versions[0] || null;
  const live = state.live || {};
  const facts = [
    ["Point de livraison (PDL)", state.pdl],
    ["Offre", f.OFFER_NAMES[(current && current.offer) || doc.offer] || doc.offer || "–"],
    ["Option tarifaire", current && current.tariff ? current.tariff.option.toUpperCase() : "–"],
    ["Puissance souscrite", live.subscribed_kva ? `${live.subscribed_kva} kVA` : "–"],
    ["Période tarifaire actuelle (compteur)", f.periodLabel(live.tariff_period)],
    ["En vigueur depuis", current ? f.formatLongDay(dateOf(current.effective_from)) : "–"],
    ["Dernier relevé de facture", doc.anchor ? `${f.formatLongDay(dateOf(doc.anchor.date))} : ${f.kwh(doc.anchor.balance_wh)}` : "aucun"],
  ];
  if (current && current.tariff && current.tariff.installment_eur_per_month) {
    facts.push(["Mensualité (échéancier)", f.eur(current.tariff.installment_eur_per_month)]);
  }
  $("contract-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const prices = current && current.tariff ? current.tariff.prices_eur_per_kwh || {} : {};
  const rows = Object.entries(prices).map(([period, price]) => [f.periodInfo(period).name, `${Number(price).toLocaleString("fr-FR", { minimumFractionDigits: 4 })} €/kWh`]);
  if (current && current.tariff && current.tariff.standing_charge_eur_per_month) {
    rows.push(["Abonnement", `${f.eur(current.tariff.standing_charge_eur_per_month)} / mois`]);
  }
  fillTable($("contract-prices"), ["Période", "Prix TTC"], rows);
}

const BILL_LINES = {
  energy: "Consommation",
  standing: "Abonnement",
  battery_fees: "Frais de batterie virtuelle",
  battery_subscription: "Abonnement batterie virtuelle",
  cagnotte: "Cagnotte déduite",
};

async function loadBill() {
  const month = defaultDate().slice(0, 7);
  let doc = null;
  try {
    doc = await getJSON(`${pdlPath(state.pdl, "bill")}?month=${month}`);
  } catch (err) {
    if (err instanceof AuthError) throw err;
  }
  if (!doc) return;
  setText("bill-title", `Ma facture de ${f.formatMonth(dateOf(`${month}-15`))}${doc.status === "estimate" ? " (estimation)" : ""}`);
  const rows = (doc.lines || []).map((l) => [BILL_LINES[l.kind] || l.kind, f.eur(l.eur)]);
  rows.push(["Total", f.eur(doc.total_eur)]);
  if (doc.projected_total_eur) rows.push(["Projection à la fin du mois", f.eur(doc.projected_total_eur)]);
  fillTable($("bill-table"), ["Ligne", "Montant"], rows);
  const inst = doc.installments;
  const position = inst && { ahead: "d'avance", behind: "de retard", even: "" }[inst.position];
  setText("bill-installments", inst
    ? `Mensualités ${inst.year} : ${f.eur(inst.paid_eur)} payés pour ${f.eur(inst.billed_eur)} consommés${position ? `, soit ${f.eur(String(Math.abs(Number(inst.difference_eur))))} ${position}` : ""}.`
    : "");
}

boot().catch((err) => {
  console.warn(err);
  setText("connection", "Le service est momentanément indisponible.");
});
