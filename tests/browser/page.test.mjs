// The status page in a real browser: headless Chromium (Debian's chromium, driven by
// playwright-core) against the served demo, and against a service over the demo's files
// with one table and subscriber in every state.
//
// Expected figures come from the demo's SQLite files through the sqlite3 client, not from
// the service under test. Run by scripts/test.sh; alone:
//   DRIFTWATCH_BIN=target/debug/driftwatch node --test tests/browser/page.test.mjs
// DRIFTWATCH_UPDATE_SCREENSHOT=1 also writes the screenshot to docs/status-page.png.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { PNG } from "pngjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const BIN = process.env.DRIFTWATCH_BIN || path.join(repo, "target/debug/driftwatch");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TOKEN = "browser-test-token";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dw-browser-"));
const children = [];
let browser;
let demo; // base URL of `driftwatch demo`
let mixed; // base URL of the service with every state, behind a token

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function start(args, log) {
  const out = fs.openSync(path.join(tmp, log), "w");
  const child = spawn(BIN, args, { stdio: ["ignore", out, out] });
  children.push(child);
  return child;
}

function sqlite(db, sql) {
  return execFileSync("sqlite3", ["-batch", "-noheader", "-separator", "|", db, sql], { encoding: "utf8" }).trim();
}

async function status(base, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const r = await fetch(`${base}/api/v1/status`, { headers });
  if (!r.ok) throw new Error(`${r.status}`);
  return r.json();
}

/** Polls `f` until it returns a truthy value, for at most `seconds`. */
async function until(what, seconds, f) {
  const end = Date.now() + seconds * 1000;
  let last;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${seconds} s waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

const demoDir = path.join(tmp, "demo");
const pubDb = path.join(demoDir, "publisher.db");
const subDb = path.join(demoDir, "subscriber.db");

before(async () => {
  assert.ok(fs.existsSync(BIN), `no driftwatch binary at ${BIN} (set DRIFTWATCH_BIN)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  const demoPort = await freePort();
  demo = `http://127.0.0.1:${demoPort}`;
  start(["demo", "--dir", demoDir, "--listen", `127.0.0.1:${demoPort}`], "demo.log");
  // The demo confirms its drift after confirm_after = 5s.
  await until("the demo's drift to be confirmed", 120, async () => {
    const s = await status(demo);
    const confirmed = Object.fromEntries(s.tables.map((p) => [p.table, p.confirmed.missing + p.confirmed.extra + p.confirmed.changed]));
    return confirmed.customers === 30 && confirmed.order_lines === 548;
  });

  // The same files, watched so that every state shows once.
  const port = await freePort();
  mixed = `http://127.0.0.1:${port}`;
  fs.writeFileSync(path.join(tmp, "token"), `${TOKEN}\n`);
  const q = (s) => JSON.stringify(s);
  fs.writeFileSync(path.join(tmp, "mixed.toml"), `
[server]
listen = "127.0.0.1:${port}"
api_token_file = "token"
grafana_url = "https://grafana.example/d/driftwatch-table/driftwatch-table"

[defaults]
interval = "5s"
confirm_after = "0s"

[databases.publisher]
url = ${q(`sqlite://${pubDb}`)}
[databases.subscriber]
url = ${q(`sqlite://${subDb}`)}
[databases.mirror]
url = ${q(`sqlite://${pubDb}`)}

[[groups]]
name = "alpha"
publisher = "publisher"
subscribers = ["subscriber"]
[[groups.tables]]
name = "no_such_table"
[[groups.tables]]
name = "customers"
filter = "1 = 0"

# Order lines of the first 3,000 orders only: quick passes, with drift among them.
[[groups]]
name = "beta"
publisher = "publisher"
subscribers = ["subscriber"]
[[groups.tables]]
name = "order_lines"
filter = "order_id <= 3000"

[[groups]]
name = "gamma"
publisher = "publisher"
subscribers = ["subscriber"]
[[groups.tables]]
name = "order_lines"
filter = "order_id <= 3000"
confirm_after = "1h"

[[groups]]
name = "delta"
publisher = "publisher"
subscribers = ["mirror"]
[[groups.tables]]
name = "order_lines"
filter = "order_id <= 3000"
`);
  start(["serve", "--config", path.join(tmp, "mixed.toml")], "mixed.log");
  await until("every pair of the mixed config to finish a pass", 120, async () => {
    const s = await status(mixed, TOKEN);
    return s.tables.every((p) => p.state !== "unknown") && s.tables.every((p) => p.history.length >= 2);
  });

  const profile = fs.mkdtempSync(path.join(tmp, "chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1400, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  if (browser) await browser.close();
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.on("exit", r)))));
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function open(url) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.errors = errors;
  // Everything the page loads must come from the service itself (air-gapped hosts).
  page.foreign = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (!["127.0.0.1", "localhost"].includes(u.hostname) && !["data:", "blob:"].includes(u.protocol)) page.foreign.push(r.url());
  });
  await page.goto(url);
  return page;
}

const count = (page, key) => page.locator(`#summary [data-count="${key}"] .n`).textContent();

test("the summary counts the demo's tables by state", async () => {
  const page = await open(`${demo}/`);
  await page.waitForSelector("#pairs tbody");
  assert.equal(await count(page, "tables"), "2");
  assert.equal(await count(page, "divergent"), "2");
  assert.equal(await count(page, "schema"), "1");
  assert.equal(await count(page, "error"), "0");
  assert.equal(await count(page, "pending"), "0");
  assert.equal(await count(page, "converged"), "0");
  assert.match(await page.locator('#summary [data-count="down"]').textContent(), /databases down: none/);
  // Badges say their state in words, not colour alone.
  const badges = await page.locator("#pairs tbody tr.main td:first-child").allTextContents();
  assert.deepEqual(badges, ["▲ divergent ◆ schema differs", "▲ divergent"]);
  const rows = await page.locator("#pairs tbody tr.main td:nth-child(4)").allTextContents();
  assert.deepEqual(rows, ["10 missing · 5 extra · 15 changed", "483 missing · 25 extra · 40 changed"]);
  // The demo watches no filtered table: the page says so rather than leave it unsaid.
  assert.deepEqual(await page.locator("#pairs .filter").allTextContents(), ["no filter", "no filter"]);
  // A runbook link per alert state, to a section that exists.
  const href = await page.locator('#pairs tbody a[href^="/runbook#"]').first().getAttribute("href");
  assert.equal(href, "/runbook#driftwatchconfirmeddivergence");
  const runbook = await open(`${demo}${href}`);
  assert.equal(await runbook.locator("#driftwatchconfirmeddivergence").count(), 1);
  await runbook.close();
  assert.deepEqual(page.errors, []);
  assert.deepEqual(page.foreign, []);
  await page.close();
});

test("the page needs the API token when one is configured; then rows go by severity, filter and search", async () => {
  const page = await open(`${mixed}/`);
  await page.waitForSelector("#auth:not([hidden])");
  assert.equal(await page.locator("#pairs tbody").count(), 0, "nothing shown without the token");
  await page.fill("#token", TOKEN);
  await page.press("#token", "Enter");
  await page.waitForSelector("#pairs tbody");
  const order = await page.locator("#pairs tbody").evaluateAll((bs) => bs.map((b) => `${b.dataset.state} ${b.dataset.name}`));
  assert.deepEqual(order, [
    "error alpha/no_such_table/subscriber",
    "divergent beta/order_lines/subscriber",
    "schema alpha/customers/subscriber",
    "pending gamma/order_lines/subscriber",
    "converged delta/order_lines/mirror",
  ]);
  const error = page.locator('#pairs tbody[data-state="error"]');
  assert.match(await error.locator(".err").textContent(), /no_such_table/);
  assert.equal(await error.locator("tr.main td:nth-child(4)").textContent(), "–", "a failed pass shows no counts");
  // The filter of a filtered table is shown beside its row counts.
  assert.equal(await page.locator('#pairs tbody[data-state="schema"] .filter').textContent(), "where 1 = 0");
  const visible = () => page.locator("#pairs tbody:not([hidden])").evaluateAll((bs) => bs.map((b) => b.dataset.name));
  await page.selectOption("#f-state", "pending");
  assert.deepEqual(await visible(), ["gamma/order_lines/subscriber"]);
  await page.selectOption("#f-state", "");
  await page.selectOption("#f-group", "alpha");
  assert.deepEqual(await visible(), ["alpha/no_such_table/subscriber", "alpha/customers/subscriber"]);
  await page.selectOption("#f-group", "");
  // The search box, reached with the keyboard alone.
  await page.locator("body").focus();
  for (let i = 0; i < 20 && (await page.evaluate(() => document.activeElement.id)) !== "f-search"; i++) {
    await page.keyboard.press("Tab");
  }
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-search");
  await page.keyboard.type("custom");
  assert.deepEqual(await visible(), ["alpha/customers/subscriber"]);
  // The Grafana link carries the dashboard's variables.
  const grafana = await page.locator('#pairs tbody[data-state="schema"] a', { hasText: "Grafana" }).getAttribute("href");
  const u = new URL(grafana);
  assert.equal(u.pathname, "/d/driftwatch-table/driftwatch-table");
  assert.deepEqual([u.searchParams.get("var-group"), u.searchParams.get("var-table"), u.searchParams.get("var-subscriber")],
    ["alpha", "customers", "subscriber"]);
  assert.equal(await page.locator('#pairs tbody[data-state="divergent"] .filter').textContent(), "where order_id <= 3000");
  // The sparkline draws the passes so far.
  const s = await status(mixed, TOKEN);
  const beta = s.tables.find((p) => p.group === "beta");
  const n = beta.confirmed.missing + beta.confirmed.extra + beta.confirmed.changed;
  assert.ok(n > 0);
  assert.match(await page.locator('#pairs tbody[data-state="divergent"] svg.spark').getAttribute("aria-label"),
    new RegExp(`divergent rows over the last \\d+ passes: ${n}, ${n}`));
  assert.deepEqual(page.errors.filter((e) => !/401/.test(e)), []);
  await page.close();
});

test("the key-space strip marks the demo's gap where it lies", async () => {
  // Where the missing rows lie in the publisher's key order, from the files themselves.
  const [first, last, total, missing] = sqlite(pubDb, `
    ATTACH '${subDb}' AS s;
    CREATE TEMP VIEW m AS SELECT order_id, line_no FROM main.order_lines p
      WHERE NOT EXISTS (SELECT 1 FROM s.order_lines q WHERE q.order_id = p.order_id AND q.line_no = p.line_no);
    SELECT (SELECT count(*) FROM main.order_lines WHERE (order_id, line_no) < (SELECT order_id, line_no FROM m ORDER BY 1, 2 LIMIT 1)),
           (SELECT count(*) FROM main.order_lines WHERE (order_id, line_no) <= (SELECT order_id, line_no FROM m ORDER BY 1 DESC, 2 DESC LIMIT 1)),
           (SELECT count(*) FROM main.order_lines), (SELECT count(*) FROM m);`).split("|").map(Number);
  assert.equal(missing, 483);
  const [lo, hi] = [first / total, last / total];
  assert.ok(hi - lo < 0.02, "the demo's gap is one stretch of the key space");
  const page = await open(`${demo}/`);
  const strip = page.locator('#pairs tbody[data-name="demo/order_lines/subscriber"] svg.strip');
  await strip.waitFor();
  const marks = await strip.locator("rect.mark").evaluateAll((rs) =>
    rs.map((r) => ({ from: Number(r.dataset.from), to: Number(r.dataset.to), x: Number(r.getAttribute("x")), w: Number(r.getAttribute("width")) })));
  const covering = marks.filter((m) => m.to > lo && m.from < hi);
  assert.ok(covering.length >= 1, `a mark over the gap at ${lo.toFixed(4)}..${hi.toFixed(4)}: ${JSON.stringify(marks)}`);
  assert.ok(covering[0].from <= lo && covering[covering.length - 1].to >= hi, "the marks cover the whole gap");
  const width = Number(await strip.getAttribute("width"));
  assert.ok(Math.abs(covering[0].x - covering[0].from * width) < 1, "drawn where it lies");
  assert.ok(covering.reduce((s, m) => s + (m.to - m.from), 0) < 0.1, "and not as a wide smear");
  // In the pixels too: the strip is red over the middle of the gap, and not everywhere.
  const png = PNG.sync.read(await strip.screenshot());
  const red = (x) => {
    let n = 0;
    for (let y = 0; y < png.height; y++) {
      const i = (y * png.width + Math.min(png.width - 1, Math.round(x))) * 4;
      if (png.data[i] > 170 && png.data[i + 1] < 90 && png.data[i + 2] < 90) n++;
    }
    return n;
  };
  const scale = png.width / width;
  assert.ok(red(((lo + hi) / 2) * width * scale) >= png.height / 2, "the gap is marked in red in the picture");
  const clear = [];
  for (let x = 0; x < png.width; x++) if (red(x) === 0) clear.push(x);
  assert.ok(clear.length > png.width / 3, "most of the key space is not marked");
  // The gap's time window, with its row count.
  await page.locator('#pairs tbody[data-name="demo/order_lines/subscriber"] summary').click();
  const caption = await page.locator('#pairs tbody[data-name="demo/order_lines/subscriber"] figcaption').textContent();
  const [start, end] = sqlite(pubDb, `ATTACH '${subDb}' AS s;
    SELECT min(placed_at), max(placed_at) FROM main.order_lines p
      WHERE NOT EXISTS (SELECT 1 FROM s.order_lines q WHERE q.order_id = p.order_id AND q.line_no = p.line_no);`).split("|");
  assert.equal(caption, `483 missing rows with placed_at from ${start} to ${end} (3 h 56 min)`);
  await page.close();
});

/** Every key of the listed rows, page after page. */
async function allPages(page) {
  const keys = [];
  const sizes = [];
  for (let i = 0; i < 50; i++) {
    const rows = await page.locator("#rows table.rows-table > tbody > tr").evaluateAll((rs) => rs.map((r) => [r.dataset.kind, r.dataset.key]));
    sizes.push(rows.length);
    keys.push(...rows);
    if (await page.locator("#next").isDisabled()) break;
    const before = await page.locator("#range").textContent();
    await page.locator("#next").click();
    await page.waitForFunction((b) => {
      const t = document.getElementById("range").textContent;
      return t !== b && !t.startsWith("reading");
    }, before);
  }
  return { keys, sizes };
}

test("the table page lists the demo's 483 missing order lines, paged", async () => {
  const page = await open(`${demo}/tables/demo/order_lines?subscriber=subscriber`);
  await page.waitForSelector("#rows tbody");
  await page.locator('input[name="kind"][value="missing"]').check();
  await page.waitForFunction(() => document.getElementById("range").textContent.startsWith("missing rows 1–50 of 483"));
  const { keys, sizes } = await allPages(page);
  assert.deepEqual(sizes, [50, 50, 50, 50, 50, 50, 50, 50, 50, 33]);
  assert.ok(keys.every(([kind]) => kind === "missing"));
  const expected = sqlite(pubDb, `ATTACH '${subDb}' AS s;
    SELECT order_id || ',' || line_no FROM main.order_lines p
      WHERE NOT EXISTS (SELECT 1 FROM s.order_lines q WHERE q.order_id = p.order_id AND q.line_no = p.line_no)
      ORDER BY order_id, line_no;`).split("\n");
  assert.equal(expected.length, 483);
  assert.deepEqual(keys.map(([, k]) => k).sort(), [...expected].sort());
  assert.match(await page.locator("#range").textContent(), /^missing rows 451–483 of 483/);
  // The page is kept in the address, so a reload shows the same rows.
  assert.equal(new URL(page.url()).searchParams.get("offset"), "450");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("a changed row shows its changed columns, publisher value against subscriber value", async () => {
  const page = await open(`${demo}/tables/demo/customers?subscriber=subscriber&kind=changed`);
  await page.waitForFunction(() => document.getElementById("range").textContent.startsWith("changed rows 1–15 of 15"));
  const row = (key) => page.locator(`#rows table.rows-table > tbody > tr[data-key="${key}"]`);
  const changed = (key) => row(key).locator("table.changed tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [tr.dataset.column, tr.querySelector(".pub .val").textContent, tr.querySelector(".sub .val").textContent,
      tr.querySelector(".sub .val").classList.contains("null")]));
  const [pb, sb] = [pubDb, subDb].map((db) => sqlite(db, "SELECT balance FROM customers WHERE customer_id = 19"));
  assert.notEqual(pb, sb);
  assert.deepEqual(await changed("19"), [["balance", pb, sb, false]]);
  // '' on the publisher, NULL on the subscriber: told apart.
  assert.deepEqual([pubDb, subDb].map((db) => sqlite(db, "SELECT quote(email) FROM customers WHERE customer_id = 32")), ["''", "NULL"]);
  assert.deepEqual(await changed("32"), [["email", '""', "NULL", true]]);
  // Every column is there too, on demand.
  await row("19").locator("details summary").click();
  assert.equal(await row("19").locator("details tbody tr").count(), 7);
  // The schema difference, by column.
  assert.deepEqual(await page.locator("#schema tbody tr").evaluateAll((trs) => trs.map((tr) => tr.textContent)),
    ["loyalty_tierpresentabsentnot on the subscriber: not compared"]);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("the script buttons download the fix and redrive scripts in every dialect", async () => {
  const page = await open(`${demo}/tables/demo/customers?subscriber=subscriber`);
  await page.waitForSelector("#scripts button");
  const buttons = await page.locator("#scripts button").evaluateAll((bs) => bs.map((b) => [b.dataset.mode, b.dataset.dialect]));
  assert.equal(buttons.length, 8);
  for (const [mode, dialect] of buttons) {
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.locator(`#scripts button[data-mode="${mode}"][data-dialect="${dialect}"]`).click(),
    ]);
    assert.equal(download.suggestedFilename(), `driftwatch-demo-customers-subscriber-${mode}.${dialect}.sql`);
    const file = path.join(tmp, download.suggestedFilename());
    await download.saveAs(file);
    const text = fs.readFileSync(file, "utf8");
    assert.match(text, new RegExp(`^-- driftwatch convergence script: ${mode} mode, ${dialect} dialect`));
    assert.doesNotMatch(text, /-- ERROR/);
    if (mode === "fix") assert.match(text, /-- driftwatch: 10 missing, 5 extra, 15 changed/);
  }
  await page.close();
});

test("with a token, the table page and its script downloads use it", async () => {
  const page = await open(`${mixed}/tables/beta/order_lines?subscriber=subscriber`);
  await page.waitForSelector("#auth:not([hidden])");
  await page.fill("#token", TOKEN);
  await page.press("#token", "Enter");
  const beta = (await status(mixed, TOKEN)).tables.find((p) => p.group === "beta");
  const [m, e, c] = ["missing", "extra", "changed"].map((k) => beta.confirmed[k]);
  await page.waitForFunction((n) => document.getElementById("range").textContent.startsWith(`differing rows 1–${Math.min(n, 50)} of ${n}`), m + e + c);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator('#scripts button[data-mode="fix"][data-dialect="sqlite"]').click(),
  ]);
  assert.equal(download.suggestedFilename(), "driftwatch-beta-order_lines-subscriber-fix.sqlite.sql");
  const file = path.join(tmp, "with-token.sql");
  await download.saveAs(file);
  assert.match(fs.readFileSync(file, "utf8"), new RegExp(`-- driftwatch: ${m} missing, ${e} extra, ${c} changed`));
  await page.close();
});

test("live updates keep what the user opened", async () => {
  const page = await open(`${demo}/`);
  const body = page.locator('#pairs tbody[data-name="demo/order_lines/subscriber"]');
  await body.waitFor();
  await body.locator("summary").focus();
  await page.keyboard.press("Enter"); // opened with the keyboard
  assert.equal(await body.locator("details").evaluate((d) => d.open), true);
  const first = await page.locator("#updated").textContent();
  await page.waitForFunction((t) => document.getElementById("updated").textContent !== t, first, { timeout: 15000 });
  assert.equal(await body.locator("details").evaluate((d) => d.open), true, "still open after an update");
  assert.equal(await page.evaluate(() => document.querySelector('meta[http-equiv="refresh"]')), null);
  await page.close();
});

/** Pixels that differ from the page's background (its most common colour). */
function inkFraction(buffer) {
  const png = PNG.sync.read(buffer);
  const counts = new Map();
  for (let i = 0; i < png.data.length; i += 4) {
    const c = (png.data[i] << 16) | (png.data[i + 1] << 8) | png.data[i + 2];
    counts.set(c, (counts.get(c) || 0) + 1);
  }
  const background = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][1];
  return 1 - background / (png.data.length / 4);
}

test("a screenshot of the demo's page shows the page (a blank one fails)", async () => {
  const blank = await browser.newPage();
  await blank.setContent("<html><body></body></html>");
  assert.ok(inkFraction(await blank.screenshot()) < 0.01, "the check fails a blank page");
  await blank.close();

  const page = await open(`${demo}/`);
  const body = page.locator('#pairs tbody[data-name="demo/order_lines/subscriber"]');
  await body.waitFor();
  await body.locator("summary").click();
  await page.locator("figcaption").waitFor();
  const shot = await page.screenshot({ fullPage: true });
  const ink = inkFraction(shot);
  assert.ok(ink > 0.05, `only ${(ink * 100).toFixed(1)}% of the screenshot is not background`);
  fs.writeFileSync(path.join(tmp, "status-page.png"), shot);
  if (process.env.DRIFTWATCH_UPDATE_SCREENSHOT === "1") {
    fs.writeFileSync(path.join(repo, "docs/status-page.png"), shot);
  }
  await page.close();
});
