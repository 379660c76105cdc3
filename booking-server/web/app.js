// The seat-map page: plain JavaScript, no build step, talking to the JSON API. This file
// has the page's state and helpers, the map, the panel, loading and live updates;
// areas.js (standing areas), cart.js (the hold), show.js (ticket types and the sales
// window), bigmap.js (big maps) and queue.js (the waiting room) are loaded before it, and main() at its end starts
// the page once all are there.
"use strict";

const MAX_SEATS = 10;
const $ = (id) => document.getElementById(id);

// Seat features the map marks; any other feature is only named in the seat's tooltip.
const FEATURES = {
  wheelchair: { mark: "♿", name: "wheelchair space" },
  companion: { mark: "+", name: "companion seat" },
  restricted_view: { mark: "◐", name: "restricted view" },
};

const state = {
  show: null,        // show id
  currency: "EUR",
  limit: null,       // max_seats_per_user of the show, if any
  types: [],         // the show's ticket types, the default first
  seats: new Map(),  // label -> seat from the seat map (state, version, ...)
  areas: [],         // standing areas from the seat map, in the show's order, with live counts
  position: null,    // the seat map's feed position: the live stream follows on from it
  areaEls: new Map(),// area code -> its box
  els: new Map(),    // label -> its button
  order: [],         // labels in seat-map order
  selected: new Set(),
  choice: new Map(), // selected label -> chosen ticket type
  want: new Map(),   // area code -> places chosen (> 0)
  placeTypes: new Map(), // area code -> the ticket type of each chosen place
  drawn: null,       // the selection the ticket list was drawn for
  hold: null,        // the user's current hold on this show, if any
  heldDrawn: null,   // the hold's tickets the list of them was drawn for
  pending: new Set(),// seats (and "area:CODE") whose change of the hold is on its way
  turn: Promise.resolve(), // the last change of the hold asked for (see inTurn)
  events: null,      // EventSource
  timer: null,
  auth: "header",    // the server's AUTH_MODE (GET /auth): "header" or "jwt"
  token: "",         // jwt mode: the bearer token pasted into "You are"
  me: "",            // jwt mode: the user the token names (its sub, as the server read it)
  queue: null,       // the show's queue settings, if it has one (queue.js)
};

function say(text, ok = false) {
  const m = $("message");
  m.textContent = text;
  m.className = ok ? "ok" : "";
  m.hidden = !text;
}

// Every call names the user; every error becomes a readable sentence (the answer's
// body stays on the error as `data`). `key`: the Idempotency-Key of a change.
async function api(method, path, body, { key } = {}) {
  const headers = credentials();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    const err = new Error("The server cannot be reached. Check your connection and try again.");
    err.unreachable = true;
    throw err;
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    let text = (data && data.message) || `The server answered ${res.status}.`;
    if (data && Array.isArray(data.seats) && data.seats.length) text += ` (Seats: ${data.seats.join(", ")})`;
    if (data && Array.isArray(data.areas) && data.areas.length) text += ` (Areas: ${data.areas.join(", ")})`;
    const err = new Error(text);
    err.code = data && data.error;
    err.data = data || {};
    throw err;
  }
  return data;
}

// The refusals a buyer can do something about, in their words.
// `asked`: the places the request asked for, {area: count}; `nothing`: what the refusal
// left as it was.
function explain(e, asked = {}, nothing = "Nothing was held.") {
  const d = e.data || {};
  const queued = queueExplain(e, nothing); // queue.js
  if (queued) return queued;
  if (e.code === "user_limit_reached") {
    const left = Math.max(0, d.limit - d.current);
    const places = state.areas.length ? " (standing places count as seats)" : "";
    return `You can have at most ${d.limit} seats for this show${places} and you already have ${d.current} (held or booked), `
      + (left ? `so you can take ${left} more. ${nothing}` : `so you cannot take more. ${nothing}`);
  }
  if (e.code === "ticket_type_unavailable" && Array.isArray(d.tickets)) {
    const list = d.tickets.map((t) => (t.area ? `${t.type} for places in ${t.area}` : `${t.type} for seat ${t.seat}`));
    return `These tickets are not sold: ${[...new Set(list)].join(", ")}. Choose another ticket type. ${nothing}`;
  }
  if (e.code === "seats_unavailable" && Array.isArray(d.areas) && d.areas.length) {
    const short = d.areas.map((code) => {
      const area = areaOf(code);
      const left = area ? `${Math.max(0, area.available)} left` : "none left";
      return asked[code] ? `${code} (you asked for ${asked[code]}, ${left})` : `${code} (${left})`;
    });
    const seats = Array.isArray(d.seats) && d.seats.length ? ` Seats already taken: ${d.seats.join(", ")}.` : "";
    return `Not enough standing places left in ${short.join(", ")}.${seats} ${nothing}`;
  }
  if (e.code === "not_on_sale") {
    state.sale = { status: "not_on_sale", sales_start: d.sales_start ?? null, sales_end: d.sales_end ?? null };
    renderSale();
    return `${saleText(state.sale)} ${nothing}`;
  }
  if (e.code === "show_cancelled") {
    state.sale = { status: "cancelled" };
    renderSale();
    return `This show was cancelled: nothing can be held. ${nothing}`;
  }
  if (e.code === "area_not_found" && Array.isArray(d.areas)) {
    return `This show has no standing area ${d.areas.join(", ")} (any more). The map was reloaded. ${nothing}`;
  }
  return e.message;
}

function money(cents, currency = state.currency) {
  if (cents == null) return "";
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
  } catch (e) {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

function holdKey() {
  return `booking.hold.${userId()}.${state.show}`;
}

// ---- The map ------------------------------------------------------------------

function seatClass(seat) {
  if (state.selected.has(seat.label)) return "selected";
  if (seat.state === "held" && state.hold && state.hold.status === "active" && state.hold.seats.includes(seat.label)) return "mine";
  return seat.state; // available, held (by others), booked, blocked
}

function describe(seat, cls) {
  const names = {
    available: "available", selected: "selected", mine: "held by you", held: "held by someone else",
    booked: "booked", blocked: "not for sale",
  };
  const price = seat.price != null ? `, ${money(seat.price)}` : "";
  const features = featureNames(seat).map((f) => `, ${f}`).join("");
  return `${seat.label}, ${seat.category}${price}${features}, ${names[cls] || cls}`;
}

function renderSeat(seat) {
  if (isBig()) { drawSeat(seat); return; }
  const el = state.els.get(seat.label);
  if (!el) return;
  const cls = seatClass(seat);
  el.className = `seat ${cls}`;
  el.setAttribute("aria-label", describe(seat, cls));
  el.setAttribute("aria-pressed", cls === "selected" ? "true" : "false");
  el.setAttribute("aria-busy", state.pending.has(seat.label) ? "true" : "false");
  el.dataset.state = cls;
}

function seatButton(seat) {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.seat = seat.label;
  b.textContent = seat.number;
  const names = featureNames(seat);
  b.title = `${seat.label} (${seat.category})${names.length ? `: ${names.join(", ")}` : ""}`;
  if (seat.features) {
    b.dataset.features = seat.features.join(" ");
    const marks = seat.features.filter((f) => FEATURES[f]);
    if (marks.length) {
      const box = document.createElement("span");
      box.className = "marks";
      box.setAttribute("aria-hidden", "true");
      for (const f of marks) {
        const m = document.createElement("span");
        m.className = `mark ${f}`;
        m.textContent = FEATURES[f].mark;
        box.appendChild(m);
      }
      b.appendChild(box);
    }
  }
  b.addEventListener("click", () => toggle(seat.label));
  return b;
}

// The row element of a seat: rows in a box per section (its name as a heading, in the
// order sections first appear) when the show has sections, else straight in #rows.
function rowOf(groups, seat, sectioned) {
  const key = sectioned ? seat.section || "" : "";
  let group = groups.get(key);
  if (!group) {
    let box = $("rows");
    if (sectioned) {
      box = document.createElement("section");
      box.className = "section";
      box.dataset.section = key;
      const name = document.createElement("h2");
      name.className = "section-name";
      name.textContent = key ? `Section ${key}` : "Other seats";
      box.setAttribute("aria-label", name.textContent);
      box.appendChild(name);
      $("rows").appendChild(box);
    }
    group = { box, rows: new Map() };
    groups.set(key, group);
  }
  let row = group.rows.get(seat.row);
  if (!row) {
    row = document.createElement("div");
    row.className = "row";
    row.dataset.row = seat.row;
    const name = document.createElement("span");
    name.className = "row-label";
    name.textContent = seat.row;
    row.appendChild(name);
    group.box.appendChild(row);
    group.rows.set(seat.row, row);
  }
  return row;
}

function renderMap() {
  $("rows").textContent = "";
  state.els.clear();
  if (isBig()) { drawMap(); return; } // bigmap.js
  const sectioned = state.order.some((l) => state.seats.get(l).section);
  const groups = new Map();
  for (const label of state.order) {
    const seat = state.seats.get(label);
    const row = rowOf(groups, seat, sectioned);
    const b = seatButton(seat);
    state.els.set(label, b);
    row.appendChild(b);
    if (seat.aisle_after) {
      const gap = document.createElement("span");
      gap.className = "aisle";
      gap.setAttribute("aria-hidden", "true");
      row.appendChild(gap);
    }
    renderSeat(seat);
  }
}

// The legend names the feature marks this show uses.
function renderLegend() {
  const legend = document.querySelector(".legend");
  legend.querySelectorAll(".feature-key").forEach((li) => li.remove());
  const used = new Set();
  for (const seat of state.seats.values()) for (const f of seat.features || []) used.add(f);
  for (const [f, { mark, name }] of Object.entries(FEATURES)) {
    if (!used.has(f)) continue;
    const li = document.createElement("li");
    li.className = "feature-key";
    const key = document.createElement("span");
    key.className = `mark-key ${f}`;
    key.textContent = mark;
    li.append(key, name[0].toUpperCase() + name.slice(1));
    legend.appendChild(li);
  }
}

// ---- The panel ----------------------------------------------------------------

function selection() {
  return state.order.filter((l) => state.selected.has(l));
}

// One line per selected seat: a choice of the types sold for it (default first), or
// just its price when the show has one type.
function renderTickets(sel) {
  const key = `${sel.join(",")}|${[...state.want].map(([code, n]) => `${code}:${n}`).join(",")}`;
  if (key !== state.drawn) {
    state.drawn = key;
    const list = $("tickets");
    list.textContent = "";
    for (const label of sel) {
      const seat = state.seats.get(label);
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = label;
      li.appendChild(name);
      if (state.types.length > 1) {
        const select = document.createElement("select");
        select.dataset.ticket = label;
        select.setAttribute("aria-label", `Ticket type for ${label}`);
        select.append(...typesFor(seat).map((t) => typeOption(t, seat)));
        select.value = state.choice.get(label);
        select.addEventListener("change", () => {
          state.choice.set(label, select.value);
          renderTotal(selection());
        });
        li.appendChild(select);
      } else {
        const price = document.createElement("span");
        price.textContent = money(priceOf(seat, state.choice.get(label)));
        li.appendChild(price);
      }
      list.appendChild(li);
    }
    for (const area of state.areas) placeLines(list, area);
    list.hidden = sel.length === 0 && placesWanted() === 0;
  }
  renderTotal(sel);
}

function renderTotal(sel) {
  let cents = sel.reduce((sum, l) => sum + (priceOf(state.seats.get(l), state.choice.get(l)) || 0), 0);
  for (const [code, types] of state.placeTypes) {
    const area = areaOf(code);
    if (area) cents += types.reduce((sum, t) => sum + (priceOf(area, t) || 0), 0);
  }
  $("selection-total").textContent = money(cents);
  $("selection-total").dataset.cents = String(cents);
  $("selection-sum").hidden = sel.length === 0 && placesWanted() === 0;
}

function renderPanel() {
  state.areas.forEach(renderArea);
  const h = state.hold;
  const active = holding();
  const sel = selection();
  const chosen = [...sel, placesText(Object.fromEntries(state.want))].filter(Boolean);
  if (active) {
    $("selection").textContent = "Click a free seat to add it to your hold, or one of yours to take it out"
      + (state.areas.length ? "; a standing area's picker sets how many places it has there." : ".");
  } else {
    $("selection").textContent = chosen.length
      ? `Selected: ${chosen.join(", ")}`
      : "Select seats by clicking them (or Tab to a seat and press Enter)"
        + (state.areas.length ? ", or choose a number of standing places." : ".");
  }
  $("limit").hidden = !state.limit;
  $("limit").textContent = state.limit
    ? `At most ${state.limit} seats per person for this show${state.areas.length ? ", standing places included" : ""}.`
    : "";
  renderTickets(sel);
  // A second hold would leave this one behind: while it lives, seats go into it.
  $("hold").hidden = active;
  $("best").hidden = active;
  $("hold").disabled = sel.length === 0 && placesWanted() === 0;
  // A show that does not sell takes no hold: say why instead (renderSale).
  const closed = state.sale && state.sale.status !== "on_sale";
  if (closed) $("hold").disabled = true;
  $("best-hold").disabled = Boolean(closed);
  $("holdbox").hidden = !active;
  if (active) {
    $("held-seats").textContent = heldText(h);
    $("total").textContent = money(h.total, h.currency);
    $("total").dataset.cents = String(h.total);
    renderHeldTickets(h);
  } else if (state.heldDrawn !== null) {
    state.heldDrawn = null; // no choice of an ended hold's tickets stays behind
    $("held-tickets").textContent = "";
  }
  tick();
}

function toggle(label) {
  const seat = state.seats.get(label);
  if (holding()) {
    cartClick(seat);
    return;
  }
  if (state.selected.has(label)) {
    state.selected.delete(label);
    state.choice.delete(label);
  } else if (seat.state === "available") {
    if (!onSale(seat)) {
      say(`Seat ${label} is not on sale: no ticket type is sold for ${seat.category} seats.`);
      return;
    }
    if (state.selected.size + placesWanted() >= cap()) {
      const places = placesWanted() ? " (the standing places you chose count too)" : "";
      say(state.limit && state.limit <= MAX_SEATS
        ? `You can have at most ${state.limit} seats for this show${places}.`
        : `You can select at most ${MAX_SEATS} seats at once${places}.`);
      return;
    }
    state.selected.add(label);
    const types = typesFor(seat);
    if (types.length) state.choice.set(label, types[0].type);
    say("");
  } else {
    refuseClick(seat);
    return;
  }
  renderSeat(seat);
  renderPanel();
}

// Why a seat that is not free cannot be chosen.
function refuseClick(seat) {
  const label = seat.label;
  if (seatClass(seat) === "mine") {
    say(`Seat ${label} is already held by you.`, true);
  } else if (seat.state === "held") {
    say(`Seat ${label} is held by someone else right now. It may come free if they do not book it.`);
  } else if (seat.state === "blocked") {
    say(`Seat ${label} is not for sale.`);
  } else {
    say(`Seat ${label} is already booked.`);
  }
}

function deselect(label) {
  state.selected.delete(label);
  state.choice.delete(label);
}

// Forgets the seats and places chosen: a hold takes their place.
function clearChoice() {
  state.selected.clear();
  state.choice.clear();
  state.want.clear();
  state.placeTypes.clear();
}

// ---- Loading ------------------------------------------------------------------

// The list comes in pages (API.md, "Pages"): follow next_cursor, up to 1,000 shows. It
// carries no live counts; the seat map of the show opened has them.
async function loadShows() {
  const shows = [];
  let page = await api("GET", "/shows");
  shows.push(...page.shows);
  while (page.next_cursor && shows.length < 1000) {
    page = await api("GET", `/shows?limit=200&cursor=${encodeURIComponent(page.next_cursor)}`);
    shows.push(...page.shows);
  }
  const select = $("show");
  select.textContent = "";
  for (const s of shows) {
    const o = document.createElement("option");
    o.value = s.id;
    const status = { cancelled: ", cancelled", not_on_sale: ", not on sale" }[s.status] || "";
    o.textContent = `${s.title} — ${new Date(s.starts_at).toLocaleString()} (${s.seats_total} seats${status})`;
    select.appendChild(o);
  }
  const wanted = new URLSearchParams(location.search).get("show");
  if (wanted && shows.some((s) => s.id === wanted)) select.value = wanted;
  if (!shows.length) say("There is no show yet. An admin can create one with POST /shows.");
  return shows.length > 0;
}

async function openShow(id) {
  state.show = id;
  state.selected.clear();
  state.choice.clear();
  state.want.clear();
  state.placeTypes.clear();
  state.hold = null;
  const show = await api("GET", `/shows/${id}`);
  state.currency = show.currency || "EUR";
  state.limit = show.max_seats_per_user || null;
  state.sale = show;
  renderSale(false);
  // A queued show: the waiting room first, the map once admitted (queue.js).
  if (!(await queueGate(show))) return;
  $("best-count").max = String(cap());
  if (Number($("best-count").value) > cap()) $("best-count").value = String(cap());
  await loadMap();
  await restoreHold();
}

// Reads the seat map (its compact form, which the browser gets compressed)
// and follows the show's changes from its position on (a stream from an earlier map
// would add again the area deltas this map already counts).
async function loadMap() {
  const map = await api("GET", `/shows/${state.show}/seats?format=compact`);
  const seats = expandCompact(map); // bigmap.js
  state.position = map.position;
  state.types = map.ticket_types || [];
  state.seats = new Map(seats.map((s) => [s.label, s]));
  state.order = seats.map((s) => s.label);
  state.areas = map.areas || [];
  for (const l of [...state.selected]) {
    if (!state.seats.has(l) || state.seats.get(l).state !== "available") deselect(l);
  }
  for (const code of [...state.want.keys()]) if (!areaOf(code)) setWant(code, 0);
  state.drawn = null;
  renderCategories(seats);
  renderMap();
  renderAreas();
  renderLegend();
  renderPanel();
  follow();
}

// Live updates, from the map's position on: every change the map does not show
// arrives once (seats held, booked, blocked, available again; a standing area's counts
// as deltas added to the counts of the map loaded). The browser resumes with
// Last-Event-ID by itself when the connection drops. A stream that cannot resume (the
// server answered an error, such as 410 position_expired after a day away) is closed
// by the browser: the map is then read again and followed from its new position.
function follow() {
  if (state.events) state.events.close();
  const since = state.position ? `?since=${encodeURIComponent(state.position)}` : "";
  const es = new EventSource(`/shows/${state.show}/events${since}`);
  state.events = es;
  es.addEventListener("open", () => { $("live").textContent = "Live updates: on"; });
  es.addEventListener("error", () => {
    $("live").textContent = "Live updates: reconnecting…";
    if (es.readyState !== EventSource.CLOSED || state.events !== es) return;
    const show = state.show;
    setTimeout(async () => {
      if (state.events !== es || state.show !== show) return;
      try {
        await loadMap();
      } catch (_) {
        follow(); // Try again; the next error comes back here.
      }
    }, 1000);
  });
  es.addEventListener("seats", (ev) => {
    const data = JSON.parse(ev.data);
    let touchesMine = false;
    for (const change of data.seats) {
      const seat = state.seats.get(change.label);
      if (!seat) continue;
      seat.state = change.state;
      seat.version = change.version;
      if (change.state !== "available" && state.selected.has(change.label)) {
        deselect(change.label);
        if (change.state === "blocked") {
          say(`Seat ${change.label} was just withdrawn from sale.`);
        } else if (!(state.hold && state.hold.seats.includes(change.label))) {
          say(`Seat ${change.label} was just taken by someone else.`);
        }
      }
      if (state.hold && state.hold.seats.includes(change.label)) touchesMine = true;
      renderSeat(seat);
    }
    for (const change of data.areas || []) {
      applyAreaChange(change);
      if (state.hold && state.hold.areas && state.hold.areas[change.area]) touchesMine = true;
    }
    if (touchesMine && data.cause === "expire") refreshHold();
    if (data.cause === "show_cancel") {
      state.sale = { status: "cancelled" };
      renderSale();
      if (state.hold) refreshHold();
    }
    renderPanel();
  });
}

// The best-available control offers the show's categories (and "Any").
function renderCategories(seats) {
  const select = $("best-category");
  const current = select.value;
  const categories = [...new Set(seats.map((s) => s.category))].sort();
  select.replaceChildren(new Option("Any", ""), ...categories.map((c) => new Option(c, c)));
  select.value = categories.includes(current) ? current : "";
}

async function main() {
  try {
    state.auth = (await api("GET", "/auth")).mode;
  } catch (e) {
    say(e.message);
  }
  if (state.auth === "jwt") await startWithToken();
  else startWithUserId();
  $("show").addEventListener("change", () => openShow($("show").value).catch((e) => say(e.message)));
  $("hold").addEventListener("click", doHold);
  $("queue-join").addEventListener("click", queueJoin);
  $("best-hold").addEventListener("click", doBest);
  $("confirm").addEventListener("click", () => inTurn(doConfirm));
  $("extend").addEventListener("click", () => inTurn(doExtend));
  $("release").addEventListener("click", () => inTurn(doRelease));
  state.timer = setInterval(tick, 1000);
  try {
    if (await loadShows()) await openShow($("show").value);
  } catch (e) {
    say(e.message);
  }
}

main();
