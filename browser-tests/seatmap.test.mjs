// Two users on one show, in two browser contexts of headless Chromium: what one does,
// the other sees without reloading. Asserts on the DOM; screenshots go to target/browser.
//
//   BASE_URL=http://127.0.0.1:18090 SHOW_ID=1 node seatmap.test.mjs
//
// scripts/test_browser.sh starts a server and a show, then runs this.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const base = process.env.BASE_URL;
const show = process.env.SHOW_ID;
const shots = process.env.SHOT_DIR || "../target/browser";
assert.ok(base && show, "set BASE_URL and SHOW_ID");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

let passed = 0;
let failed = 0;
async function step(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAILED - ${name}\n${e.stack || e}`);
    throw e;
  }
}

async function userPage(user, viewport) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript((u) => localStorage.setItem("booking.user", u), user);
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`[${user}] page error: ${e.message}`));
  await page.goto(`${base}/?show=${show}`);
  await page.waitForSelector('[data-seat="A1"]');
  await page.waitForFunction(() => document.getElementById("live").textContent.includes("on"));
  return page;
}

const seatState = (page, label) => page.getAttribute(`[data-seat="${label}"]`, "data-state");
const waitSeat = (page, label, state) =>
  page.waitForSelector(`[data-seat="${label}"][data-state="${state}"]`, { timeout: 10000 });

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
} catch (e) {
  failed = Math.max(failed, 1);
} finally {
  await browser.close();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
