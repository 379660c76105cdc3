// The show's terms on the seat-map page: the ticket types sold for a seat and their
// prices, seat features, the most a hold may have, and the sales window. Plain
// functions over app.js's `state`, loaded before app.js (they run only once it is).

// ---- Ticket types and features ------------------------------------------------

// The types sold for a seat (those pricing its category), the default first.
function typesFor(seat) {
  return state.types.filter((t) => Object.prototype.hasOwnProperty.call(t.prices, seat.category));
}

// A seat's price as `type` (null: sold at no price).
function priceOf(seat, type) {
  const t = state.types.find((x) => x.type === type);
  return t ? t.prices[seat.category] : seat.price;
}

// A choice of ticket type for a seat or area: the type and its price there.
function typeOption(t, item) {
  const price = t.prices[item.category];
  return new Option(`${t.type} — ${price != null ? money(price) : "no price"}`, t.type);
}

function onSale(seat) {
  return state.types.length === 0 || typesFor(seat).length > 0;
}

function featureNames(seat) {
  return (seat.features || []).map((f) => (FEATURES[f] ? FEATURES[f].name : f.replace(/_/g, " ")));
}

// Tickets of a hold or booking, as text: "A1 adult €12.00, A2 child €8.00".
function ticketText(t) {
  const type = state.types.length > 1 ? ` ${t.type}` : "";
  const price = t.price != null ? ` ${money(t.price)}` : "";
  return `${t.seat}${type}${price}`;
}

function ticketsOf(h) {
  return h.tickets || h.seats.map((seat) => ({ seat }));
}

// The most seats one selection (or hold) may have, standing places included.
function cap() {
  return state.limit ? Math.min(MAX_SEATS, state.limit) : MAX_SEATS;
}

// Whether the buyer has a hold to change: the map is then its cart.
function holding() {
  return Boolean(state.hold && state.hold.status === "active");
}

// The seats and places a hold has.
function heldCount(h) {
  return h.seats.length + placesHeld(h);
}

// ---- The sales window ---------------------------------------------------------

// What the show's window or cancellation means to a buyer, in a sentence.
function saleText(sale) {
  const when = (t) => new Date(t).toLocaleString();
  if (sale.status === "cancelled") return "This show was cancelled.";
  if (sale.status === "not_on_sale") {
    if (sale.sales_start && new Date(sale.sales_start) > new Date()) return `Not on sale yet: sales open ${when(sale.sales_start)}.`;
    if (sale.sales_end) return `Not on sale: sales closed ${when(sale.sales_end)}.`;
    return "Not on sale.";
  }
  return sale.sales_end ? `On sale until ${when(sale.sales_end)}.` : "";
}

// Shows the window above the map (hidden while on sale without an end); `panel`: also
// redraw the panel (its hold buttons), once a map is loaded.
function renderSale(panel = true) {
  const box = $("sale");
  const text = state.sale ? saleText(state.sale) : "";
  box.textContent = text;
  box.hidden = !text;
  box.classList.toggle("cancelled", Boolean(state.sale && state.sale.status === "cancelled"));
  if (panel) renderPanel();
}
