// The page as a cart for the current hold (issue 16): once a buyer holds seats, a click
// on a free seat adds it to that hold and a click on one of its seats takes it out, the
// standing area's picker adds and takes out places, and each ticket's type can be
// changed; the hold keeps its id and its expires_at throughout. Checked on the page and
// through GET /holds/{id}; another buyer's page follows live. Refusals are explained
// and leave the hold as it was.
//
//   BASE_URL=http://127.0.0.1:18090 SHOW_ID=1 ADMIN_TOKEN=... node cart.test.mjs
//
// scripts/test_browser.sh runs it after seatmap.test.mjs; it creates its own show.
import assert from "node:assert/strict";
import { call, finish, seatState, shots, step, userPage, waitMessage, waitSeat } from "./helpers.mjs";

try {
  // Adults pay 5000 a seat, 8000 a premium seat and 3000 a standing place; children
  // 2500 a seat and 1500 a place, and are not sold premium seats.
  const created = await call("POST", "/shows", {
    asAdmin: true,
    body: {
      title: "Cart", starts_at: "2030-01-04T20:00:00Z",
      rows: [{ row: "A", seats: 8 }, { row: "B", seats: 4, category: "premium" }],
      areas: [{ area: "FLOOR", capacity: 10, category: "standing" }],
      ticket_types: [
        { type: "adult", prices: { standard: 5000, premium: 8000, standing: 3000 } },
        { type: "child", prices: { standard: 2500, standing: 1500 } },
      ],
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const cartShow = created.body.id;
  const h = await userPage("hana", { width: 1280, height: 800 }, cartShow);
  const i = await userPage("ivan", { width: 390, height: 844 }, cartShow);
  const floor = '.area[data-area="FLOOR"]'; // the area's box (a held place's line names its area too)
  const waitLeft = (p, n) => p.waitForSelector(`${floor}[data-available="${n}"]`, { timeout: 10000 });
  const waitHeld = (text) => h.waitForFunction((t) => document.getElementById("held-seats").textContent === t,
    text, { timeout: 10000 });
  const waitTotal = (cents) => h.waitForSelector(`#total[data-cents="${cents}"]`, { timeout: 10000 });

  // What the page sends: changes of a hold, and holds made.
  const changes = [];
  const creates = [];
  h.on("request", (r) => {
    if (r.method() !== "POST") return;
    const path = new URL(r.url()).pathname;
    const change = path.match(/^\/holds\/[^/]+\/(add|remove|tickets)$/);
    if (change) changes.push({ op: change[1], body: r.postDataJSON(), key: r.headers()["idempotency-key"] });
    if (/^\/shows\/[^/]+\/holds$/.test(path)) creates.push(r.postDataJSON());
  });
  const lastChange = () => changes[changes.length - 1];
  const keys = new Set();
  const checkKey = (c) => {
    assert.match(c.key || "", /^page-[0-9a-f]{32}$/, "a change carries an Idempotency-Key");
    assert.ok(!keys.has(c.key), "a new key for each change");
    keys.add(c.key);
  };
  for (const p of [h, i]) await p.evaluate(() => { window.notReloaded = true; });

  let id;
  let first;
  const getHold = async () => {
    const got = await call("GET", `/holds/${id}`, { user: "hana" });
    assert.equal(got.status, 200, JSON.stringify(got.body));
    return got.body;
  };
  // The hold kept its id and expiry, on the server and on the page (the countdown's).
  const sameHold = async (hold) => {
    assert.equal(hold.hold_id, id);
    assert.equal(hold.status, "active");
    assert.equal(hold.expires_at, first.expires_at, "expires_at unchanged");
    assert.equal(await h.evaluate(() => state.hold.expires_at), first.expires_at, "the countdown's expiry unchanged");
    assert.equal(hold.total, hold.tickets.reduce((sum, t) => sum + (t.price || 0), 0));
    assert.equal(await h.getAttribute("#total", "data-cents"), String(hold.total), "the page shows the hold's total");
  };

  await step("2 seats held; a click on a free third seat adds it to the same hold, same expires_at", async () => {
    await h.click('[data-seat="A1"]');
    await h.click('[data-seat="A2"]');
    await h.click("#hold");
    await h.waitForSelector("#holdbox:not([hidden])");
    id = await h.evaluate((s) => localStorage.getItem(`booking.hold.hana.${s}`), cartShow);
    first = await getHold();
    assert.deepEqual(first.seats, ["A1", "A2"]);
    assert.equal(await h.isHidden("#hold"), true, "no second hold while this one lives");
    assert.equal(await h.isHidden("#best"), true);
    assert.match(await h.textContent("#selection"), /Click a free seat to add it to your hold/);

    await h.click('[data-seat="A3"]');
    await waitSeat(h, "A3", "mine");
    await waitHeld("A1, A2, A3");
    assert.equal(changes.length, 1);
    assert.equal(changes[0].op, "add");
    assert.deepEqual(changes[0].body, { seats: ["A3"] });
    checkKey(changes[0]);
    assert.equal(creates.length, 1, "no new hold was made");
    const now = await getHold();
    assert.deepEqual(now.seats, ["A1", "A2", "A3"]);
    assert.equal(now.total, 15000);
    await sameHold(now);
    assert.match(await h.textContent("#countdown"), /^\d+:\d\d$/);
    assert.match(await h.textContent("#message"), /Added A3/);
    await waitSeat(i, "A3", "held"); // the other page, live (cause add)
    assert.equal(await seatState(i, "A1"), "held");
  });

  await step("a click on one of the hold's seats takes it out: 2 seats", async () => {
    await h.click('[data-seat="A2"]');
    await waitSeat(h, "A2", "available");
    await waitHeld("A1, A3");
    assert.equal(lastChange().op, "remove");
    assert.deepEqual(lastChange().body, { seats: ["A2"] });
    checkKey(lastChange());
    const now = await getHold();
    assert.deepEqual(now.seats, ["A1", "A3"]);
    assert.equal(now.total, 10000);
    await sameHold(now);
    await waitSeat(i, "A2", "available"); // live (cause remove)
  });

  await step("changing a held seat's ticket type changes the total", async () => {
    const offered = await h.$$eval('[data-held-ticket="A3"] option', (os) => os.map((o) => o.value));
    assert.deepEqual(offered, ["adult", "child"]);
    assert.equal(await h.inputValue('[data-held-ticket="A3"]'), "adult");
    await h.selectOption('[data-held-ticket="A3"]', "child");
    await waitTotal(7500);
    assert.match(await h.textContent("#total"), /75[.,]00/);
    assert.equal(lastChange().op, "tickets");
    assert.deepEqual(lastChange().body, { ticket_types: { A3: "child" } });
    checkKey(lastChange());
    const now = await getHold();
    assert.deepEqual(now.tickets, [
      { seat: "A1", type: "adult", price: 5000 },
      { seat: "A3", type: "child", price: 2500 },
    ]);
    assert.equal(now.total, 7500);
    await sameHold(now);
    assert.equal(await h.inputValue('[data-held-ticket="A3"]'), "child");
  });

  await step("the standing area's picker adds places to the hold and takes them out", async () => {
    assert.equal(await h.inputValue(`${floor} select`), "0", "the picker shows the hold's places");
    await h.selectOption(`${floor} select`, "2");
    await waitHeld("A1, A3, 2 places in FLOOR");
    assert.equal(lastChange().op, "add");
    assert.deepEqual(lastChange().body, { areas: { FLOOR: 2 } });
    checkKey(lastChange());
    let now = await getHold();
    assert.deepEqual(now.areas, { FLOOR: 2 });
    assert.equal(now.total, 7500 + 2 * 3000);
    await sameHold(now);
    assert.equal(await h.inputValue(`${floor} select`), "2");
    assert.match(await h.textContent(`${floor} .area-mine`), /2 held by you/);
    await waitLeft(i, 8);
    await waitLeft(h, 8);

    // The second place as a child: the area's places are retyped in number order.
    const places = now.tickets.filter((t) => t.area === "FLOOR").map((t) => t.seat);
    await h.selectOption(`[data-held-ticket="${places[1]}"]`, "child");
    await waitTotal(7500 + 3000 + 1500);
    assert.deepEqual(lastChange().body, { ticket_types: { FLOOR: ["adult", "child"] } });
    now = await getHold();
    assert.deepEqual(now.tickets.filter((t) => t.area).map((t) => [t.seat, t.type]),
      [[places[0], "adult"], [places[1], "child"]]);
    await sameHold(now);
    await h.screenshot({ path: `${shots}/hana-cart.png`, fullPage: true });

    // Down to 1: the hold's highest-numbered place goes.
    await h.selectOption(`${floor} select`, "1");
    await waitHeld("A1, A3, 1 place in FLOOR");
    assert.equal(lastChange().op, "remove");
    assert.deepEqual(lastChange().body, { areas: { FLOOR: 1 } });
    now = await getHold();
    assert.deepEqual(now.areas, { FLOOR: 1 });
    assert.deepEqual(now.tickets.filter((t) => t.area).map((t) => [t.seat, t.type, t.price]),
      [[places[0], "adult", 3000]]);
    assert.equal(now.total, 7500 + 3000);
    await sameHold(now);
    await waitLeft(i, 9);
  });

  await step("a ticket type a seat is not sold as is refused, explained, and changes nothing", async () => {
    await h.click('[data-seat="B1"]'); // premium: adults only, so no choice is offered
    await waitHeld("A1, A3, B1, 1 place in FLOOR");
    assert.equal(await h.locator('[data-held-ticket="B1"]').count(), 0);
    assert.match(await h.textContent('#held-tickets li[data-held="B1"]'), /^B1 adult .*80[.,]00$/);
    const before = await getHold();
    // A page that offered child anyway (one drawn before a change of prices, say).
    await h.evaluate(() => retypeHeld(state.hold.tickets.find((t) => t.seat === "B1"), "child"));
    await waitMessage(h, /not sold: child for seat B1\. .*Your hold was not changed/);
    assert.deepEqual(await getHold(), before);
    await sameHold(before);
  });

  await step("an add the server refuses (the seat was taken meanwhile) is explained; the hold is unchanged", async () => {
    // Hana's page stops following, so it still draws A5 free when jack takes it.
    await h.evaluate(() => state.events.close());
    const taken = await call("POST", `/shows/${cartShow}/holds`, { user: "jack", body: { seats: ["A5"] } });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    await waitSeat(i, "A5", "held");
    assert.equal(await seatState(h, "A5"), "available", "hana's page has not heard of it");
    const before = await getHold();
    const shown = await h.textContent("#held-seats");
    await h.click('[data-seat="A5"]');
    await waitMessage(h, /Seat A5 is not free any more: someone else has it now\. Your hold was not changed\./);
    assert.equal(lastChange().op, "add");
    assert.deepEqual(lastChange().body, { seats: ["A5"] });
    assert.deepEqual(await getHold(), before, "the hold is as it was");
    await sameHold(before);
    assert.equal(await h.textContent("#held-seats"), shown);
    await waitSeat(h, "A5", "held"); // the map was read again
    assert.equal(await h.isVisible("#holdbox"), true);
    await h.screenshot({ path: `${shots}/hana-cart-refused.png`, fullPage: true });

    await h.evaluate(() => { document.getElementById("live").textContent = ""; follow(); });
    await h.waitForFunction(() => document.getElementById("live").textContent.includes("on"));
    assert.equal((await call("DELETE", `/holds/${taken.body.hold_id}`, { user: "jack" })).status, 204);
    await waitSeat(h, "A5", "available");
  });

  await step("taking out the last seat releases the hold; the page is back to choosing seats", async () => {
    await h.selectOption(`${floor} select`, "0");
    await waitHeld("A1, A3, B1");
    await h.click('[data-seat="B1"]');
    await waitHeld("A1, A3");
    await h.click('[data-seat="A1"]');
    await waitHeld("A3");
    await sameHold(await getHold());
    await h.click('[data-seat="A3"]');
    await h.waitForSelector("#holdbox", { state: "hidden" });
    await waitMessage(h, /Took A3 out: your hold had nothing left and was released/);
    assert.deepEqual(lastChange().body, { seats: ["A3"] });
    assert.equal((await getHold()).status, "released");
    assert.equal(await h.evaluate((s) => localStorage.getItem(`booking.hold.hana.${s}`), cartShow), null);
    await waitSeat(h, "A3", "available");
    await waitSeat(i, "A3", "available");
    await waitSeat(i, "A1", "available");
    await waitLeft(i, 10);
    assert.equal(await h.isVisible("#hold"), true);
    assert.equal(await h.isVisible("#best"), true);
    assert.equal(await h.inputValue(`${floor} select`), "0");
    assert.equal(await h.locator("#held-tickets li").count(), 0, "no ticket of the ended hold is left to change");
    // A click selects again, for a new hold.
    await h.click('[data-seat="A4"]');
    assert.equal(await seatState(h, "A4"), "selected");
    await h.click('[data-seat="A4"]');
    assert.equal(await seatState(h, "A4"), "available");
    assert.equal(creates.length, 1, "one hold made in all");
    assert.ok(changes.every((c) => /^page-[0-9a-f]{32}$/.test(c.key || "")), "every change had a key");
    assert.equal(new Set(changes.map((c) => c.key)).size, changes.length, "each its own");
    for (const p of [h, i]) assert.equal(await p.evaluate(() => window.notReloaded), true, "no page was reloaded");
  });

  await finish();
} catch (e) {
  await finish(e);
}
