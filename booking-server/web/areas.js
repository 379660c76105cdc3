// Standing areas beside the seat map: what is left, a quantity picker, a ticket type per
// place, live counts. Loaded before app.js, whose `state` and helpers it uses.
"use strict";

function areaOf(code) {
  return state.areas.find((a) => a.area === code);
}

// Places chosen, in all areas or all but `except`.
function placesWanted(except = null) {
  let n = 0;
  for (const [code, count] of state.want) if (code !== except) n += count;
  return n;
}

// "2 places in FLOOR, 1 place in PIT" for {FLOOR: 2, PIT: 1}.
function placesText(areas) {
  return Object.entries(areas || {}).map(([code, n]) => `${n} ${n === 1 ? "place" : "places"} in ${code}`).join(", ");
}

// The places a hold has, in all its areas.
function placesHeld(h) {
  return Object.values(h.areas || {}).reduce((n, count) => n + count, 0);
}

// The places the current hold has in an area (0 without a hold).
function heldIn(code) {
  return holding() && state.hold.areas ? state.hold.areas[code] || 0 : 0;
}

// What a hold or booking has: its seats, then its places.
function heldText(h) {
  return [...h.seats, placesText(h.areas)].filter(Boolean).join(", ");
}

// The most places the buyer may choose in `area` now: what is left, and what the hold
// limit and the limit per buyer leave beside the other seats and places chosen. With a
// hold, the places it has here count as chosen, and are always on offer.
function maxPlaces(area) {
  if (!onSale(area)) return 0;
  if (holding()) {
    const mine = heldIn(area.area);
    const room = cap() - heldCount(state.hold) + mine;
    return Math.max(mine, Math.min(mine + Math.max(0, area.available), room));
  }
  const room = cap() - state.selected.size - placesWanted(area.area);
  return Math.max(0, Math.min(area.available, room));
}

// With a hold, an area's picker is its count of places there: moving it adds or takes
// out the difference (the API takes out the hold's highest-numbered places).
function changePlaces(code, count) {
  const held = heldIn(code);
  if (count === held) return;
  const body = { areas: { [code]: Math.abs(count - held) } };
  changeHold(count > held ? "add" : "remove", body, [`area:${code}`]);
}

// Sets the places chosen in an area (0: none), keeping the types chosen so far.
function setWant(code, count) {
  const area = areaOf(code);
  if (!count || !area) {
    state.want.delete(code);
    state.placeTypes.delete(code);
    return;
  }
  state.want.set(code, count);
  const types = state.placeTypes.get(code) || [];
  const fallback = typesFor(area).length ? typesFor(area)[0].type : null;
  while (types.length < count) types.push(fallback);
  types.length = count;
  state.placeTypes.set(code, types);
}

function areaBox(area) {
  const box = document.createElement("div");
  box.className = "area";
  box.dataset.area = area.area;
  box.setAttribute("role", "group");
  const name = document.createElement("h2");
  name.className = "area-name";
  name.textContent = area.area;
  box.setAttribute("aria-label", `Standing area ${area.area}`);
  const meta = document.createElement("p");
  meta.className = "area-meta";
  const left = document.createElement("p");
  left.className = "area-left";
  left.setAttribute("aria-live", "polite");
  const label = document.createElement("label");
  label.className = "area-pick";
  const picker = document.createElement("select");
  picker.dataset.areaCount = area.area;
  picker.setAttribute("aria-label", `Places in ${area.area}`);
  picker.addEventListener("change", () => {
    if (holding()) {
      changePlaces(area.area, Number(picker.value));
      return;
    }
    setWant(area.area, Number(picker.value));
    say("");
    renderPanel();
  });
  label.append("Places ", picker);
  const mine = document.createElement("p");
  mine.className = "area-mine";
  box.append(name, meta, left, label, mine);
  return box;
}

// One area's box: what is left of its capacity, and a picker of 0 to what may be chosen.
function renderArea(area) {
  const box = state.areaEls.get(area.area);
  if (!box) return;
  const available = Math.max(0, area.available);
  box.dataset.available = String(available);
  box.classList.toggle("sold-out", available === 0);
  const prices = typesFor(area).map((t) => t.prices[area.category]).filter((p) => p != null);
  const from = prices.length ? Math.min(...prices) : area.price;
  box.querySelector(".area-meta").textContent = `${area.category}`
    + (!onSale(area) ? ", not on sale" : from != null ? `, ${prices.length > 1 ? "from " : ""}${money(from)}` : "");
  const count = document.createElement("strong");
  count.className = "area-available";
  count.textContent = String(available);
  box.querySelector(".area-left").replaceChildren(count, ` of ${area.capacity} places left`
    + (available === 0 ? " — sold out" : ""));
  const max = maxPlaces(area);
  if ((state.want.get(area.area) || 0) > max) setWant(area.area, max);
  const picker = box.querySelector("select");
  const busy = state.pending.has(`area:${area.area}`);
  if (picker.dataset.max !== String(max) && !busy) {
    picker.dataset.max = String(max);
    const options = [];
    for (let n = 0; n <= max; n += 1) options.push(new Option(String(n), String(n)));
    picker.replaceChildren(...options);
  }
  const held = heldIn(area.area);
  // While a change is on its way the picker keeps the count asked for.
  if (!busy) picker.value = String(holding() ? held : state.want.get(area.area) || 0);
  picker.disabled = max === 0 || busy;
  picker.setAttribute("aria-busy", busy ? "true" : "false");
  box.querySelector(".area-mine").textContent = held ? `${held} held by you` : "";
  box.querySelector(".area-mine").hidden = !held;
}

function renderAreas() {
  const list = $("areas");
  list.textContent = "";
  state.areaEls.clear();
  for (const area of state.areas) {
    const box = areaBox(area);
    state.areaEls.set(area.area, box);
    list.appendChild(box);
  }
  list.hidden = state.areas.length === 0;
}

// A live change of an area's counts: deltas, a count not named did not change. The
// stream follows on from the map's `position`, so each change is added exactly once
// to the counts the map was read with.
function applyAreaChange(change) {
  const area = areaOf(change.area);
  if (!area) return;
  area.available += change.available || 0;
  area.held += change.held || 0;
  area.booked += change.booked || 0;
  const wanted = state.want.get(area.area) || 0;
  if (wanted > Math.max(0, area.available)) {
    say(`Only ${Math.max(0, area.available)} places are left in ${area.area} now: your choice was lowered.`);
  }
}

// The places chosen in an area: one line per place with a choice of the types sold for
// the area (default first), or one line for them all when there is nothing to choose.
function placeLines(list, area) {
  const count = state.want.get(area.area) || 0;
  if (!count) return;
  const types = typesFor(area);
  if (state.types.length > 1 && types.length > 1) {
    const chosen = state.placeTypes.get(area.area);
    for (let i = 0; i < count; i += 1) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = `${area.area} place ${i + 1}`;
      const select = document.createElement("select");
      select.dataset.placeTicket = area.area;
      select.dataset.index = String(i);
      select.setAttribute("aria-label", `Ticket type for place ${i + 1} in ${area.area}`);
      select.append(...types.map((t) => typeOption(t, area)));
      select.value = chosen[i];
      select.addEventListener("change", () => {
        chosen[i] = select.value;
        renderTotal(selection());
      });
      li.append(name, select);
      list.appendChild(li);
    }
  } else {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = `${area.area} × ${count}`;
    const price = document.createElement("span");
    const each = priceOf(area, state.placeTypes.get(area.area)[0]);
    price.textContent = each != null ? money(each * count) : "";
    li.append(name, price);
    list.appendChild(li);
  }
}

