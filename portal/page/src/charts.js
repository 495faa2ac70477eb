// uPlot charts: stacked bars by tariff period (injection below the axis) and a rolling power line.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

// Okabe-Ito palette: distinguishable with the common colour-vision deficiencies. HC and HP also
// differ in lightness, and the Tempo colours keep their meaning (blue, a light grey for white,
// vermillion for red) with a darker shade for peak hours.
export const COLOURS = {
  HC: "#56B4E9",
  HP: "#E69F00",
  BASE: "#009E73",
  blue: { HC: "#56B4E9", HP: "#0072B2" },
  white: { HC: "#DDDDDD", HP: "#999999" },
  red: { HC: "#F0A07A", HP: "#D55E00" },
  injection: "#CC79A7",
  line: "#0072B2",
};

export function periodColour(info) {
  if (info.colour && COLOURS[info.colour]) return COLOURS[info.colour][info.kind === "HC" ? "HC" : "HP"];
  return COLOURS[info.kind] || COLOURS.BASE;
}

function width(container) {
  return Math.max(280, Math.floor(container.clientWidth || 320));
}

const HOUR_MINUTE = new Intl.DateTimeFormat("fr-FR", { timeZone: "Europe/Paris", hour: "2-digit", minute: "2-digit" });
const HOUR_SECOND = new Intl.DateTimeFormat("fr-FR", { timeZone: "Europe/Paris", hour: "2-digit", minute: "2-digit", second: "2-digit" });

const bars = uPlot.paths.bars({ size: [0.7, 60], align: 0 });

/**
 * Stacked bars. ``labels``: x labels; ``stacks``: [{name, colour, values (kWh)}] bottom first;
 * ``below``: optional {name, colour, values} drawn under the axis (negative).
 */
export class StackedBars {
  constructor(container) {
    this.container = container;
    this.plot = null;
    this.observer = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize({ width: width(container), height: this.height() });
    });
    this.observer.observe(container);
  }

  height() {
    return window.innerWidth < 600 ? 220 : 300;
  }

  draw(labels, stacks, below) {
    const n = labels.length;
    const xs = Array.from({ length: n }, (_, i) => i);
    const cumulative = [];
    let running = new Array(n).fill(0);
    for (const s of stacks) {
      running = running.map((v, i) => v + (s.values[i] || 0));
      cumulative.push({ ...s, values: running.slice() });
    }
    // Tallest first: each smaller stack is drawn over it, so every period shows its own part.
    const drawn = cumulative.slice().reverse();
    const series = [{}];
    const data = [xs];
    for (const s of drawn) {
      series.push({ label: s.name, fill: s.colour, stroke: s.colour, width: 0, paths: bars, points: { show: false },
                    value: (u, v, si, i) => (i === null || i === undefined ? "" : `${stackValue(stacks, s.name, i)} kWh`) });
      data.push(s.values);
    }
    if (below) {
      series.push({ label: below.name, fill: below.colour, stroke: below.colour, width: 0, paths: bars, points: { show: false } });
      data.push(below.values.map((v) => -v));
    }
    const opts = {
      width: width(this.container),
      height: this.height(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      scales: { x: { time: false, range: [-0.5, Math.max(0.5, n - 0.5)] } },
      axes: [
        { values: (u, splits) => splits.map((i) => (Number.isInteger(i) && labels[i] !== undefined ? labels[i] : "")),
          space: 40, gap: 4, size: 40 },
        { label: "kWh", values: (u, splits) => splits.map((v) => v.toLocaleString("fr-FR")), size: 56 },
      ],
      series,
      hooks: { draw: [(u) => { this.container.dataset.bars = String(u.data[0].length); }] },
    };
    if (this.plot) this.plot.destroy();
    this.container.dataset.bars = "";
    this.plot = new uPlot(opts, data, this.container);
  }
}

function stackValue(stacks, name, i) {
  const s = stacks.find((x) => x.name === name);
  return s ? (s.values[i] || 0).toLocaleString("fr-FR", { maximumFractionDigits: 3 }) : "";
}

/** The rolling power chart of "En direct": points (epoch seconds, VA), last ``windowSeconds``. */
export class RollingLine {
  constructor(container, windowSeconds = 900) {
    this.container = container;
    this.windowSeconds = windowSeconds;
    this.xs = [];
    this.drawn = [];
    this.injected = [];
    this.pending = false;
    this.plot = new uPlot({
      width: width(container),
      height: window.innerWidth < 600 ? 180 : 240,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      // Always the last 15 minutes, ending at the newest point (one point is not a whole axis).
      scales: { x: { time: true, range: (u, min, max) => [max - this.windowSeconds, max + 5] },
                y: { range: (u, min, max) => [Math.min(0, min), Math.max(100, max * 1.1)] } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Europe/Paris"),
      // French, Europe/Paris labels (uPlot's defaults are English and the browser's time zone)
      axes: [{ values: (u, splits) => splits.map((ts) => HOUR_MINUTE.format(new Date(ts * 1000))) },
             { label: "VA", size: 60, values: (u, splits) => splits.map((v) => v.toLocaleString("fr-FR")) }],
      series: [
        { label: "Heure", value: (u, ts) => (ts === null || ts === undefined ? "--" : HOUR_SECOND.format(new Date(ts * 1000))) },
        { label: "Soutirée", stroke: COLOURS.line, width: 2, points: { show: true, size: 6 } },
        { label: "Injectée", stroke: COLOURS.injection, width: 2, dash: [6, 4], points: { show: true, size: 6 } },
      ],
    }, [[], [], []], container);
    new ResizeObserver(() => this.plot.setSize({ width: width(container), height: this.plot.height })).observe(container);
  }

  add(epochSeconds, drawnVa, injectedVa) {
    if (this.xs.length && epochSeconds <= this.xs[this.xs.length - 1]) return;
    this.xs.push(epochSeconds);
    this.drawn.push(drawnVa);
    this.injected.push(injectedVa);
    const cut = epochSeconds - this.windowSeconds;
    while (this.xs.length && this.xs[0] < cut) {
      this.xs.shift();
      this.drawn.shift();
      this.injected.shift();
    }
    if (this.pending) return;
    this.pending = true;
    window.requestAnimationFrame(() => {
      this.pending = false;
      this.plot.setData([this.xs, this.drawn, this.injected]);
      this.container.dataset.points = String(this.xs.length);
    });
  }
}
