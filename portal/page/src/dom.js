// Small DOM helpers: build elements without innerHTML (no HTML injection from data).

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") throw new Error("el(): set styles through node.style (the CSP forbids inline style attributes)");
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function setText(id, text) {
  const node = $(id);
  if (node && node.textContent !== text) node.textContent = text;
}

/** Fill a <table> with a header row and body rows (arrays of cell texts; first cell is a row header). */
export function fillTable(table, headers, rows) {
  const thead = table.querySelector("thead");
  const tbody = table.querySelector("tbody");
  thead.replaceChildren(el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h))));
  tbody.replaceChildren(
    ...rows.map((cells) => el("tr", {}, cells.map((c, i) => (i === 0 ? el("th", { scope: "row" }, c) : el("td", {}, c))))),
  );
}

/** Run ``fn`` when the browser is idle (a chart redraw never blocks input). */
export function whenIdle(fn) {
  if ("requestIdleCallback" in window) window.requestIdleCallback(fn, { timeout: 500 });
  else window.setTimeout(fn, 0);
}
