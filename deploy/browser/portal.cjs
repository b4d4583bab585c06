// The partner portal in headless Chromium, as a partner uses it (see
// deploy/browser.sh). Each step asserts what the partner must see; the
// first failure stops the run with its step's name.
"use strict";
const { chromium } = require("playwright-core");
const http = require("node:http");
const assert = require("node:assert/strict");
const path = require("node:path");

const GATEWAY = process.env.GATEWAY;
const SHOTS = process.env.SCREENSHOTS;
const TYPE = "6";

async function api(method, route, key, body) {
  const response = await fetch(GATEWAY + route, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function newPartner(name) {
  const created = await api("POST", "/v1/admin/partners", process.env.ADMIN_KEY, { name });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { id: created.body.partner.partnerUniqueId, key: created.body.apiKey.token };
}

// A local webhook receiver: records each request, answers 204.
function receiver() {
  const arrivals = [];
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      arrivals.push({ headers: request.headers, body });
      response.statusCode = 204;
      response.end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ server, arrivals, port: server.address().port })),
  );
}

async function until(what, check, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// A datetime-local value (UTC) `offset` milliseconds from now.
const minute = (offset) => new Date(Date.now() + offset).toISOString().slice(0, 16);

let current = "start";
function step(name) {
  current = name;
  console.log(`browser: ${name}`);
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

// axe-core's WCAG 2 A and AA rules on the page: no serious or critical
// violation (contrast, names, roles, landmarks), and every form control
// has a label a screen reader announces.
async function accessible(page) {
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
    return results.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  assert.deepEqual(violations, [], `accessibility violations on ${page.url()}`);
  await labelled(page);
}

async function labelled(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
      .map((e) => e.outerHTML),
  );
  assert.deepEqual(unlabelled, [], `unlabelled controls on ${page.url()}`);
}

async function signIn(context, key) {
  const page = await context.newPage();
  await page.goto(`${GATEWAY}/portal`);
  assert.match(page.url(), /\/portal\/sign-in$/);
  // By keyboard: focus the field, type, Enter.
  await page.getByLabel("API key").focus();
  await page.keyboard.type(key);
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/portal\/callbacks$/);
  return page;
}

async function partnerA(browser, a, hooks) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: GATEWAY });
  const external = [];
  context.on("request", (r) => {
    if (!r.url().startsWith(GATEWAY)) external.push(r.url());
  });
  step("sign in (keyboard)");
  const page = await signIn(context, a.key);
  await page.getByText("No callbacks yet").waitFor();
  await accessible(page);
  await shot(page, "callbacks-empty");

  step("a refused URL, explained");
  await page.getByRole("link", { name: "Register a callback" }).click();
  await page.getByLabel("Notification type").selectOption(TYPE);
  await page.getByLabel("Callback URL").fill("https://10.0.0.1/hook");
  await page.getByRole("button", { name: "Register" }).click();
  await page.getByRole("alert").getByText("private address").waitFor();
  await accessible(page);
  await shot(page, "register-refused");

  step("register a callback");
  await page.getByLabel("Callback URL").fill(`http://127.0.0.1:${hooks.port}/hook`);
  await page.getByRole("button", { name: "Register" }).click();
  await page.waitForURL(new RegExp(`/portal/callbacks/${TYPE}\\?done=saved$`));
  await page.getByText("Saved: the next event goes to this URL.").waitFor();
  await accessible(page);
  await shot(page, "callback");

  step("fire an echo; it arrives and its attempt shows");
  await page.getByRole("button", { name: "Send test notification" }).click();
  await page.waitForURL(/\/portal\/deliveries\/[0-9a-f-]+$/);
  const delivery = page.url().split("/").pop();
  await until("the echo at the receiver", () => hooks.arrivals.length >= 1);
  assert.equal(hooks.arrivals[0].headers["partner-callbacks-test"], "true");
  await until("the attempt on the page", async () => {
    await page.reload();
    return (await page.locator("td", { hasText: /^204$/ }).count()) > 0;
  });
  await accessible(page);
  await shot(page, "delivery");

  step("pause and resume");
  await page.goto(`${GATEWAY}/portal/callbacks/${TYPE}`);
  await page.getByRole("button", { name: "Pause deliveries" }).click();
  await page.getByText("Paused: events are kept").waitFor();
  await page.getByRole("button", { name: "Resume deliveries" }).click();
  await page.getByText("Resumed: waiting events are on their way.").waitFor();

  step("reveal, copy and rotate the secret");
  await page.getByRole("link", { name: "Reveal secret" }).click();
  const first = (await page.locator("#secret").textContent()).trim();
  assert.match(first, /^whsec_/);
  await page.getByRole("button", { name: "Copy" }).click();
  await page.getByRole("button", { name: /Copied|Selected/ }).waitFor();
  await page.getByRole("button", { name: "Rotate secret" }).click();
  await page.getByText("Rotated:").waitFor();
  const second = (await page.locator("#secret").textContent()).trim();
  assert.match(second, /^whsec_/);
  assert.notEqual(second, first);

  step("browse deliveries and redeliver one");
  await page.getByRole("link", { name: "Deliveries", exact: true }).click();
  await page.getByLabel("Notification type").selectOption(TYPE);
  // Published in the future: nothing yet.
  await page.getByLabel("Published from (UTC)").fill(minute(3600 * 1000));
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByText("No deliveries here yet.").waitFor();
  await page.getByLabel("Published from (UTC)").fill(minute(-3600 * 1000));
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByRole("link", { name: delivery }).waitFor();
  await accessible(page);
  await shot(page, "deliveries");
  await page.getByRole("link", { name: delivery }).click();
  await page.getByRole("button", { name: "Redeliver" }).click();
  await page.getByText("Scheduled again").waitFor();
  await until("the redelivery at the receiver", () => hooks.arrivals.length >= 2);

  step("a recovery's dry run");
  await page.getByRole("link", { name: "Recover" }).click();
  await page.getByLabel("From (UTC)").fill(minute(-3600 * 1000));
  await page.getByLabel("Until (UTC)").fill(minute(60 * 1000));
  await page.getByRole("button", { name: "Dry run" }).click();
  await page.getByText("would be sent again").waitFor();
  await accessible(page);
  await shot(page, "recover");

  step("the catalogue and the API reference");
  await page.getByRole("link", { name: "Notification types" }).click();
  await page.getByText("Payload schema").first().waitFor();
  await accessible(page);
  await shot(page, "catalogue");
  await page.goto(`${GATEWAY}/docs`);
  await page.getByText("PUT /{partnerUniqueID}/callbacks/{notificationType}").first().waitFor();
  await shot(page, "docs", false);
  assert.deepEqual(external, [], "the portal loads nothing from elsewhere");
  await context.close();
  return delivery;
}

async function phone(browser, a) {
  step("a phone-sized screen");
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  const page = await signIn(context, a.key);
  const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the callbacks page is ${overflow}px wider than the screen`);
  await shot(page, "phone-callbacks");
  await context.close();
}

async function partnerB(browser, a, b, delivery) {
  step("partner B opens a portal link an operator minted, and sees nothing of A's");
  const minted = await api("POST", `/v1/admin/partners/${b.id}/portal-links`, process.env.ADMIN_KEY, {
    expiresInSeconds: 600,
  });
  assert.equal(minted.status, 201, JSON.stringify(minted.body));
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(GATEWAY + minted.body.link);
  await page.getByRole("button", { name: "Open the portal" }).click();
  await page.waitForURL(/\/portal\/callbacks$/);
  await page.getByText("No callbacks yet").waitFor();
  for (const route of [`/portal/callbacks/${TYPE}`, `/portal/deliveries/${delivery}`, `/portal/callbacks/${TYPE}/secret`]) {
    const response = await page.goto(GATEWAY + route);
    assert.equal(response.status(), 404, route);
    const html = await page.content();
    assert.ok(!html.includes(a.id) && !html.includes("whsec_"), `${route} shows A's data`);
  }
  await context.close();
}

async function main() {
  const hooks = await receiver();
  const a = await newPartner("Browser test A");
  const b = await newPartner("Browser test B");
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox"] });
  try {
    const delivery = await partnerA(browser, a, hooks);
    await phone(browser, a);
    await partnerB(browser, a, b, delivery);
  } finally {
    await browser.close();
    hooks.server.close();
  }
  console.log(`browser: every step passed; screenshots in ${SHOTS}`);
}

main().catch(async (error) => {
  console.error(`browser: FAILED at "${current}": ${error.stack || error}`);
  process.exit(1);
});
