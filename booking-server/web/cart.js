// The buyer's hold, which is the page's cart: taking it (from the selection, or the best
// seats available), changing it in place (a click on the map adds a seat or takes one
// out, the held tickets' types change at once), confirming, extending, releasing it, and
// reading it back. Loaded before app.js, whose `state` and helpers it uses: it only
// declares functions, which app.js's main() (and what it wires up) calls.
"use strict";

// ---- Taking and ending the hold -----------------------------------------------

// A hold was made (by hand or best available): show it as ours.
function took(hold) {
  state.hold = hold;
  localStorage.setItem(holdKey(), hold.hold_id);
  clearChoice();
  for (const l of hold.seats) {
    const seat = state.seats.get(l);
    seat.state = "held";
    renderSeat(seat);
  }
  say(`Held ${heldText(hold)}. Confirm before the time runs out.`, true);
}

async function doBest() {
  const count = Number($("best-count").value);
  if (!Number.isInteger(count) || count < 1 || count > cap()) {
    say(`Ask for 1 to ${cap()} seats.`);
    return;
  }
  const body = { count, adjacent: $("best-adjacent").checked };
  if ($("best-category").value) body.category = $("best-category").value;
  $("best-hold").disabled = true;
  try {
    took(await api("POST", `/shows/${state.show}/holds/best`, body));
  } catch (e) {
    say(explain(e));
    if (e.code === "seats_unavailable") await loadMap();
  } finally {
    $("best-hold").disabled = false;
  }
  renderPanel();
}

async function doHold() {
  const seats = selection();
  const if_versions = {};
  const ticket_types = {};
  const fallback = state.types.length ? state.types[0].type : null;
  for (const l of seats) {
    if_versions[l] = state.seats.get(l).version;
    const type = state.choice.get(l);
    if (type && type !== fallback) ticket_types[l] = type;
  }
  const body = seats.length ? { seats, if_versions } : {};
  const areas = Object.fromEntries(state.want);
  if (Object.keys(areas).length) body.areas = areas;
  for (const [code, types] of state.placeTypes) {
    if (types.some((t) => t && t !== fallback)) ticket_types[code] = types;
  }
  if (Object.keys(ticket_types).length) body.ticket_types = ticket_types;
  $("hold").disabled = true;
  try {
    took(await api("POST", `/shows/${state.show}/holds`, body));
  } catch (e) {
    if (["stale_version", "seats_unavailable", "area_not_found"].includes(e.code)) {
      try { await loadMap(); } catch (reload) { /* the message below says what happened */ }
    }
    say(explain(e, areas));
  }
  renderPanel();
}

async function doConfirm() {
  if (!holding()) return; // a change asked for before this click ended the hold
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
    $("booked").textContent = `Booked ${ticketsOf(booking).map(ticketText).join(", ")} `
      + `(${money(booking.total, booking.currency)} in all). Booking ${booking.booking_id}.`;
    say(booking.areas ? "Your tickets are booked." : "Your seats are booked.", true);
  } catch (e) {
    say(e.message);
    await refreshHold();
  }
  renderPanel();
}

async function doExtend() {
  if (!holding()) return;
  try {
    state.hold = await api("POST", `/holds/${state.hold.hold_id}/extend`, { ttl_seconds: 600 });
    say("Your hold was extended.", true);
  } catch (e) {
    say(e.message);
  }
  renderPanel();
}

async function doRelease() {
  if (!holding()) return;
  const h = state.hold;
  try {
    await api("DELETE", `/holds/${h.hold_id}`);
    localStorage.removeItem(holdKey());
    state.hold = null;
    for (const l of h.seats) {
      const seat = state.seats.get(l);
      if (seat && seat.state === "held") { seat.state = "available"; renderSeat(seat); }
    }
    say(`Released ${heldText(h)}.`, true);
  } catch (e) {
    say(e.message);
  }
  renderPanel();
}

// ---- Reading it back ----------------------------------------------------------

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
  } else {
    clearChoice();
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

function tick() {
  const h = state.hold;
  if (!h || h.status !== "active") return;
  const left = Math.max(0, Math.round((Date.parse(h.expires_at) - Date.now()) / 1000));
  $("countdown").textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  if (left === 0) refreshHold();
}

// ---- The cart: changing the hold ----------------------------------------------

// With a hold, the map is its cart: a free seat goes into the hold and one of its seats
// comes out of it at once, nothing being selected first.
function cartClick(seat) {
  const label = seat.label;
  if (state.pending.has(label)) return; // a change of it is on its way already
  if (state.hold.seats.includes(label)) {
    changeHold("remove", { seats: [label] }, [label]);
  } else if (seat.state === "available") {
    if (!onSale(seat)) {
      say(`Seat ${label} is not on sale: no ticket type is sold for ${seat.category} seats.`);
      return;
    }
    if (heldCount(state.hold) >= cap()) {
      const places = placesHeld(state.hold) ? " (standing places count too)" : "";
      say(state.limit && state.limit <= MAX_SEATS
        ? `You can have at most ${state.limit} seats for this show${places}. Take one out of your hold first.`
        : `A hold has at most ${MAX_SEATS} seats${places}. Take one out of your hold first.`);
      return;
    }
    changeHold("add", { seats: [label] }, [label]);
  } else {
    refuseClick(seat);
  }
}

// The hold's tickets, one line each. A seat or place sold as more than one type offers
// them all, and choosing one changes that ticket of the hold at once. Drawn again only
// when the tickets changed, so that a live update does not close a choice being made.
function renderHeldTickets(h) {
  const key = JSON.stringify([h.hold_id, ticketsOf(h)]);
  if (key === state.heldDrawn) return;
  state.heldDrawn = key;
  $("held-tickets").replaceChildren(...ticketsOf(h).map(heldTicket));
}

function heldTicket(t) {
  const li = document.createElement("li");
  li.dataset.held = t.seat;
  if (t.area) li.dataset.area = t.area;
  const item = t.area ? areaOf(t.area) : state.seats.get(t.seat);
  const types = item && t.type ? typesFor(item) : [];
  if (state.types.length < 2 || types.length < 2) {
    li.textContent = ticketText(t);
    return li;
  }
  const name = document.createElement("span");
  name.textContent = t.seat;
  const select = document.createElement("select");
  select.dataset.heldTicket = t.seat;
  select.setAttribute("aria-label", `Ticket type for ${t.seat}`);
  select.append(...types.map((type) => typeOption(type, item)));
  select.value = t.type;
  select.addEventListener("change", () => retypeHeld(t, select.value));
  li.append(name, select);
  return li;
}

// Changes of the hold (and confirm, extend, release) run one at a time, in the order
// asked: each answer is the whole hold, and one that came back late must not draw over
// a newer one, nor a change go to a hold that an earlier click confirmed.
function inTurn(fn) {
  const run = state.turn.then(fn);
  state.turn = run.catch(() => {});
  return run;
}

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `page-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// One Idempotency-Key per change, kept across its retries: when an answer is lost on
// the way, the retry gets the stored answer rather than adding places a second time.
async function sendChange(path, body) {
  const key = newKey();
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api("POST", path, body, { key });
    } catch (e) {
      const again = e.unreachable || e.code === "unavailable" || e.code === "idempotency_key_in_use";
      if (!again || attempt === 3) throw e;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

// Draws a seat (or an area's picker, `key` "area:CODE") busy while its change is on its way.
function markPending(key, on) {
  if (on) state.pending.add(key); else state.pending.delete(key);
  const seat = state.seats.get(key);
  if (seat) renderSeat(seat);
}

// The hold as a change left it: seats it gained are held, seats it let go are free
// again (their live events say so too, maybe later); a hold left empty was released.
function applyHold(next) {
  const before = state.hold ? state.hold.seats : [];
  const kept = next.status === "active" ? next.seats : [];
  if (next.status === "active") {
    state.hold = next;
  } else {
    state.hold = null;
    localStorage.removeItem(holdKey());
  }
  for (const l of kept) {
    const seat = state.seats.get(l);
    if (seat) { seat.state = "held"; renderSeat(seat); }
  }
  for (const l of before) {
    const seat = state.seats.get(l);
    if (seat && !kept.includes(l) && seat.state === "held") { seat.state = "available"; renderSeat(seat); }
  }
}

// Adds seats or places to the current hold, or takes them out (`op`: "add" or
// "remove"; `body` as the API takes it). `busy`: what to draw busy meanwhile.
function changeHold(op, body, busy = []) {
  busy.forEach((k) => markPending(k, true));
  renderPanel();
  return inTurn(async () => {
    try {
      if (!holding()) return; // an earlier change ended the hold
      const what = [...(body.seats || []), placesText(body.areas)].filter(Boolean).join(", ");
      const after = await sendChange(`/holds/${state.hold.hold_id}/${op}`, body);
      applyHold(after);
      if (after.status !== "active") {
        say(`Took ${what} out: your hold had nothing left and was released.`, true);
      } else {
        say(`${op === "add" ? "Added" : "Took out"} ${what}. Your hold: ${heldText(after)}; it expires as before.`, true);
      }
    } catch (e) {
      await refused(e, op === "add" ? body.areas : {});
    } finally {
      busy.forEach((k) => markPending(k, false));
      renderPanel();
    }
  });
}

// A held seat's or place's ticket type, changed in place: the same seats, places and
// expiry. An area's places are retyped all together, in number order, as the API asks.
function retypeHeld(ticket, type) {
  return inTurn(async () => {
    try {
      if (!holding()) return;
      const h = state.hold;
      let types = { [ticket.seat]: type };
      if (ticket.area) {
        const places = h.tickets.filter((t) => t.area === ticket.area);
        if (!places.some((t) => t.seat === ticket.seat)) return; // taken out meanwhile
        types = { [ticket.area]: places.map((t) => (t.seat === ticket.seat ? type : t.type)) };
      }
      applyHold(await sendChange(`/holds/${h.hold_id}/tickets`, { ticket_types: types }));
      say(`${ticket.seat} is now a ${type} ticket. Total: ${money(state.hold.total, state.hold.currency)}.`, true);
    } catch (e) {
      state.heldDrawn = null; // the choice drawn is not the hold's: draw the hold's again
      await refused(e, {});
    } finally {
      renderPanel();
    }
  });
}

// A refused change left the hold as it was: say why, and read again what the refusal
// shows the page had wrong (the map; the hold itself, when it may have ended).
async function refused(e, asked = {}) {
  say(explainChange(e, asked || {}));
  if (["seats_unavailable", "seat_not_found", "area_not_found"].includes(e.code)) {
    try { await loadMap(); } catch (reload) { /* the message says what happened */ }
  }
  if (e.unreachable || ["hold_expired", "hold_released", "hold_confirmed", "not_in_hold"].includes(e.code)) {
    await refreshHold();
  }
}

function explainChange(e, asked) {
  const unchanged = "Your hold was not changed.";
  const d = e.data || {};
  const seats = Array.isArray(d.seats) ? d.seats : [];
  const areas = Array.isArray(d.areas) ? d.areas : [];
  const named = seats.length === 1 ? `Seat ${seats[0]} is` : `Seats ${seats.join(", ")} are`;
  if (e.code === "seats_unavailable" && seats.length && !areas.length) {
    return `${named} not free any more: someone else has ${seats.length === 1 ? "it" : "them"} now. ${unchanged}`;
  }
  if (e.code === "not_in_hold" && (seats.length || areas.length)) {
    const what = [seats.length ? named : "", areas.length ? `places in ${areas.join(", ")} are` : ""]
      .filter(Boolean).join(" and ");
    return `${what[0].toUpperCase()}${what.slice(1)} not in your hold any more. ${unchanged}`;
  }
  const text = explain(e, asked, unchanged);
  return text === e.message ? `${text} ${unchanged}` : text;
}
