// The waiting room of a queued show, in headless Chromium: a buyer joins the queue
// before sales open, sees that places are drawn at the start, follows their place as
// the server pushes it, and gets the seat map when admitted, with the allowance; a
// hold there counts against it. The test creates its show with the admin token.
//
//   BASE_URL=http://127.0.0.1:18090 SHOW_ID=1 ADMIN_TOKEN=... node queue.test.mjs
//
// scripts/test_browser.sh starts a server, then runs this.
import assert from "node:assert/strict";
import { browser, call, finish, shots, step } from "./helpers.mjs";
import { base } from "./helpers.mjs";

try {
  const created = await call("POST", "/shows", {
    asAdmin: true,
    body: {
      title: "Queue test", starts_at: "2030-01-01T20:00:00Z", prices: { standard: 1500 },
      rows: [{ row: "A", seats: 8 }],
      sales_start: new Date(Date.now() + 3600_000).toISOString(),
      queue: { admit_per_minute: 600, admission_minutes: 10, max_seats: 2 },
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(() => localStorage.setItem("booking.user", "quinn"));
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`[quinn] page error: ${e.message}`));
  await page.goto(`${base}/?show=${id}`);

  await step("a queued show opens on its waiting room, not on the map", async () => {
    await page.waitForSelector("#queue:not([hidden])");
    assert.ok(await page.isHidden("#stage"), "the map is hidden");
    assert.match(await page.textContent("#queue-text"), /waiting room/);
    assert.ok(await page.isVisible("#queue-join"));
  });

  await step("joining before the start says places are drawn at the start", async () => {
    await page.click("#queue-join");
    await page.waitForFunction(() => /drawn at random/.test(document.getElementById("queue-text").textContent));
    assert.ok(await page.isHidden("#queue-join"), "no second join button");
    const me = await call("GET", `/shows/${id}/queue/me`, { user: "quinn" });
    assert.equal(me.status, 200);
    assert.equal(me.body.state, "waiting");
  });
  await page.screenshot({ path: `${shots}/queue-waiting.png`, fullPage: true });

  await step("at the start the buyer is admitted and the map opens by itself", async () => {
    const r = await call("PATCH", `/shows/${id}`, {
      asAdmin: true, body: { sales_start: new Date(Date.now() - 1000).toISOString() },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await page.waitForSelector('[data-seat="A1"]', { timeout: 15000 });
    assert.ok(await page.isHidden("#queue"), "the waiting room is gone");
    await page.waitForSelector("#allowance:not([hidden])");
    assert.match(await page.textContent("#allowance"), /up to 2 seats \(0 taken\)/);
  });

  await step("a hold counts against the allowance", async () => {
    await page.waitForFunction(() => document.getElementById("live").textContent.includes("on"));
    await page.click('[data-seat="A1"]');
    await page.click("#hold");
    await page.waitForSelector("#holdbox:not([hidden])");
    await page.waitForFunction(() => /\(1 taken\)/.test(document.getElementById("allowance").textContent),
      null, { timeout: 10000 });
  });
  await page.screenshot({ path: `${shots}/queue-admitted.png`, fullPage: true });

  await step("another buyer who did not queue cannot hold", async () => {
    const r = await call("POST", `/shows/${id}/holds`, { user: "stranger", body: { seats: ["A5"] } });
    assert.equal(r.status, 403);
    assert.equal(r.body.error, "not_admitted");
  });
  await finish();
} catch (e) {
  await finish(e);
}
