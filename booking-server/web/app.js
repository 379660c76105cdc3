// The seat-map page: plain JavaScript, no build step, talking to the JSON API.
"use strict";

const MAX_SEATS = 10;
const $ = (id) => document.getElementById(id);

const state = {
  show: null,        // show id
  seats: new Map(),  // label -> seat from the seat map (state, version, ...)
  order: [],         // labels in seat-map order
  selected: new Set(),
  hold: null,        // the user's current hold on this show, if any
  events: null,      // EventSource
  timer: null,
};

function userId() {
  return $("user").value.trim();
}

function say(text, ok = false) {
  const m = $("message");
  m.textContent = text;
  m.className = ok ? "ok" : "";
  m.hidden = !text;
}

// Every call names the user; every error becomes a readable sentence.
async function api(method, path, body) {
  const headers = { "X-User-Id": userId() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new Error("The server cannot be reached. Check your connection and try again.");
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    let text = (data && data.message) || `The server answered ${res.status}.`;
    if (data && Array.isArray(data.seats) && data.seats.length) text += ` (Seats: ${data.seats.join(", ")})`;
    const err = new Error(text);
    err.code = data && data.error;
    throw err;
  }
  return data;
}

function money(cents, currency) {
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

function seatClass(seat) {
  if (state.selected.has(seat.label)) return "selected";
  if (seat.state === "held" && state.hold && state.hold.status === "active" && state.hold.seats.includes(seat.label)) return "mine";
  return seat.state; // available, held (by others), booked
}

function describe(seat, cls) {
  const names = { available: "available", selected: "selected", mine: "held by you", held: "held by someone else", booked: "booked" };
  const price = seat.price != null ? `, ${money(seat.price, state.currency)}` : "";
  return `${seat.label}, ${seat.category}${price}, ${names[cls]}`;
}

function renderSeat(seat) {
  const el = document.querySelector(`[data-seat="${seat.label}"]`);
  if (!el) return;
  const cls = seatClass(seat);
  el.className = `seat ${cls}`;
  el.setAttribute("aria-label", describe(seat, cls));
  el.setAttribute("aria-pressed", cls === "selected" ? "true" : "false");
  el.dataset.state = cls;
}

function renderMap() {
  const rows = $("rows");
  rows.textContent = "";
  let current = null;
  for (const label of state.order) {
    const seat = state.seats.get(label);
    if (!current || current.dataset.row !== seat.row) {
      current = document.createElement("div");
      current.className = "row";
      current.dataset.row = seat.row;
      const name = document.createElement("span");
      name.className = "row-label";
      name.textContent = seat.row;
      current.appendChild(name);
      rows.appendChild(current);
    }
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.seat = seat.label;
    b.textContent = seat.number;
    b.addEventListener("click", () => toggle(seat.label));
    current.appendChild(b);
    if (seat.aisle_after) {
      const gap = document.createElement("span");
      gap.className = "aisle";
      gap.setAttribute("aria-hidden", "true");
      current.appendChild(gap);
    }
    renderSeat(seat);
  }
}

function renderPanel() {
  const sel = [...state.selected];
  $("selection").textContent = sel.length
    ? `Selected: ${sel.join(", ")}`
    : "Select seats by clicking them (or Tab to a seat and press Enter).";
  $("hold").disabled = sel.length === 0;
  const h = state.hold;
  const active = h && h.status === "active";
  $("holdbox").hidden = !active;
  if (active) {
    $("held-seats").textContent = h.seats.join(", ");
    $("total").textContent = money(h.total, h.currency);
  }
  tick();
}

function tick() {
  const h = state.hold;
  if (!h || h.status !== "active") return;
  const left = Math.max(0, Math.round((Date.parse(h.expires_at) - Date.now()) / 1000));
  $("countdown").textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  if (left === 0) refreshHold();
}

function toggle(label) {
  const seat = state.seats.get(label);
  if (state.selected.has(label)) {
    state.selected.delete(label);
  } else if (seat.state === "available") {
    if (state.selected.size >= MAX_SEATS) {
      say(`You can select at most ${MAX_SEATS} seats at once.`);
      return;
    }
    state.selected.add(label);
    say("");
  } else if (seatClass(seat) === "mine") {
    say(`Seat ${label} is already held by you.`, true);
    return;
  } else if (seat.state === "held") {
    say(`Seat ${label} is held by someone else right now. It may come free if they do not book it.`);
    return;
  } else {
    say(`Seat ${label} is already booked.`);
    return;
  }
  renderSeat(seat);
  renderPanel();
}

async function loadShows() {
  const { shows } = await api("GET", "/shows");
  const select = $("show");
  select.textContent = "";
  for (const s of shows) {
    const o = document.createElement("option");
    o.value = s.id;
    o.textContent = `${s.title} — ${new Date(s.starts_at).toLocaleString()} (${s.available} free)`;
    o.dataset.currency = s.currency;
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
  state.hold = null;
  const option = [...$("show").options].find((o) => o.value === id);
  state.currency = (option && option.dataset.currency) || "EUR";
  await loadMap();
  await restoreHold();
  follow();
}

async function loadMap() {
  const map = await api("GET", `/shows/${state.show}/seats`);
  state.seats = new Map(map.seats.map((s) => [s.label, s]));
  state.order = map.seats.map((s) => s.label);
  renderCategories(map.seats);
  renderMap();
  renderPanel();
}

async function restoreHold() {
  const id = localStorage.getItem(holdKey());
  if (!id) return;
  try {
    state.hold = await api("GET", `/holds/${id}`);
  } catch (e) {
    state.hold = null;
  }
  if (!state.hold || state.hold.status !== "active") {
    localStorage.removeItem(holdKey());
    state.hold = null;
  }
  state.order.forEach((l) => renderSeat(state.seats.get(l)));
  renderPanel();
}

async function refreshHold() {
  if (!state.hold) return;
  try {
    state.hold = await api("GET", `/holds/${state.hold.hold_id}`);
    if (state.hold.status === "expired") say("Your hold expired and its seats were let go.");
  } catch (e) {
    say(e.message);
  }
  if (state.hold && state.hold.status !== "active") localStorage.removeItem(holdKey());
  state.hold.seats.forEach((l) => state.seats.has(l) && renderSeat(state.seats.get(l)));
  renderPanel();
}

// Live updates: every change of a seat arrives once; the browser resumes with
// Last-Event-ID by itself when the connection drops.
function follow() {
  if (state.events) state.events.close();
  const es = new EventSource(`/shows/${state.show}/events`);
  state.events = es;
  es.addEventListener("open", () => { $("live").textContent = "Live updates: on"; });
  es.addEventListener("error", () => { $("live").textContent = "Live updates: reconnecting…"; });
  es.addEventListener("seats", (ev) => {
    const data = JSON.parse(ev.data);
    let touchesMine = false;
    for (const change of data.seats) {
      const seat = state.seats.get(change.label);
      if (!seat) continue;
      seat.state = change.state;
      seat.version = change.version;
      if (change.state !== "available" && state.selected.has(change.label)) {
        state.selected.delete(change.label);
        if (!(state.hold && state.hold.seats.includes(change.label))) {
          say(`Seat ${change.label} was just taken by someone else.`);
        }
      }
      if (state.hold && state.hold.seats.includes(change.label)) touchesMine = true;
      renderSeat(seat);
    }
    if (touchesMine && data.cause === "expire") refreshHold();
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

// A hold was made (by hand or best available): show it as ours.
function took(hold) {
  state.hold = hold;
  localStorage.setItem(holdKey(), hold.hold_id);
  state.selected.clear();
  for (const l of hold.seats) {
    const seat = state.seats.get(l);
    seat.state = "held";
    renderSeat(seat);
  }
  say(`Held ${hold.seats.join(", ")}. Confirm before the time runs out.`, true);
}

async function doBest() {
  const count = Number($("best-count").value);
  if (!Number.isInteger(count) || count < 1 || count > MAX_SEATS) {
    say(`Ask for 1 to ${MAX_SEATS} seats.`);
    return;
  }
  const body = { count, adjacent: $("best-adjacent").checked };
  if ($("best-category").value) body.category = $("best-category").value;
  $("best-hold").disabled = true;
  try {
    took(await api("POST", `/shows/${state.show}/holds/best`, body));
  } catch (e) {
    say(e.message);
    if (e.code === "seats_unavailable") await loadMap();
  } finally {
    $("best-hold").disabled = false;
  }
  renderPanel();
}

async function doHold() {
  const seats = [...state.selected];
  const if_versions = {};
  for (const l of seats) if_versions[l] = state.seats.get(l).version;
  try {
    took(await api("POST", `/shows/${state.show}/holds`, { seats, if_versions }));
  } catch (e) {
    say(e.message);
    if (e.code === "stale_version" || e.code === "seats_unavailable") await loadMap();
  }
  renderPanel();
}

async function doConfirm() {
  try {
    const booking = await api("POST", `/holds/${state.hold.hold_id}/confirm`);
    localStorage.removeItem(holdKey());
    for (const l of booking.seats) {
      const seat = state.seats.get(l);
      if (seat) { seat.state = "booked"; }
    }
    state.hold = null;
    state.order.forEach((l) => renderSeat(state.seats.get(l)));
    $("booked").hidden = false;
    $("booked").textContent = `Booked ${booking.seats.join(", ")} (${money(booking.total, booking.currency)}). Booking ${booking.booking_id}.`;
    say("Your seats are booked.", true);
  } catch (e) {
    say(e.message);
    await refreshHold();
  }
  renderPanel();
}

async function doExtend() {
  try {
    state.hold = await api("POST", `/holds/${state.hold.hold_id}/extend`, { ttl_seconds: 600 });
    say("Your hold was extended.", true);
  } catch (e) {
    say(e.message);
  }
  renderPanel();
}

async function doRelease() {
  const h = state.hold;
  try {
    await api("DELETE", `/holds/${h.hold_id}`);
    localStorage.removeItem(holdKey());
    state.hold = null;
    for (const l of h.seats) {
      const seat = state.seats.get(l);
      if (seat && seat.state === "held") { seat.state = "available"; renderSeat(seat); }
    }
    say(`Released ${h.seats.join(", ")}.`, true);
  } catch (e) {
    say(e.message);
  }
  renderPanel();
}

async function main() {
  let user = localStorage.getItem("booking.user");
  if (!user) {
    user = `guest-${Math.random().toString(36).slice(2, 8)}`;
    localStorage.setItem("booking.user", user);
  }
  $("user").value = user;
  $("user").addEventListener("change", async () => {
    const u = userId();
    if (!/^[\x21-\x7e]{1,128}$/.test(u)) {
      say("A user id is 1 to 128 visible characters, without spaces.");
      return;
    }
    localStorage.setItem("booking.user", u);
    say("");
    state.hold = null;
    await restoreHold();
  });
  $("show").addEventListener("change", () => openShow($("show").value).catch((e) => say(e.message)));
  $("hold").addEventListener("click", doHold);
  $("best-hold").addEventListener("click", doBest);
  $("confirm").addEventListener("click", doConfirm);
  $("extend").addEventListener("click", doExtend);
  $("release").addEventListener("click", doRelease);
  state.timer = setInterval(tick, 1000);
  try {
    if (await loadShows()) await openShow($("show").value);
  } catch (e) {
    say(e.message);
  }
}

main();
