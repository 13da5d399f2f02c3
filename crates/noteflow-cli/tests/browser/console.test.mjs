// Browser tests of `noteflow console`: a real `noteflow serve` (SQLite or memory), a real
// `noteflow console` talking to it through the client library, and Debian's Chromium driven by
// Playwright. Run by scripts/browser-test.sh (which installs Chromium and playwright-core when
// missing and builds the binary); NOTEFLOW_BIN names the binary, SCREENSHOT_DIR where the
// screenshots of the main views go.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../../..");
const BIN = process.env.NOTEFLOW_BIN || join(root, "target/debug/noteflow");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCREENSHOTS = process.env.SCREENSHOT_DIR || join(root, "target/console-screenshots");
const CLIP = join(root, "testdata/pyannote-sample.wav");
const work = mkdtempSync(join(tmpdir(), "noteflow-console-test-"));
mkdirSync(SCREENSHOTS, { recursive: true });

const children = new Set();
let browser;

/** Starts `noteflow ARGS` and resolves with the child and the first stdout line matching `pattern`. */
function startProcess(args, pattern, label) {
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  children.add(child);
  child.on("exit", () => children.delete(child));
  const log = [];
  createInterface({ input: child.stderr }).on("line", (line) => { log.push(line); });
  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`${label} did not start in 120 s: ${log.join("\n")}`)), 120_000);
    lines.on("line", (line) => {
      const match = line.match(pattern);
      if (match) {
        clearTimeout(timer);
        resolvePromise({ child, match, log });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${code}) before it was ready: ${log.join("\n")}`));
    });
  });
}

/** `noteflow serve` on `listen` (port 0 for any); resolves with its gRPC URL. */
async function serve(dataDir, extra = [], listen = "127.0.0.1:0") {
  // A restarted server reuses its address; the old socket may linger for a moment.
  for (let attempt = 1; ; attempt++) {
    try {
      const { child, match } = await startProcess(
        ["serve", "--listen", listen, "--no-metrics", "--data-dir", dataDir, "--concurrency", "1", ...extra],
        /noteflow serving gRPC on (\S+)/,
        "noteflow serve",
      );
      return { child, url: `http://${match[1]}`, address: match[1] };
    } catch (error) {
      if (attempt >= 20 || !/in use/i.test(String(error))) throw error;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function consoleFor(serverUrl, extra = []) {
  const { child, match } = await startProcess(
    ["console", "--server", serverUrl, "--listen", "127.0.0.1:0", "--data-dir", mkdtempSync(join(work, "console-")), ...extra],
    /console: (http:\/\/\S+)/,
    "noteflow console",
  );
  return { child, url: match[1] };
}

function stop(child) {
  if (child && child.exitCode === null) child.kill("SIGKILL");
}

/** A WAV holding the clip `times` over: a long job that can be cancelled or interrupted. */
function repeatedClip(times) {
  const wav = readFileSync(CLIP);
  let offset = 12;
  while (wav.toString("ascii", offset, offset + 4) !== "data") offset += 8 + wav.readUInt32LE(offset + 4);
  const data = wav.subarray(offset + 8, offset + 8 + wav.readUInt32LE(offset + 4));
  const header = Buffer.from(wav.subarray(0, offset + 8));
  const size = data.length * times;
  header.writeUInt32LE(header.length - 8 + size, 4);
  header.writeUInt32LE(size, offset + 4);
  const path = join(work, `clip-x${times}.wav`);
  writeFileSync(path, Buffer.concat([header, ...Array(times).fill(data)]));
  return path;
}

/** Records every value the page's job badge and trouble line take, so passing states are seen. */
async function recordJob(page) {
  await page.evaluate(() => {
    window.__seen = { states: [], progress: [], trouble: [], attempts: [] };
    const observe = () => {
      const section = document.querySelector("#meeting-detail .job");
      if (!section) return;
      const seen = window.__seen;
      const push = (list, value) => { if (value && list[list.length - 1] !== value) list.push(value); };
      push(seen.states, section.querySelector(".job-state").textContent);
      push(seen.progress, section.querySelector(".bar").getAttribute("aria-valuenow"));
      push(seen.trouble, section.querySelector(".job-trouble").textContent);
      push(seen.attempts, section.querySelector(".job-attempt").textContent);
    };
    new MutationObserver(observe).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

async function upload(page, file) {
  await page.setInputFiles("#file-input", file);
}

async function badgeIs(page, status, timeout = 180_000) {
  await page.waitForFunction(
    (s) => document.querySelector("#meeting-detail .job-state")?.textContent === s,
    status,
    { timeout },
  );
}

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--autoplay-policy=no-user-gesture-required"] });
});

after(async () => {
  if (browser) await browser.close();
  for (const child of children) stop(child);
  rmSync(work, { recursive: true, force: true });
});

test("upload the real clip, watch the job, see two speaker lanes that match the engine, click a turn to play it", async () => {
  const server = await serve(mkdtempSync(join(work, "data-")));
  const ui = await consoleFor(server.url);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(ui.url);
  await upload(page, CLIP);
  await page.waitForFunction(() => document.querySelector("#meeting-detail .m-title")?.textContent === "pyannote-sample.wav");
  assert.match(await page.textContent("#meeting-detail .m-facts"), /30\.0 s/);
  await recordJob(page);
  await page.click("#meeting-detail .start");
  await badgeIs(page, "COMPLETED");
  const seen = await page.evaluate(() => window.__seen);
  const progress = seen.progress.map(Number);
  assert.ok(progress.some((p) => p > 0 && p < 100), `the progress bar moved through intermediate values: ${progress}`);
  assert.deepEqual(progress, [...progress].sort((a, b) => a - b), "progress never went back");
  assert.ok(seen.states.includes("RUNNING"), `states seen: ${seen.states}`);

  await page.waitForSelector("#meeting-detail .lane");
  const lanes = await page.$$eval("#meeting-detail .lane", (lanes) => lanes.map((lane) => ({
    speaker: lane.dataset.speaker,
    turns: [...lane.querySelectorAll(".turn")].map((t) => [Number(t.dataset.start), Number(t.dataset.end)]),
  })));
  assert.equal(lanes.length, 2, "two speakers in the real clip");

  // The result as the server stored it, read through the CLI (a separate client).
  const jobId = await page.getAttribute("#meeting-detail .job", "data-job");
  const events = execFileSync(BIN, ["jobs", "watch", jobId, "--server", server.url, "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
    .trim().split("\n").map((line) => JSON.parse(line));
  const engine = events.find((e) => e.event === "completed");
  const fromEngine = {};
  for (const turn of engine.turns) (fromEngine[turn.speaker] ??= []).push([turn.start, turn.end]);
  const round = (turns) => turns.map(([s, e]) => [s.toFixed(3), e.toFixed(3)]);
  assert.equal(Object.keys(fromEngine).length, 2);
  for (const lane of lanes) {
    assert.deepEqual(round(lane.turns), round(fromEngine[lane.speaker]), `turns of ${lane.speaker}`);
  }

  // Talk time per speaker and downloads are there.
  assert.equal(await page.$$eval("#meeting-detail .talk-time tbody tr", (rows) => rows.length), 2);
  const rttm = await page.evaluate(async () => (await fetch(document.querySelector("#meeting-detail .dl-rttm").href)).text());
  assert.equal(rttm.trim().split("\n").length, engine.turns.length);

  // Clicking a turn moves the player there.
  await page.waitForFunction(() => document.querySelector("#meeting-detail .player")?.readyState >= 1);
  const turn = await page.$("#meeting-detail .lane:nth-child(2) .turn:nth-child(2)");
  const start = Number(await turn.getAttribute("data-start"));
  await turn.click();
  await page.waitForFunction((s) => {
    const player = document.querySelector("#meeting-detail .player");
    return player.currentTime >= s - 0.05 && player.currentTime < s + 2;
  }, start);
  await page.screenshot({ path: join(SCREENSHOTS, "timeline.png"), fullPage: true });

  // The jobs view lists the job, newest first.
  await page.click("#tab-jobs");
  await page.waitForSelector("#jobs-table tbody tr");
  assert.ok((await page.textContent("#jobs-table tbody")).includes("COMPLETED"));
  await page.screenshot({ path: join(SCREENSHOTS, "jobs.png"), fullPage: true });

  assert.ok(requests.every((url) => url.startsWith(ui.url) || url.startsWith("blob:")), `no external requests: ${requests.filter((u) => !u.startsWith(ui.url))}`);
  await page.close();
  stop(ui.child);
  stop(server.child);
});

test("cancel a long job: 'cancelling…', then CANCELLED, confirmed by a separate status read", async () => {
  const server = await serve(mkdtempSync(join(work, "data-")));
  const ui = await consoleFor(server.url);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(ui.url);
  await upload(page, repeatedClip(20));
  await page.waitForSelector("#meeting-detail .start");
  await recordJob(page);
  await page.click("#meeting-detail .start");
  await badgeIs(page, "RUNNING");
  const jobId = await page.getAttribute("#meeting-detail .job", "data-job");
  await page.click("#meeting-detail .cancel");
  await page.waitForFunction(
    () => document.querySelector("#meeting-detail .job-note").textContent === "Cancelled (confirmed by the server).",
    null,
    { timeout: 60_000 },
  );
  assert.equal(await page.textContent("#meeting-detail .job-state"), "CANCELLED");
  const seen = await page.evaluate(() => window.__seen);
  assert.ok(seen.states.includes("cancelling…"), `states seen: ${seen.states}`);
  await page.screenshot({ path: join(SCREENSHOTS, "cancelled.png"), fullPage: true });

  const status = JSON.parse(execFileSync(BIN, ["jobs", "status", jobId, "--server", server.url, "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }));
  assert.equal(status.status, "CANCELLED");
  await page.close();
  stop(ui.child);
  stop(server.child);
});

test("the server killed mid-job and restarted: the page shows reconnecting, then the result of attempt 2", async () => {
  const dataDir = mkdtempSync(join(work, "data-"));
  let server = await serve(dataDir);
  const ui = await consoleFor(server.url);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(ui.url);
  await upload(page, CLIP);
  await page.waitForSelector("#meeting-detail .start");
  await recordJob(page);
  await page.click("#meeting-detail .start");
  await badgeIs(page, "RUNNING");
  await page.waitForFunction(() => Number(document.querySelector("#meeting-detail .bar").getAttribute("aria-valuenow")) > 0);
  server.child.kill("SIGKILL");
  await page.waitForFunction(() => window.__seen.trouble.some((t) => t.startsWith("reconnecting")), null, { timeout: 30_000 });
  server = await serve(dataDir, [], server.address);
  await badgeIs(page, "COMPLETED");
  assert.equal(await page.textContent("#meeting-detail .job-attempt"), "attempt 2");
  await page.waitForSelector("#meeting-detail .lane");
  const seen = await page.evaluate(() => window.__seen);
  assert.ok(seen.trouble.some((t) => /reconnecting \(try \d+ of \d+\)/.test(t)), `trouble seen: ${seen.trouble}`);
  await page.screenshot({ path: join(SCREENSHOTS, "restarted.png"), fullPage: true });
  await page.close();
  stop(ui.child);
  stop(server.child);
});

test("a memory-mode server shows the banner; an undecodable upload shows the server's message and breaks nothing", async () => {
  const server = await serve(mkdtempSync(join(work, "data-")), ["--database", "memory"]);
  const ui = await consoleFor(server.url);
  const page = await browser.newPage({ viewport: { width: 800, height: 700 } });
  await page.goto(ui.url);
  await page.waitForSelector("#banner:not([hidden])");
  assert.match(await page.textContent("#banner"), /memory only/);

  const bogus = join(work, "notes.wav");
  writeFileSync(bogus, "these are meeting notes, not audio\n".repeat(100));
  await upload(page, bogus);
  await page.waitForFunction(() => document.querySelector("#upload-status").classList.contains("error"));
  const message = await page.textContent("#upload-status");
  assert.match(message, /notes\.wav was not accepted: /);
  assert.doesNotMatch(message, /panicked|stack|undefined/i);
  assert.equal(await page.$$eval("#meeting-list button", (b) => b.length), 0, "the refused upload left no meeting");
  await page.screenshot({ path: join(SCREENSHOTS, "memory-banner-and-refused-upload.png"), fullPage: true });

  // Still usable: a good file goes through afterwards.
  await upload(page, CLIP);
  await page.waitForFunction(() => document.querySelectorAll("#meeting-list button").length === 1);
  await page.close();
  stop(ui.child);
  stop(server.child);
});
