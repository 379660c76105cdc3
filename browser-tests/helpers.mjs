// What the browser tests share: headless Chromium, the steps and their tally, a user's
// page on a show, and the API straight from Node. scripts/test_browser.sh sets BASE_URL,
// SHOW_ID, ADMIN_TOKEN, CHROMIUM and SHOT_DIR.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

export const base = process.env.BASE_URL;
export const show = process.env.SHOW_ID;
export const admin = process.env.ADMIN_TOKEN;
export const shots = process.env.SHOT_DIR || "../target/browser";
assert.ok(base && show && admin, "set BASE_URL, SHOW_ID and ADMIN_TOKEN");
mkdirSync(shots, { recursive: true });

export const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

let passed = 0;
let failed = 0;
const told = new WeakSet(); // errors a step printed already
export async function step(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAILED - ${name}\n${e.stack || e}`);
    if (e instanceof Object) told.add(e);
    throw e;
  }
}

// What the page's Content-Security-Policy refused (Chromium says so on the console):
// the page must run under it untouched, so any refusal fails the test at `finish`.
const refusedByPolicy = [];
export function watchPolicy(page, who) {
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) refusedByPolicy.push(`[${who}] ${m.text()}`);
  });
}

// Closes the browser, prints the tally and exits: 1 when a step failed or the test
// stopped with `error` (thrown outside a step), or the page's policy refused anything.
export async function finish(error) {
  for (const r of refusedByPolicy) console.log(`FAILED - refused by the page's policy: ${r}`);
  if (refusedByPolicy.length) failed += 1;
  if (error) {
    failed = Math.max(failed, 1);
    if (!(error instanceof Object && told.has(error))) console.log(`stopped: ${error.stack || error}`);
  }
  await browser.close();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

export async function userPage(user, viewport, showId = show, firstSeat = "A1") {
  const context = await browser.newContext({ viewport });
  await context.addInitScript((u) => localStorage.setItem("booking.user", u), user);
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`[${user}] page error: ${e.message}`));
  watchPolicy(page, user);
  await page.goto(`${base}/?show=${showId}`);
  await page.waitForSelector(`[data-seat="${firstSeat}"]`);
  await page.waitForFunction(() => document.getElementById("live").textContent.includes("on"));
  return page;
}

export const seatState = (page, label) => page.getAttribute(`[data-seat="${label}"]`, "data-state");
export const waitSeat = (page, label, state) =>
  page.waitForSelector(`[data-seat="${label}"][data-state="${state}"]`, { timeout: 10000 });
export const waitMessage = (page, pattern) =>
  page.waitForFunction((p) => new RegExp(p).test(document.getElementById("message").textContent),
    pattern.source, { timeout: 10000 });

// The API straight from Node: admin calls carry the token, buyer calls a user id.
export async function call(method, path, { body, user, asAdmin } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (user) headers["X-User-Id"] = user;
  if (asAdmin) headers.Authorization = `Bearer ${admin}`;
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
