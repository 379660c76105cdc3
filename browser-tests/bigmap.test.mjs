// A stadium: a 100,000-seat show (500 rows of 200), created here with the admin token,
// opened in headless Chromium. The page reads the compact map (compressed), draws it
// on one canvas rather than 100,000 buttons, holds a seat clicked on the canvas, and
// shows another user's hold (made through the API) as it happens. Asserts on what the
// page exposes read-only for tests (window.bookingMap: each seat's state in the page
// and the colour drawn for it on the canvas) and on the DOM.
//
//   BASE_URL=http://127.0.0.1:18090 SHOW_ID=1 ADMIN_TOKEN=... node bigmap.test.mjs
//
// scripts/test_browser.sh starts a server, then runs this.
import assert from "node:assert/strict";
import { base, browser, call, finish, shots, step, watchPolicy } from "./helpers.mjs";

const letter = (n) => String.fromCharCode(65 + (n % 26));
const rowLabel = (i) => (i < 26 ? letter(i) : `${letter(Math.floor((i - 26) / 26))}${letter(i - 26)}`);

try {
  const rows = Array.from({ length: 500 }, (_, i) => ({ row: rowLabel(i), seats: 200, aisles_after: [50, 150] }));
  const created = await call("POST", "/shows", {
    asAdmin: true,
    body: { title: "Stadium", starts_at: "2030-06-01T20:00:00Z", prices: { standard: 5000 }, rows },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const stadium = created.body.id;

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(() => localStorage.setItem("booking.user", "dana"));
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`[dana] page error: ${e.message}`));
  watchPolicy(page, "dana");
  await page.goto(`${base}/?show=${stadium}`);
  await page.waitForSelector('canvas[data-seats="100000"]', { timeout: 60000 });
  await page.waitForFunction(() => document.getElementById("live").textContent.includes("on"), null, { timeout: 30000 });
  const seatState = (label) => page.evaluate((l) => window.bookingMap.seatState(l), label);
  const drawn = (label) => page.evaluate((l) => window.bookingMap.drawnState(l), label);
  const waitSeat = (label, state) => page.waitForFunction(
    ([l, s]) => window.bookingMap.seatState(l) === s && window.bookingMap.drawnState(l) === s,
    [label, state], { timeout: 15000 });

  await step("the stadium is drawn on one canvas from the compact map, compressed", async () => {
    assert.equal(await page.evaluate(() => window.bookingMap.big()), true);
    assert.equal(await page.locator("button.seat").count(), 0, "no button per seat");
    assert.equal(await seatState("A1"), "available");
    assert.equal(await drawn("A1"), "available");
    const sizes = await page.evaluate(() => performance.getEntriesByType("resource")
      .filter((e) => e.name.includes("/seats?format=compact"))
      .map((e) => ({ encoded: e.encodedBodySize, decoded: e.decodedBodySize })));
    assert.ok(sizes.length >= 1, "the page read the compact map");
    const { encoded, decoded } = sizes[sizes.length - 1];
    console.log(`# compact map: ${encoded} bytes on the wire, ${decoded} decoded`);
    assert.ok(encoded < decoded, "sent compressed");
    assert.ok(encoded <= 300 * 1024, `at most 300 KB on the wire (${encoded})`);
  });

  await step("a seat clicked on the canvas is held, and the server has it", async () => {
    const p = await page.evaluate(() => window.bookingMap.point("A1"));
    await page.mouse.click(p.x, p.y);
    await waitSeat("A1", "selected");
    await page.click("#hold");
    await page.waitForSelector("#holdbox:not([hidden])");
    assert.match(await page.textContent("#held-seats"), /A1/);
    await waitSeat("A1", "mine");
    const map = await call("GET", `/shows/${stadium}/seats?format=compact`);
    assert.equal(map.body.state_names[Number(map.body.states[0])], "held");
  });

  await step("another user's hold through the API appears on the canvas live", async () => {
    const far = `${rowLabel(300)}120`;
    assert.equal(await seatState(far), "available");
    const held = await call("POST", `/shows/${stadium}/holds`, { user: "erin", body: { seats: [far, `${rowLabel(300)}121`] } });
    assert.equal(held.status, 201, JSON.stringify(held.body));
    await waitSeat(far, "held");
    await waitSeat(`${rowLabel(300)}121`, "held");
    assert.equal(await seatState("A1"), "mine", "ours is still ours");
    await call("DELETE", `/holds/${held.body.hold_id}`, { user: "erin" });
    await waitSeat(far, "available");
  });

  await step("clicking a seat held by someone else explains it", async () => {
    const held = await call("POST", `/shows/${stadium}/holds`, { user: "erin", body: { seats: ["B7"] } });
    assert.equal(held.status, 201);
    await waitSeat("B7", "held");
    await page.click("#release");
    await waitSeat("A1", "available");
    const p = await page.evaluate(() => window.bookingMap.point("B7"));
    await page.mouse.click(p.x, p.y);
    await page.waitForFunction(() => /B7 is held by someone else/.test(document.getElementById("message").textContent));
    assert.equal(await seatState("B7"), "held");
  });

  await step("the keyboard moves from seat to seat on the canvas and chooses one", async () => {
    await page.focus(".bigmap canvas"); // the cursor is where the last click was: B7
    await page.keyboard.press("ArrowRight"); // B7 -> B8
    await page.keyboard.press("ArrowDown"); // B8 -> C8
    assert.match(await page.getAttribute(".bigmap canvas", "aria-label"), /^C8, standard/);
    await page.keyboard.press("Enter");
    await waitSeat("C8", "selected");
    await page.keyboard.press("Enter"); // again: deselected
    await waitSeat("C8", "available");
  });

  await page.screenshot({ path: `${shots}/stadium.png` });
  await finish();
} catch (e) {
  await finish(e);
}
