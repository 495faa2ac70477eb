// French formatting, Europe/Paris time, readable tariff period names.

export const TZ = "Europe/Paris";

const kwhFormat = new Intl.NumberFormat("fr-FR", { minimumFractionDigits: 3, maximumFractionDigits: 3 });
const kwFormat = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 0 });
const eurFormat = new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR" });
const pctFormat = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 1 });

/** Wh (integer) -> "12,345 kWh" (exact to the Wh: three decimals). */
export function kwh(wh) {
  if (wh === null || wh === undefined) return "–";
  return `${kwhFormat.format(wh / 1000)} kWh`;
}

/** A number of kWh, no unit (tables). */
export function kwhNumber(wh) {
  if (wh === null || wh === undefined) return "–";
  return kwhFormat.format(wh / 1000);
}

export function va(value) {
  if (value === null || value === undefined) return "–";
  return `${kwFormat.format(value)} VA`;
}

/** A decimal string of euros ("12.34") -> "12,34 €". */
export function eur(amount) {
  if (amount === null || amount === undefined || amount === "") return "–";
  return eurFormat.format(Number(amount));
}

export function percent(value) {
  if (value === null || value === undefined) return "–";
  return `${pctFormat.format(value)} %`;
}

const dateTimeFormat = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, dateStyle: "medium", timeStyle: "short" });
const hourFormat = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, hour: "2-digit", minute: "2-digit" });
const hourOffsetFormat = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
const dayFormat = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, weekday: "short", day: "numeric", month: "short" });
const longDayFormat = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, weekday: "long", day: "numeric", month: "long", year: "numeric" });
const monthFormat = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, month: "long", year: "numeric" });
const shortMonthFormat = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, month: "short", year: "2-digit" });

export const formatDateTime = (iso) => (iso ? dateTimeFormat.format(new Date(iso)) : "–");
export const formatLongDay = (date) => longDayFormat.format(date);
export const formatMonth = (date) => monthFormat.format(date);

/** The label of a bucket's start, by granularity (an hour repeated on the 25-hour day shows its offset). */
export function bucketLabel(iso, granularity, repeated = false) {
  const d = new Date(iso);
  if (granularity === "hour") return (repeated ? hourOffsetFormat : hourFormat).format(d);
  if (granularity === "day") return dayFormat.format(d);
  return shortMonthFormat.format(d);
}

/** "il y a 3 s", "il y a 2 min", "il y a 1 h". */
export function ago(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `il y a ${s} s`;
  if (s < 3600) return `il y a ${Math.floor(s / 60)} min`;
  if (s < 86400) return `il y a ${Math.floor(s / 3600)} h`;
  return `il y a ${Math.floor(s / 86400)} j`;
}

// Readable period names. Standard mode: the bucket's "periods" map (label and kind from the
// meter and the offer) wins; historic registers have fixed meanings (Enedis NOI-CPT_02E).
const HISTORIC = {
  BASE: ["Base", "BASE"],
  HCHC: ["Heures creuses", "HC"],
  HCHP: ["Heures pleines", "HP"],
  EJPHN: ["Heures normales", "HP"],
  EJPHPM: ["Heures de pointe mobile", "HP"],
  BBRHCJB: ["Heures creuses jours bleus", "HC", "blue"],
  BBRHPJB: ["Heures pleines jours bleus", "HP", "blue"],
  BBRHCJW: ["Heures creuses jours blancs", "HC", "white"],
  BBRHPJW: ["Heures pleines jours blancs", "HP", "white"],
  BBRHCJR: ["Heures creuses jours rouges", "HC", "red"],
  BBRHPJR: ["Heures pleines jours rouges", "HP", "red"],
};

function titleCase(text) {
  const t = text.replace(/\s+/g, " ").trim().toLowerCase();
  return t.charAt(0).toUpperCase() + t.slice(1);
}

/** {name, kind, colour} of a register key, with the bucket's `periods` metadata when present. */
export function periodInfo(key, periods) {
  const meta = periods && periods[key];
  if (meta && meta.label) {
    return { name: titleCase(meta.label), kind: meta.kind || guessKind(meta.label), colour: meta.tempo_colour || null };
  }
  if (HISTORIC[key]) {
    const [name, kind, colour] = HISTORIC[key];
    return { name, kind, colour: colour || null };
  }
  const m = /^EASF(\d\d)$/.exec(key);
  if (m) return { name: `Index ${Number(m[1])}`, kind: "BASE", colour: null };
  return { name: titleCase(key), kind: guessKind(key), colour: null };
}

function guessKind(label) {
  const t = label.toUpperCase();
  if (t.includes("CREUSE") || t.startsWith("HC")) return "HC";
  if (t.includes("PLEINE") || t.includes("POINTE") || t.startsWith("HP")) return "HP";
  return "BASE";
}

export const TEMPO_NAMES = { blue: "Bleu", white: "Blanc", red: "Rouge" };

/** The current tariff period as a person reads it ("HEURE  CREUSE" -> "Heure creuse"). */
export function periodLabel(raw) {
  return raw ? titleCase(raw) : "–";
}

/** A sentence per alert kind. */
export function alertSentence(alert) {
  const d = alert.details || {};
  switch (alert.kind) {
    case "overload": return "Votre puissance a dépassé la puissance souscrite.";
    case "meter_silent": return "Votre compteur n'envoie plus de mesures.";
    case "historic_mode": return "Votre compteur est en mode historique : l'injection n'est pas mesurée (demandez le mode standard).";
    case "index_backwards": return "Un index de votre compteur a diminué (compteur remplacé ou remis à zéro ?).";
    case "peak_period": return "Vous êtes en période de pointe (heures pleines) : l'électricité coûte plus cher.";
    case "red_period": return "Jour rouge Tempo : l'électricité est au plus cher.";
    case "red_tomorrow": return "Demain est un jour rouge Tempo.";
    case "daily_budget": return `Votre consommation du jour a dépassé votre budget${d.budget_wh ? ` de ${kwh(d.budget_wh)}` : ""}.`;
    case "battery_empty": return "Votre batterie virtuelle devrait être vide avant la fin du mois.";
    case "battery_full": return "Votre batterie virtuelle est pleine : le surplus n'est plus stocké.";
    case "bill_over_installment": return "Votre facture du mois devrait dépasser votre mensualité.";
    case "gateway_untrusted": return "Des mesures non authentifiées ont été refusées.";
    default: return `Alerte « ${alert.kind} ».`;
  }
}

export const ALERT_KINDS = [
  ["overload", "Dépassement de puissance"],
  ["meter_silent", "Compteur silencieux"],
  ["peak_period", "Début des heures pleines"],
  ["red_period", "Jour rouge Tempo"],
  ["red_tomorrow", "Jour rouge demain"],
  ["daily_budget", "Budget quotidien dépassé"],
  ["battery_empty", "Batterie virtuelle bientôt vide"],
  ["battery_full", "Batterie virtuelle pleine"],
  ["bill_over_installment", "Facture au-dessus de la mensualité"],
  ["index_backwards", "Index en baisse"],
  ["historic_mode", "Compteur en mode historique"],
];

export const OFFER_NAMES = {
  none: "Offre simple",
  virtual_battery: "Stockage virtuel (batterie virtuelle)",
  surplus_resale: "Revente du surplus (cagnotte)",
};
