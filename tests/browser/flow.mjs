// The local-mode page, driven in Chromium: starts `filegate serve` in local
// mode (temporary data dir, ports picked by the system, no credentials),
// opens the page it prints and does what a developer would: a bad token
// (the error shows), mint a token, upload a PNG made here and a text file
// (UploadPolicy, the store at the emulator, RegisterHandle), check the
// list, the thumbnail (decoded, at the asked size), the downloads (the same
// bytes), the events (fp.upload, then fp.delete), delete the text file.
// Prints PASS or FAIL per step and a closing count; exits non-zero on any
// failure. The gateway and the browser are always stopped.
//
// Usage: node tests/browser/flow.mjs path/to/filegate   (tests/browser/run)

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";

import { chromium } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** Longest wait for anything the page should show. */
const STEP_TIMEOUT_MS = 30_000;
/** The whole run, gateway start to cleanup. */
const RUN_TIMEOUT_MS = 180_000;
/** What the page asks Thumbnail for (fit: the default, crop: exactly this box). */
const THUMB = 96;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const binary = process.argv[2] ? resolve(process.argv[2]) : join(root, "target/debug/filegate");

/** The gateway's last lines of output, shown when a step fails. */
const gatewayLog = [];
let passed = 0;
let failed = 0;
const cleanups = [];

function pass(step, detail = "") {
  passed += 1;
  console.log(`PASS ${step}${detail ? `: ${detail}` : ""}`);
}

class StepFailure extends Error {}

function fail(step, detail) {
  failed += 1;
  console.log(`FAIL ${step}: ${detail}`);
  throw new StepFailure(step);
}

/** Runs one step: PASS when it returns (its value is the detail), FAIL when it throws. */
async function step(name, body) {
  let detail;
  try {
    detail = await body();
  } catch (error) {
    if (error instanceof StepFailure) throw error;
    fail(name, error?.message?.split("\n")[0] ?? String(error));
  }
  pass(name, typeof detail === "string" ? detail : (detail?.detail ?? ""));
  return detail;
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// --- a real image --------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** An RGB PNG: a colour gradient with a dark disc, so a crop or resize shows. */
function png(width, height) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const inDisc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (height / 4) ** 2;
      const at = row + 1 + x * 3;
      raw[at] = inDisc ? 30 : Math.round((255 * x) / (width - 1));
      raw[at + 1] = inDisc ? 30 : Math.round((255 * y) / (height - 1));
      raw[at + 2] = inDisc ? 60 : 160;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

// --- the gateway -----------------------------------------------------------

/** `filegate serve` in local mode; resolves with the page's address. */
function startGateway(dataDir) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([key]) => !key.startsWith("FILESTACK_") && !key.startsWith("FILEGATE_") && key !== "DATABASE_URL",
    ),
  );
  const child = spawn(
    binary,
    [
      "serve",
      "--data-dir", dataDir,
      "--grpc-listen", "127.0.0.1:0",
      "--http-listen", "127.0.0.1:0",
      "--emulator-listen", "127.0.0.1:0",
      "--shutdown-grace-secs", "2",
    ],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const output = gatewayLog;
  const keep = (line) => {
    output.push(line);
    if (output.length > 200) output.shift();
  };
  cleanups.push(() => stopGateway(child));
  return new Promise((resolvePage, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "page:" line within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
    let pending = "";
    child.stdout.on("data", (data) => {
      pending += data;
      const lines = pending.split("\n");
      pending = lines.pop();
      for (const line of lines) {
        keep(line);
        const page = /^page:\s+(http:\/\/\S+)/.exec(line.trim());
        if (page) {
          clearTimeout(timer);
          resolvePage({ page: page[1], child });
        }
      }
    });
    let pendingErr = "";
    child.stderr.on("data", (data) => {
      pendingErr += data;
      const lines = pendingErr.split("\n");
      pendingErr = lines.pop();
      lines.forEach(keep);
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`filegate exited (${code ?? signal}) before printing "page:":\n${output.join("\n")}`));
    });
  });
}

/** SIGTERM, then SIGKILL if it is still running 5 s later. */
async function stopGateway(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once("exit", done));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

async function cleanup() {
  while (cleanups.length) {
    try {
      await cleanups.pop()();
    } catch (error) {
      console.log(`cleanup: ${error.message}`);
    }
  }
}

// --- the flow ----------------------------------------------------------------

async function main() {
  const work = mkdtempSync(join(tmpdir(), "filegate-browser-"));
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  const started = Date.now();

  const { page: pageUrl } = await step("filegate serve starts in local mode and prints the page", async () => {
    const gateway = await startGateway(join(work, "data"));
    gateway.detail = gateway.page;
    return gateway;
  });

  const context = await step("Chromium starts (Debian's, fresh profile)", async () => {
    const browser = await chromium.launchPersistentContext(join(work, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1100, height: 900 },
      timeout: STEP_TIMEOUT_MS,
    });
    cleanups.push(() => browser.close());
    return browser;
  });
  console.log(`  ${context.browser()?.version() ?? "chromium"}`);
  context.setDefaultTimeout(STEP_TIMEOUT_MS);

  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") pageErrors.push(`console: ${message.text()}`);
  });

  const config = await step("the page loads and reads /local/config", async () => {
    const answer = await page.goto(pageUrl);
    check(answer?.ok(), `GET ${pageUrl}: ${answer?.status()}`);
    await page.locator('body[data-ready="true"]').waitFor();
    return await page.evaluate(() => fetch("/local/config").then((r) => r.json()));
  });
  console.log(`  grpc_web_url ${config.grpc_web_url}, filestack_url ${config.filestack_url}`);

  await step("a malformed token shows UNAUTHENTICATED in the status line", async () => {
    await page.fill("#token", "not-a-token");
    await page.click("#use-token");
    const line = page.locator('#status[data-state="error"]');
    await line.waitFor();
    const text = await line.textContent();
    check(text.includes("UNAUTHENTICATED"), `status: ${text}`);
    return text;
  });

  const sub = `browser-${randomBytes(3).toString("hex")}`;
  await step(`"Mint token" gets a token for ${sub}; WhoAmI names the owner`, async () => {
    await page.fill("#sub", sub);
    await page.click("#mint");
    await page.locator(`#owner[data-owner="${sub}"]`).waitFor();
    const token = await page.inputValue("#token");
    check(token.split(".").length === 3, `token box: ${token.slice(0, 40)}`);
    return `owner ${await page.textContent("#owner")}`;
  });

  await step("WatchEvents is open", async () => {
    await page.locator('#watch[data-state="on"]').waitFor();
    return await page.textContent("#watch");
  });

  const image = png(300, 200);
  const text = Buffer.from(`filegate browser test ${new Date().toISOString()}\n`.repeat(20));
  const imageName = `gradient-${randomBytes(4).toString("hex")}.png`;
  const textName = `notes-${randomBytes(4).toString("hex")}.txt`;

  /** Uploads through the page; returns the row's document id and handle. */
  async function upload(name, mimeType, bytes) {
    await page.setInputFiles("#file", { name, mimeType, buffer: bytes });
    await page.click("#upload");
    const row = page.locator(`#documents tr[data-filename="${name}"]`);
    try {
      await row.waitFor();
    } catch (error) {
      throw new Error(`no row for ${name}; status: ${await page.textContent("#status")}`);
    }
    const id = await row.getAttribute("data-document-id");
    const handle = await row.getAttribute("data-handle");
    const size = await row.getAttribute("data-size");
    const type = await row.getAttribute("data-content-type");
    check(size === String(bytes.length), `size ${size}, uploaded ${bytes.length}`);
    check(type === mimeType, `content type ${type}, uploaded ${mimeType}`);
    return { id, handle, row };
  }

  const img = await step(`upload ${imageName} (300x200 PNG, ${image.length} bytes): the list shows it`, async () => {
    const doc = await upload(imageName, "image/png", image);
    doc.detail = `${doc.id}, handle ${doc.handle}`;
    return doc;
  });

  await step(`the thumbnail decodes at ${THUMB}x${THUMB} (fit crop, the default)`, async () => {
    const selector = `#documents tr[data-document-id="${img.id}"] img.thumbnail`;
    const state = await page.waitForFunction(
      (sel) => {
        const el = document.querySelector(sel);
        if (!el || !el.getAttribute("src")) return false;
        if (!el.complete) return false;
        return el.naturalWidth > 0 ? "loaded" : "broken";
      },
      selector,
    );
    check((await state.jsonValue()) === "loaded", "the thumbnail did not load");
    const size = await page.$eval(selector, async (el) => {
      await el.decode();
      return [el.naturalWidth, el.naturalHeight];
    });
    check(size[0] === THUMB && size[1] === THUMB, `natural size ${size.join("x")}`);
    return `${size.join("x")}`;
  });

  /** Fetches the row's Download link in the page; compares with `bytes`. */
  async function download(doc, bytes) {
    const link = page.locator(`#documents tr[data-document-id="${doc.id}"] a.download[href^="http"]`);
    await link.waitFor();
    const href = await link.getAttribute("href");
    const body = await page.evaluate(async (url) => {
      const answer = await fetch(url);
      if (!answer.ok) throw new Error(`GET ${url}: HTTP ${answer.status}`);
      const data = new Uint8Array(await answer.arrayBuffer());
      let binary = "";
      for (let at = 0; at < data.length; at += 0x8000) {
        binary += String.fromCharCode(...data.subarray(at, at + 0x8000));
      }
      return btoa(binary);
    }, href);
    const got = Buffer.from(body, "base64");
    check(sha256(got) === sha256(bytes), `SHA-256 ${sha256(got)} (${got.length} bytes), uploaded ${sha256(bytes)}`);
    check(href.startsWith(config.filestack_url), `link ${href} is not at ${config.filestack_url}`);
    return `SHA-256 ${sha256(got).slice(0, 16)}…, ${got.length} bytes`;
  }

  await step("the Download link (SignedUrl) serves the PNG's bytes", () => download(img, image));

  await step("clicking Download opens the signed URL in a new tab", async () => {
    const link = page.locator(`#documents tr[data-document-id="${img.id}"] a.download`);
    const href = await link.getAttribute("href");
    const [tab] = await Promise.all([context.waitForEvent("page"), link.click()]);
    await tab.waitForLoadState();
    const opened = tab.url();
    await tab.close();
    check(opened === href, `the tab opened ${opened}, the link is ${href}`);
    return opened.replace(/security=[^/]*/, "security=…");
  });

  /** Waits for the event `action` of `handle` in the page's list. */
  async function event(action, handle) {
    const item = page.locator(`#events li[data-action="${action}"][data-handle="${handle}"]`);
    await item.waitFor();
    return (await item.textContent()).trim();
  }

  await step(`WatchEvents shows fp.upload for ${img.handle}`, () => event("fp.upload", img.handle));

  const txt = await step(`upload ${textName} (text, ${text.length} bytes): the list shows it`, async () => {
    const doc = await upload(textName, "text/plain", text);
    const images = await doc.row.locator("img").count();
    check(images === 0, "a text file has a thumbnail");
    return doc;
  });
  await step("the text file's Download link serves its bytes", () => download(txt, text));
  await step(`WatchEvents shows fp.upload for ${txt.handle}`, () => event("fp.upload", txt.handle));

  await step(`Delete ${textName}: its row disappears, the PNG's stays`, async () => {
    await page.click(`#documents tr[data-document-id="${txt.id}"] button.delete`);
    await page.locator(`#documents tr[data-document-id="${txt.id}"]`).waitFor({ state: "detached" });
    check(await page.locator(`#documents tr[data-document-id="${img.id}"]`).count() === 1, "the PNG's row went too");
    const status = await page.textContent("#status");
    check((await page.getAttribute("#status", "data-state")) !== "error", `status: ${status}`);
    return status;
  });
  await step(`WatchEvents shows fp.delete for ${txt.handle}`, () => event("fp.delete", txt.handle));

  await step("no uncaught error or console error on the page", async () => {
    check(pageErrors.length === 0, pageErrors.join(" | "));
    const status = page.locator("#status");
    check((await status.getAttribute("data-state")) !== "error", `status: ${await status.textContent()}`);
  });

  const shot = join(root, "target/browser/page.png");
  mkdirSync(dirname(shot), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
  console.log(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const watchdog = setTimeout(async () => {
  console.log(`FAIL the run took longer than ${RUN_TIMEOUT_MS / 1000} s`);
  await cleanup();
  process.exit(1);
}, RUN_TIMEOUT_MS);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await cleanup();
    process.exit(1);
  });
}

try {
  await main();
} catch (error) {
  if (!(error instanceof StepFailure)) {
    failed += 1;
    console.log(`FAIL ${error.stack ?? error}`);
  }
  console.log(`the gateway's last output:\n  ${gatewayLog.slice(-30).join("\n  ")}`);
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
