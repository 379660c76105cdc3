// Big maps: the compact form of the seat map read into the page's seats, and maps of
// more than BIG_MAP seats drawn on one canvas instead of a button per seat (100,000
// buttons take seconds to lay out and make every change of the page slow). Loaded
// before app.js, whose renderMap and renderSeat call drawMap and drawSeat here.
"use strict";

const BIG_MAP = 2000;
const CELL = 8; // pixels per seat on the canvas, the gap included
const COLORS = {
  available: "#2e7d32", selected: "#1565c0", mine: "#f9a825", held: "#9e9e9e",
  booked: "#c62828", blocked: "#d6d6d6",
};

// The seats of a compact map (docs/API.md, `format=compact`), each as the full form
// writes it: label, section, row, number, category, price, state, version, aisle_after,
// features.
function expandCompact(c) {
  const seats = [];
  const kindOf = (i) => c.kinds[Array.isArray(c.kind) ? c.kind[i] : c.kind];
  const aisles = new Set(c.aisle_after);
  const features = new Map();
  for (const [f, list] of Object.entries(c.features)) {
    for (const i of list) {
      if (!features.has(i)) features.set(i, []);
      features.get(i).push(f);
    }
  }
  let i = 0;
  for (const row of c.rows) {
    for (const [first, last] of row.numbers) {
      for (let n = first; n <= last; n += 1, i += 1) {
        const kind = kindOf(i);
        const seat = {
          label: c.labels ? c.labels[i] : `${row.section ? `${row.section}-` : ""}${row.row}${n}`,
          row: row.row, number: n, category: kind.category,
          state: c.state_names[c.states.charCodeAt(i) - 48],
          version: c.versions[i], aisle_after: aisles.has(i),
        };
        if (row.section) seat.section = row.section;
        if (kind.price != null) seat.price = kind.price;
        if (features.has(i)) seat.features = features.get(i).sort();
        seats.push(seat);
      }
    }
  }
  return seats;
}

// The canvas of a big map: where each seat is (grid cells, an aisle or a new section
// leaving a gap), and which seat each cell holds.
const big = { canvas: null, index: new Map(), x: null, y: null, grid: null, cols: 0, rows: 0, focus: -1 };

function isBig() {
  return state.order.length > BIG_MAP;
}

function drawMap() {
  const n = state.order.length;
  big.index = new Map();
  big.x = new Int32Array(n);
  big.y = new Int32Array(n);
  let col = 0; let line = -1; let cols = 0; let key = null; let section;
  state.order.forEach((label, i) => {
    const seat = state.seats.get(label);
    const k = `${seat.section || ""}\u0000${seat.row}`;
    if (k !== key) {
      line += seat.section !== section && key !== null ? 2 : 1; // a blank line between sections
      key = k; section = seat.section; col = 0;
    }
    big.index.set(label, i);
    big.x[i] = col; big.y[i] = line;
    col += seat.aisle_after ? 2 : 1;
    cols = Math.max(cols, col);
  });
  big.cols = cols; big.rows = line + 1;
  big.grid = new Int32Array(big.cols * big.rows).fill(-1);
  for (let i = 0; i < n; i += 1) big.grid[big.y[i] * big.cols + big.x[i]] = i;

  const box = document.createElement("div");
  box.className = "bigmap";
  const canvas = document.createElement("canvas");
  canvas.width = big.cols * CELL; canvas.height = big.rows * CELL;
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Seat map of ${n} seats: point at a seat to see it, click to choose it.`);
  canvas.dataset.seats = String(n);
  canvas.addEventListener("click", (ev) => {
    const i = seatAt(ev);
    if (i < 0) return;
    moveFocus(i);
    toggle(state.order[i]);
  });
  canvas.addEventListener("mousemove", (ev) => {
    const i = seatAt(ev);
    const seat = i >= 0 ? state.seats.get(state.order[i]) : null;
    canvas.title = seat ? describe(seat, seatClass(seat)) : "";
  });
  // The keyboard: arrows move a cursor from seat to seat, Enter or Space chooses it.
  canvas.addEventListener("focus", () => moveFocus(big.focus >= 0 ? big.focus : 0));
  canvas.addEventListener("keydown", (ev) => {
    const i = big.focus;
    const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[ev.key];
    if (step) {
      ev.preventDefault();
      const next = step[1] === 0 ? i + step[0] : nearestInLine(i, step[1]);
      if (next >= 0 && next < state.order.length) moveFocus(next);
    } else if ((ev.key === "Enter" || ev.key === " ") && i >= 0) {
      ev.preventDefault();
      toggle(state.order[i]);
    }
  });
  box.appendChild(canvas);
  $("rows").replaceChildren(box);
  big.canvas = canvas;
  big.focus = -1;
  const ctx = canvas.getContext("2d");
  for (let i = 0; i < n; i += 1) paint(ctx, i, seatClass(state.seats.get(state.order[i])));
}

// The seat in the next line up (dy -1) or down (1) nearest to seat i's column, or -1.
function nearestInLine(i, dy) {
  for (let y = big.y[i] + dy; y >= 0 && y < big.rows; y += dy) {
    for (let d = 0; d < big.cols; d += 1) {
      for (const x of [big.x[i] - d, big.x[i] + d]) {
        if (x >= 0 && x < big.cols && big.grid[y * big.cols + x] >= 0) return big.grid[y * big.cols + x];
      }
    }
  }
  return -1;
}

// Puts the keyboard cursor on seat i: outlined, named in the canvas's label.
function moveFocus(i) {
  const old = big.focus;
  big.focus = i;
  if (old >= 0 && old !== i) drawSeat(state.seats.get(state.order[old]));
  const seat = state.seats.get(state.order[i]);
  drawSeat(seat);
  big.canvas.setAttribute("aria-label", describe(seat, seatClass(seat)));
}

// The seat under the pointer, or -1.
function seatAt(ev) {
  const rect = big.canvas.getBoundingClientRect();
  const x = Math.floor(((ev.clientX - rect.left) * big.canvas.width) / rect.width / CELL);
  const y = Math.floor(((ev.clientY - rect.top) * big.canvas.height) / rect.height / CELL);
  if (x < 0 || y < 0 || x >= big.cols || y >= big.rows) return -1;
  return big.grid[y * big.cols + x];
}

function paint(ctx, i, cls) {
  ctx.clearRect(big.x[i] * CELL, big.y[i] * CELL, CELL, CELL);
  ctx.fillStyle = COLORS[cls] || COLORS.blocked;
  ctx.fillRect(big.x[i] * CELL, big.y[i] * CELL, CELL - 1, CELL - 1);
  if (state.pending.has(state.order[i])) {
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(big.x[i] * CELL + 2, big.y[i] * CELL + 2, CELL - 5, CELL - 5);
  }
  if (i === big.focus) {
    ctx.strokeStyle = "#ff6f00";
    ctx.strokeRect(big.x[i] * CELL + 0.5, big.y[i] * CELL + 0.5, CELL - 2, CELL - 2);
  }
}

// Redraws one seat of the canvas (a change from the feed, a click, the hold).
function drawSeat(seat) {
  const i = big.index.get(seat.label);
  if (i === undefined || !big.canvas) return;
  paint(big.canvas.getContext("2d"), i, seatClass(seat));
}

// Read-only, for the browser tests: what the canvas shows for a seat, and where a seat
// is in the page's coordinates (to click it).
window.bookingMap = Object.freeze({
  big: () => isBig(),
  seatState: (label) => (state.seats.has(label) ? seatClass(state.seats.get(label)) : null),
  drawnState: (label) => {
    const i = big.index.get(label);
    if (i === undefined || !big.canvas) return null;
    const px = big.canvas.getContext("2d").getImageData(big.x[i] * CELL + 1, big.y[i] * CELL + 1, 1, 1).data;
    const hex = `#${[px[0], px[1], px[2]].map((v) => v.toString(16).padStart(2, "0")).join("")}`;
    return Object.keys(COLORS).find((k) => COLORS[k] === hex) || hex;
  },
  point: (label) => {
    const i = big.index.get(label);
    if (i === undefined || !big.canvas) return null;
    const rect = big.canvas.getBoundingClientRect();
    const scale = rect.width / big.canvas.width;
    return { x: rect.left + (big.x[i] * CELL + CELL / 2) * scale, y: rect.top + (big.y[i] * CELL + CELL / 2) * scale };
  },
});
