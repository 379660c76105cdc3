// Two users on one show, in two browser contexts of headless Chromium: what one does,
// the other sees without reloading. Asserts on the DOM; screenshots go to target/browser.
//
// Then a show with venue inventory (sections, blocked seats, seat features, ticket
// types, a limit per buyer), which this test creates with the admin token: what the
// page draws, what it sends, and what the server then holds.
//
// Then a show with seats and a standing area (also created here): two seats and two
// places bought in one hold through the page, the area's count changing live on
// another page, and the refusals about areas explained.
//
//   BASE_URL=http://127.0.0.1:18090 SHOW_ID=1 ADMIN_TOKEN=... node seatmap.test.mjs
//
// scripts/test_browser.sh starts a server and a show, then runs this.
import assert from "node:assert/strict";
import { call, finish, seatState, shots, show, step, userPage, waitMessage, waitSeat } from "./helpers.mjs";

try {
  // A on a desktop screen, B on a phone-sized one.
  const a = await userPage("alice", { width: 1280, height: 800 });
  const b = await userPage("bob", { width: 390, height: 844 });

  await step("both pages show the seat map with the screen at the top", async () => {
    for (const p of [a, b]) {
      assert.equal(await seatState(p, "A1"), "available");
      const screen = await p.locator(".screen").boundingBox();
      const firstRow = await p.locator(".row").first().boundingBox();
      assert.ok(screen.y < firstRow.y, "the screen is above the rows");
    }
    const width = await b.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390 + 1, `the phone page does not scroll sideways (width ${width})`);
  });

  await step("A holds two seats; B sees them held without reloading", async () => {
    await a.click('[data-seat="A1"]');
    await a.keyboard.press("Tab"); // keyboard: focus moves to the next seat
    await a.keyboard.press("Enter");
    assert.equal(await seatState(a, "A1"), "selected");
    assert.equal(await seatState(a, "A2"), "selected");
    await a.click("#hold");
    await a.waitForSelector("#holdbox:not([hidden])");
    assert.match(await a.textContent("#held-seats"), /A1, A2/);
    assert.match(await a.textContent("#countdown"), /^\d+:\d\d$/);
    await waitSeat(a, "A1", "mine");
    await waitSeat(b, "A1", "held");
    await waitSeat(b, "A2", "held");
  });

  await step("B clicking a held seat gets a clear message", async () => {
    await b.click('[data-seat="A1"]');
    const message = await b.textContent("#message");
    assert.match(message, /A1 is held by someone else/);
    assert.equal(await seatState(b, "A1"), "held");
  });

  await a.screenshot({ path: `${shots}/alice-holding.png`, fullPage: true });
  await b.screenshot({ path: `${shots}/bob-sees-held.png`, fullPage: true });

  await step("A confirms; B sees the seats booked", async () => {
    await a.click("#confirm");
    await a.waitForSelector("#booked:not([hidden])");
    await waitSeat(b, "A1", "booked");
    await waitSeat(b, "A2", "booked");
    assert.equal(await seatState(a, "A1"), "booked");
  });

  await step("A's second hold is released; B sees the seats free again", async () => {
    await a.click('[data-seat="A5"]');
    await a.click('[data-seat="A6"]');
    await a.click("#hold");
    await waitSeat(b, "A5", "held");
    await waitSeat(b, "A6", "held");
    await a.click("#release");
    await waitSeat(b, "A5", "available");
    await waitSeat(b, "A6", "available");
    await waitSeat(a, "A5", "available");
  });

  await step("an error from the API is shown as a readable message", async () => {
    // The server runs with MAX_HOLD_SECONDS=600: extending by 600 s more is refused.
    await b.click('[data-seat="A8"]');
    await b.click("#hold");
    await b.waitForSelector("#holdbox:not([hidden])");
    await b.click("#extend");
    await b.waitForFunction(() => document.getElementById("message").textContent.includes("at most"));
    assert.match(await b.textContent("#message"), /A hold lives at most 600 seconds from its creation/);
    await b.click("#release");
    await waitSeat(b, "A8", "available");
  });

  await step("a selected seat taken by someone else is deselected with a message", async () => {
    await b.click('[data-seat="A10"]');
    assert.equal(await seatState(b, "A10"), "selected");
    const status = await a.evaluate(async (s) => {
      const r = await fetch(`/shows/${s}/holds`, {
        method: "POST",
        headers: { "X-User-Id": "carol", "Content-Type": "application/json" },
        body: JSON.stringify({ seats: ["A10"] }),
      });
      return r.status;
    }, show);
    assert.equal(status, 201);
    await waitSeat(b, "A10", "held");
    assert.match(await b.textContent("#message"), /A10 was just taken by someone else/);
  });

  await step("best available holds the best pair for B; A sees it held", async () => {
    // Two rows: the ideal (two thirds back) is row B; its centre pair is B6, B7.
    await b.fill("#best-count", "2");
    assert.equal(await b.isChecked("#best-adjacent"), true, "together by default");
    const categories = await b.$$eval("#best-category option", (os) => os.map((o) => o.value));
    assert.deepEqual(categories, ["", "standard"]);
    await b.click("#best-hold");
    await b.waitForSelector("#holdbox:not([hidden])");
    assert.match(await b.textContent("#held-seats"), /B6, B7/);
    await waitSeat(b, "B6", "mine");
    await waitSeat(a, "B6", "held");
    await waitSeat(a, "B7", "held");
    await b.screenshot({ path: `${shots}/bob-best-available.png`, fullPage: true });
    await b.click("#release");
    await waitSeat(a, "B6", "available");
  });

  await a.screenshot({ path: `${shots}/alice-after.png`, fullPage: true });
  await b.screenshot({ path: `${shots}/bob-after.png`, fullPage: true });

  // A show with two sections; 101-A8 blocked by the venue, a wheelchair space and its
  // companion seat in 101-A, a premium row that only adults are sold for, three seats
  // at most per buyer.
  const created = await call("POST", "/shows", {
    asAdmin: true,
    body: {
      title: "Venue inventory", starts_at: "2030-01-02T20:00:00Z", max_seats_per_user: 3,
      ticket_types: [
        { type: "adult", prices: { standard: 1200, premium: 1800 } },
        { type: "child", prices: { standard: 800 } },
      ],
      rows: [
        { row: "A", seats: 8, section: "101", features: { wheelchair: [1], companion: [2] }, blocked: [8] },
        { row: "B", seats: 8, section: "101" },
        { row: "A", seats: 6, section: "102", category: "premium", features: { restricted_view: [6] } },
      ],
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const venueShow = created.body.id;
  const d = await userPage("dora", { width: 1280, height: 800 }, venueShow, "101-A1");
  const selected = () => d.$$eval(".seat[data-state=selected]", (els) => els.map((e) => e.dataset.seat));
  const totalCents = () => d.getAttribute("#selection-total", "data-cents");

  await step("each section is drawn apart under its name, its rows together", async () => {
    const names = await d.$$eval(".section-name", (hs) => hs.map((h) => h.textContent));
    assert.deepEqual(names, ["Section 101", "Section 102"]);
    const rowsOf = (sec) => d.$$eval(`.section[data-section="${sec}"] .row`, (rs) => rs.map((r) => r.dataset.row));
    assert.deepEqual(await rowsOf("101"), ["A", "B"]);
    assert.deepEqual(await rowsOf("102"), ["A"]);
    assert.equal(await d.locator('.section[data-section="102"] [data-seat="102-A1"]').count(), 1);
    const first = await d.locator('.section[data-section="101"]').boundingBox();
    const second = await d.locator('.section[data-section="102"]').boundingBox();
    assert.ok(second.y >= first.y + first.height, "section 102 is below section 101, apart");
  });

  await step("a seat blocked by the venue is drawn blocked and clicking it selects nothing", async () => {
    assert.equal(await seatState(d, "101-A8"), "blocked");
    assert.match(await d.getAttribute('[data-seat="101-A8"]', "aria-label"), /not for sale/);
    const look = await d.$eval('[data-seat="101-A8"]', (el) => getComputedStyle(el).backgroundImage);
    assert.match(look, /repeating-linear-gradient/, "hatched");
    await d.click('[data-seat="101-A8"]');
    assert.match(await d.textContent("#message"), /101-A8 is not for sale/);
    assert.equal(await seatState(d, "101-A8"), "blocked");
    assert.deepEqual(await selected(), []);
    assert.equal(await d.isDisabled("#hold"), true);
  });

  await step("seat features are marked on the map and listed in the tooltip", async () => {
    assert.equal(await d.textContent('[data-seat="101-A1"] .mark.wheelchair'), "♿");
    assert.match(await d.getAttribute('[data-seat="101-A1"]', "title"), /wheelchair space/);
    assert.equal(await d.locator('[data-seat="101-A2"] .mark.companion').count(), 1);
    assert.match(await d.getAttribute('[data-seat="101-A2"]', "title"), /companion seat/);
    assert.equal(await d.locator('[data-seat="102-A6"] .mark.restricted_view').count(), 1);
    assert.match(await d.getAttribute('[data-seat="102-A6"]', "title"), /restricted view/);
    assert.equal(await d.locator('[data-seat="101-A3"] .mark').count(), 0, "no mark without a feature");
    assert.match(await d.textContent(".legend"), /Wheelchair space/);
  });

  await step("a child ticket changes the total, and the hold has it at its price", async () => {
    assert.match(await d.textContent("#limit"), /At most 3 seats per person/);
    await d.click('[data-seat="101-B1"]');
    await d.click('[data-seat="101-B2"]');
    assert.deepEqual(await selected(), ["101-B1", "101-B2"]);
    const offered = await d.$$eval('[data-ticket="101-B2"] option', (os) => os.map((o) => o.value));
    assert.deepEqual(offered, ["adult", "child"], "the default first");
    assert.equal(await d.inputValue('[data-ticket="101-B2"]'), "adult");
    assert.equal(await totalCents(), "2400");
    await d.selectOption('[data-ticket="101-B2"]', "child");
    assert.equal(await totalCents(), "2000");
    assert.match(await d.textContent("#selection-total"), /20[.,]00/);
    await d.click("#hold");
    await d.waitForSelector("#holdbox:not([hidden])");
    await waitSeat(d, "101-B2", "mine");
    assert.equal(await d.inputValue('[data-held-ticket="101-B2"]'), "child");
    const id = await d.evaluate((s) => localStorage.getItem(`booking.hold.dora.${s}`), venueShow);
    const hold = await call("GET", `/holds/${id}`, { user: "dora" });
    assert.equal(hold.status, 200);
    assert.deepEqual(hold.body.tickets, [
      { seat: "101-B1", type: "adult", price: 1200 },
      { seat: "101-B2", type: "child", price: 800 },
    ]);
    assert.equal(hold.body.total, 2000);
    // While a hold lives a click changes it (cart.test.mjs): choosing seats for a new
    // hold, as the next steps do, starts after it.
    await d.click("#release");
    await d.waitForSelector("#holdbox", { state: "hidden" });
    await waitSeat(d, "101-B2", "available");
  });

  await step("a seat offers only the types sold for its category; a refused type is explained", async () => {
    await d.click('[data-seat="102-A1"]');
    const offered = await d.$$eval('[data-ticket="102-A1"] option', (os) => os.map((o) => o.value));
    assert.deepEqual(offered, ["adult"], "child is not sold for premium seats");
    assert.equal(await totalCents(), "1800");
    // A page that offered child anyway (say, one made before a change): the server refuses.
    await d.$eval('[data-ticket="102-A1"]', (s) => {
      s.appendChild(new Option("child", "child"));
      s.value = "child";
      s.dispatchEvent(new Event("change"));
    });
    await d.click("#hold");
    await waitMessage(d, /not sold: child for seat 102-A1/);
    assert.equal(await seatState(d, "102-A1"), "selected", "nothing was held");
    await d.click('[data-seat="102-A1"]');
    assert.deepEqual(await selected(), []);
  });

  await step("the limit per buyer caps a selection and a refused hold says why", async () => {
    // dora holds 2 seats elsewhere (another device, say): this page has no hold of hers.
    const elsewhere = await call("POST", `/shows/${venueShow}/holds`,
      { user: "dora", body: { seats: ["101-B1", "101-B2"] } });
    assert.equal(elsewhere.status, 201, JSON.stringify(elsewhere.body));
    await waitSeat(d, "101-B2", "held");
    for (const l of ["101-B4", "101-B5", "101-B6"]) await d.click(`[data-seat="${l}"]`);
    await d.click('[data-seat="101-B7"]');
    assert.match(await d.textContent("#message"), /at most 3 seats for this show/);
    assert.deepEqual(await selected(), ["101-B4", "101-B5", "101-B6"]);
    await d.click("#hold"); // dora holds 2 already: 2 + 3 > 3
    await waitMessage(d, /at most 3 seats .* already have 2/);
    for (const l of ["101-B4", "101-B5", "101-B6"]) assert.equal(await seatState(d, l), "selected");
    const mine = await call("GET", `/shows/${venueShow}`);
    assert.equal(mine.body.held, 2, "nothing more was held");
    for (const l of ["101-B4", "101-B5", "101-B6"]) await d.click(`[data-seat="${l}"]`);
    assert.equal((await call("DELETE", `/holds/${elsewhere.body.hold_id}`, { user: "dora" })).status, 204);
  });

  await step("a block made meanwhile greys the seat live and drops it from the selection", async () => {
    await d.click('[data-seat="102-A3"]');
    assert.deepEqual(await selected(), ["102-A3"]);
    const block = await call("POST", `/shows/${venueShow}/blocks`,
      { asAdmin: true, body: { seats: ["102-A3"], reason: "camera" } });
    assert.equal(block.status, 201, JSON.stringify(block.body));
    await waitSeat(d, "102-A3", "blocked");
    assert.match(await d.textContent("#message"), /102-A3 was just withdrawn from sale/);
    assert.deepEqual(await selected(), []);
    await d.screenshot({ path: `${shots}/dora-venue.png`, fullPage: true });
    const gone = await call("DELETE", `/shows/${venueShow}/blocks/${block.body.block_id}`, { asAdmin: true });
    assert.equal(gone.status, 204);
    await waitSeat(d, "102-A3", "available");
  });

  // Seats and a standing area of 10 places: adults pay 5000 a seat and 3000 a place,
  // children are sold places only (1500); six seats or places at most per buyer.
  const gig = await call("POST", "/shows", {
    asAdmin: true,
    body: {
      title: "Gig", starts_at: "2030-01-03T20:00:00Z", max_seats_per_user: 6,
      rows: [{ row: "A", seats: 6 }],
      areas: [{ area: "FLOOR", capacity: 10, category: "standing" }],
      ticket_types: [
        { type: "adult", prices: { standard: 5000, standing: 3000 } },
        { type: "child", prices: { standing: 1500 } },
      ],
    },
  });
  assert.equal(gig.status, 201, JSON.stringify(gig.body));
  const gigShow = gig.body.id;
  const e = await userPage("erin", { width: 1280, height: 800 }, gigShow);
  const f = await userPage("frank", { width: 390, height: 844 }, gigShow);
  const floor = '.area[data-area="FLOOR"]'; // the area's box (a held place's line names its area too)
  const left = (p) => p.getAttribute(floor, "data-available");
  const waitLeft = (p, n) => p.waitForSelector(`${floor}[data-available="${n}"]`, { timeout: 10000 });
  const pickerMax = (p) => p.$$eval(`${floor} select option`, (os) => Math.max(...os.map((o) => Number(o.value))));
  const areasNow = async () => (await call("GET", `/shows/${gigShow}/areas`)).body.areas[0];
  const holds = [];
  e.on("request", (r) => {
    if (r.method() === "POST" && /\/shows\/[^/]+\/holds$/.test(new URL(r.url()).pathname)) holds.push(r.postDataJSON());
  });
  // Set on each page now: still there later means the page was not reloaded.
  for (const p of [e, f]) await p.evaluate(() => { window.notReloaded = true; });

  await step("a standing area is drawn beside the seats with what is left and a quantity picker", async () => {
    for (const p of [e, f]) {
      assert.equal(await left(p), "10");
      assert.match(await p.textContent(floor), /FLOOR.*standing/);
      assert.match(await p.textContent(`${floor} .area-left`), /^10 of 10 places left/);
      assert.equal(await pickerMax(p), 6, "the limit per buyer bounds the picker");
      const box = await p.locator(floor).boundingBox();
      const rows = await p.locator(".row").first().boundingBox();
      assert.ok(box.y > rows.y, "the area is drawn with the map, after the rows");
    }
    assert.match(await e.textContent(`${floor} .area-meta`), /standing, from .*15[.,]00/);
    const width = await f.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390 + 1, `the phone page does not scroll sideways (width ${width})`);
  });

  let gigHold;
  await step("2 seats and 2 places in one hold, a child place at its price; B sees the count drop live", async () => {
    await e.click('[data-seat="A1"]');
    await e.click('[data-seat="A2"]');
    assert.equal(await pickerMax(e), 4, "the picker leaves room for the 2 seats chosen");
    await e.selectOption(`${floor} select`, "2");
    const offered = await e.$$eval('[data-place-ticket="FLOOR"][data-index="1"] option', (os) => os.map((o) => o.value));
    assert.deepEqual(offered, ["adult", "child"], "the types sold for standing, the default first");
    assert.equal(await e.getAttribute("#selection-total", "data-cents"), String(2 * 5000 + 2 * 3000));
    await e.selectOption('[data-place-ticket="FLOOR"][data-index="1"]', "child");
    assert.equal(await e.getAttribute("#selection-total", "data-cents"), String(2 * 5000 + 3000 + 1500));
    assert.match(await e.textContent("#selection"), /A1, A2, 2 places in FLOOR/);
    // 2 seats and 4 places reach the limit of 6: a third seat is refused.
    await e.selectOption(`${floor} select`, "4");
    await e.click('[data-seat="A3"]');
    assert.match(await e.textContent("#message"), /at most 6 seats for this show \(the standing places you chose count too\)/);
    assert.equal(await seatState(e, "A3"), "available");
    await e.selectOption(`${floor} select`, "2");
    assert.equal(await e.inputValue('[data-place-ticket="FLOOR"][data-index="1"]'), "child", "the choice is kept");

    await e.click("#hold");
    await e.waitForSelector("#holdbox:not([hidden])");
    assert.equal(holds.length, 1, "one request");
    assert.deepEqual(holds[0].seats, ["A1", "A2"]);
    assert.deepEqual(holds[0].areas, { FLOOR: 2 });
    assert.deepEqual(holds[0].ticket_types, { FLOOR: ["adult", "child"] });
    assert.match(await e.textContent("#held-seats"), /^A1, A2, 2 places in FLOOR$/);
    const seatTickets = await e.$$eval("#held-tickets li:not([data-area])", (ls) => ls.map((l) => l.textContent));
    // Places sold as adult or child: each line is a choice of its type (cart.test.mjs).
    const placeTickets = await e.$$eval('#held-tickets li[data-area="FLOOR"]',
      (ls) => ls.map((l) => `${l.dataset.held} ${l.querySelector("select").selectedOptions[0].textContent}`));
    assert.equal(seatTickets.length, 2);
    assert.equal(placeTickets.length, 2);
    assert.match(placeTickets[0], /^FLOOR-\d+ adult .*30[.,]00/);
    assert.match(placeTickets[1], /^FLOOR-\d+ child .*15[.,]00/);
    assert.match(await e.textContent("#total"), /145[.,]00/);
    await waitSeat(e, "A1", "mine");
    // The other page: the count drops by 2 and the seats turn held, without reloading.
    await waitLeft(f, 8);
    await waitSeat(f, "A1", "held");
    await waitSeat(f, "A2", "held");
    await waitLeft(e, 8);
    assert.match(await e.textContent(`${floor} .area-mine`), /2 held by you/);
    assert.equal(await f.evaluate(() => window.notReloaded), true, "B's page was not reloaded");

    const id = await e.evaluate((s) => localStorage.getItem(`booking.hold.erin.${s}`), gigShow);
    gigHold = (await call("GET", `/holds/${id}`, { user: "erin" })).body;
    assert.deepEqual(gigHold.seats, ["A1", "A2"]);
    assert.deepEqual(gigHold.areas, { FLOOR: 2 });
    assert.deepEqual(gigHold.tickets.map((t) => [t.area || null, t.type, t.price]),
      [[null, "adult", 5000], [null, "adult", 5000], ["FLOOR", "adult", 3000], ["FLOOR", "child", 1500]]);
    assert.equal(gigHold.total, 14500);
    await e.screenshot({ path: `${shots}/erin-seats-and-places.png`, fullPage: true });
    await f.screenshot({ path: `${shots}/frank-sees-floor.png`, fullPage: true });
  });

  await step("A confirms: the booking has the 2 places; the count stays down on both pages", async () => {
    await e.click("#confirm");
    await e.waitForSelector("#booked:not([hidden])");
    const booked = await e.textContent("#booked");
    for (const t of gigHold.tickets) assert.ok(booked.includes(t.seat), `${t.seat} in "${booked}"`);
    await waitSeat(f, "A1", "booked");
    const counts = await areasNow();
    assert.deepEqual([counts.available, counts.held, counts.booked], [8, 0, 2]);
    assert.equal(await left(f), "8");
    assert.equal(await left(e), "8");
    assert.equal(await f.evaluate(() => window.notReloaded), true);
  });

  await step("places held and released come back live on the other page", async () => {
    await f.selectOption(`${floor} select`, "3");
    assert.match(await f.textContent("#selection"), /3 places in FLOOR/);
    await f.click("#hold");
    await f.waitForSelector("#holdbox:not([hidden])");
    assert.match(await f.textContent("#held-seats"), /^3 places in FLOOR$/);
    assert.equal(await f.locator('#held-tickets li[data-area="FLOOR"]').count(), 3);
    await waitLeft(e, 5);
    await waitLeft(f, 5);
    await f.click("#release");
    await f.waitForSelector("#holdbox", { state: "hidden" });
    await waitLeft(e, 8);
    await waitLeft(f, 8);
    assert.equal(await e.evaluate(() => window.notReloaded), true);
  });

  await step("a page that asks for more places than are left is told which area is short", async () => {
    // B stops following (a page whose live updates lag); meanwhile 6 places go to gina.
    await f.evaluate(() => state.events.close());
    const taken = await call("POST", `/shows/${gigShow}/holds`, { user: "gina", body: { areas: { FLOOR: 6 } } });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    await waitLeft(e, 2);
    assert.equal(await left(f), "8", "B has not heard of it");
    await f.selectOption(`${floor} select`, "3");
    await f.click("#hold");
    await waitMessage(f, /Not enough standing places left in FLOOR \(you asked for 3, 2 left\)/);
    assert.equal(await f.isHidden("#holdbox"), true, "nothing was held");
    assert.equal(await left(f), "2", "the map was reloaded");
    assert.equal(await pickerMax(f), 2);
    assert.equal(await f.inputValue(`${floor} select`), "2", "the choice is lowered to what is left");
    assert.equal((await areasNow()).held, 6, "nothing more was held");
    await f.screenshot({ path: `${shots}/frank-floor-short.png`, fullPage: true });
    await f.selectOption(`${floor} select`, "0");
    await f.evaluate(() => { document.getElementById("live").textContent = ""; follow(); });
    await f.waitForFunction(() => document.getElementById("live").textContent.includes("on"));
    const gone = await call("DELETE", `/holds/${taken.body.hold_id}`, { user: "gina" });
    assert.equal(gone.status, 204);
    await waitLeft(f, 8);
    await waitLeft(e, 8);
  });

  await step("an area the show does not have is refused clearly and the map reloaded", async () => {
    // A page drawn from an older map (the area was since removed, say).
    await e.evaluate(() => {
      state.areas.push({ area: "BALCONY", category: "standing", capacity: 5, available: 5, held: 0, booked: 0 });
      renderAreas();
      renderPanel();
    });
    await e.selectOption('[data-area="BALCONY"] select', "1");
    await e.click("#hold");
    await waitMessage(e, /no standing area BALCONY/);
    assert.equal(await e.locator('[data-area="BALCONY"]').count(), 0, "the reloaded map has no BALCONY");
    assert.equal(await e.isHidden("#holdbox"), true);
    assert.equal(await left(e), "8");
  });
  await finish();
} catch (e) {
  await finish(e);
}
