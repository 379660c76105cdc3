// The page against a server in AUTH_MODE=jwt (issue 19): "You are" takes a token, the
// page shows the user the server says it names, holds and confirms with
// Authorization: Bearer, and another user's page follows live (the event stream is
// public: EventSource needs no header). A refused token is explained.
//
//   BASE_URL=http://127.0.0.1:18091 ADMIN_TOKEN=... JWT_SECRET=... node jwt.test.mjs
//
// scripts/test_browser.sh starts that second server and runs this; it creates its own
// show with the admin token, and signs its tokens (HS256) with JWT_SECRET here.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { browser, call, finish, seatState, shots, step, waitMessage, waitSeat } from "./helpers.mjs";

const secret = process.env.JWT_SECRET;
assert.ok(secret, "set JWT_SECRET");
const base = process.env.BASE_URL;

const b64 = (s) => Buffer.from(s).toString("base64url");
function token(sub, ttl = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64(JSON.stringify({ sub, iat: now, exp: now + ttl }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

// A page whose tab holds `t` in sessionStorage (as if pasted before), or none.
async function tokenPage(t, showId, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  if (t) await context.addInitScript((v) => sessionStorage.setItem("booking.token", v), t);
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`[page] page error: ${e.message}`));
  await page.goto(`${base}/?show=${showId}`);
  await page.waitForSelector('[data-seat="A1"]');
  await page.waitForFunction(() => document.getElementById("live").textContent.includes("on"));
  return page;
}

try {
  const created = await call("POST", "/shows", {
    asAdmin: true,
    body: {
      title: "Signed", starts_at: "2030-01-05T20:00:00Z", prices: { standard: 1500 },
      rows: [{ row: "A", seats: 6 }],
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const showId = created.body.id;
  const j = await tokenPage(token("jana"), showId);
  const k = await tokenPage("", showId, { width: 390, height: 844 });

  await step("the page asks for a token and shows whom it names", async () => {
    assert.equal(await j.getAttribute("#user", "type"), "password");
    await j.waitForFunction(() => document.getElementById("whoami").textContent === "signed in as jana");
    assert.match(await k.textContent("#whoami"), /no token/);
  });

  await step("holding without a token is refused with a readable message", async () => {
    await k.click('[data-seat="A3"]');
    await k.click("#hold");
    await waitMessage(k, /Authorization: Bearer/);
    assert.equal(await seatState(k, "A3"), "selected");
  });

  await step("a pasted token signs in; an expired one is refused and explained", async () => {
    await k.fill("#user", token("kim", -600));
    await k.dispatchEvent("#user", "change");
    await k.waitForFunction(() => document.getElementById("whoami").textContent === "token refused");
    await waitMessage(k, /expired/);
    await k.fill("#user", token("kim"));
    await k.dispatchEvent("#user", "change");
    await k.waitForFunction(() => document.getElementById("whoami").textContent === "signed in as kim");
    assert.equal(await k.evaluate(() => sessionStorage.getItem("booking.token")) !== null, true);
  });

  await step("a hold is made with the bearer token and followed live by the other page", async () => {
    const sent = [];
    j.on("request", (r) => {
      if (r.method() === "POST") sent.push(r.headers());
    });
    await j.click('[data-seat="A1"]');
    await j.click("#hold");
    await j.waitForSelector("#holdbox:not([hidden])");
    await waitSeat(j, "A1", "mine");
    await waitSeat(k, "A1", "held");
    assert.ok(sent.length > 0 && sent.every((h) => /^Bearer /.test(h.authorization || "")), "Bearer on every POST");
    assert.ok(sent.every((h) => !("x-user-id" in h)), "no X-User-Id in jwt mode");
    const holds = await call("GET", `/shows/${showId}/holds`, { asAdmin: true });
    assert.equal(holds.status, 200, JSON.stringify(holds.body));
    assert.deepEqual(holds.body.holds.map((h) => h.user_id), ["jana"]);
  });

  await step("confirming works; the other page sees the seat booked", async () => {
    await j.click("#confirm");
    await j.waitForSelector("#booked:not([hidden])");
    await waitSeat(k, "A1", "booked");
  });

  await j.screenshot({ path: `${shots}/jwt-jana-booked.png`, fullPage: true });
  await finish();
} catch (e) {
  await finish(e);
}
