// Hydrogen (hydrogen-view-sdk from npm) in headless Chromium against a Plugboard server, as a
// person uses it: log in with a password, open a room from the room list, read a message
// someone else sent, send one. Driven by tests/tests/hydrogen.rs:
//
//   node hydrogen.mjs BASE_URL USER PASSWORD ROOM_NAME EXPECTED REPLY SCREENSHOT CHROMIUM
//
// Bundles hydrogen_page.js with esbuild, serves it with Hydrogen's assets and olm from a
// static server on 127.0.0.1, drives Chromium with puppeteer-core. Reports one JSON object per
// line on stdout ({"step": …}); the page's console goes to stderr. Every wait is bounded.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { mkdirSync } from "node:fs";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import puppeteer from "puppeteer-core";

const [baseUrl, user, password, roomName, expected, reply, screenshot, chromium] =
  process.argv.slice(2);
const WAIT_MS = 60_000;
const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");

function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

/** Awaits `promise`, saying what was awaited if it fails (puppeteer says only how long). */
async function awaiting(what, promise) {
  try {
    return await promise;
  } catch (e) {
    throw new Error(`waiting for ${what}: ${e.message}`);
  }
}

// olm's Node fallbacks (crypto, fs, path) stay out of the browser bundle.
const bundle = await esbuild.build({
  entryPoints: [join(here, "hydrogen_page.js")],
  bundle: true,
  format: "esm",
  external: ["crypto", "fs", "path"],
  write: false,
  logLevel: "warning",
});
const appJs = bundle.outputFiles[0].contents;

const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Hydrogen on Plugboard</title>
<link rel="stylesheet" href="/assets/theme-element-light.css">
</head><body class="hydrogen"><script type="module" src="/app.js"></script></body></html>`;

/** What the static server serves under each prefix: a directory of an npm package. */
const MOUNTS = [
  ["/assets/", join(modules, "hydrogen-view-sdk", "asset-build", "assets")],
  ["/olm/", join(modules, "@matrix-org", "olm")],
];
const TYPES = {
  ".js": "text/javascript",
  ".css": "text/css",
  ".html": "text/html",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
};

async function serve(path) {
  if (path === "/" || path === "/index.html") return [PAGE, ".html"];
  if (path === "/app.js") return [appJs, ".js"];
  if (path === "/sw.js") {
    return [await readFile(join(modules, "hydrogen-view-sdk", "lib-build", "sw.js")), ".js"];
  }
  for (const [prefix, dir] of MOUNTS) {
    if (path.startsWith(prefix)) {
      const file = normalize(join(dir, decodeURIComponent(path.slice(prefix.length))));
      if (!file.startsWith(dir)) return null;
      return [await readFile(file), extname(file)];
    }
  }
  return null;
}

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://127.0.0.1").pathname;
  try {
    const found = await serve(path);
    if (!found) throw new Error("not served");
    res.writeHead(200, { "content-type": TYPES[found[1]] ?? "application/octet-stream" });
    res.end(found[0]);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const site = `http://127.0.0.1:${server.address().port}`;

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let page;
try {
  page = await browser.newPage();
  page.setDefaultTimeout(WAIT_MS);
  await page.setViewport({ width: 1200, height: 800 });
  page.on("console", (m) => process.stderr.write(`page ${m.type()}: ${m.text()}\n`));
  page.on("pageerror", (e) => process.stderr.write(`page error: ${e.stack || e}\n`));
  page.on("requestfailed", (r) =>
    process.stderr.write(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}\n`),
  );
  page.on("response", (r) => {
    if (r.status() >= 400) process.stderr.write(`response ${r.status()}: ${r.request().method()} ${r.url()}\n`);
  });

  await page.goto(`${site}/?hs=${encodeURIComponent(baseUrl)}#/login`);
  // The homeserver field is filled from the configuration; the password form appears once
  // Hydrogen has asked the server how to log in.
  await awaiting("the password login form", page.waitForSelector("#username"));
  await page.type("#username", user);
  await page.type("#password", password);
  await page.click(".PasswordLoginView button[type=submit]");
  await awaiting("the room list after logging in", page.waitForSelector(".RoomList"));
  report("logged_in", { url: page.url() });

  // Open the room from the room list, as a person would.
  const entry = await awaiting(`${roomName} in the room list`, page.waitForSelector(`::-p-xpath(//ul[contains(@class,"RoomList")]//a[.//*[contains(text(), ${JSON.stringify(roomName)})]])`));
  await entry.click();
  await awaiting("the room to open", page.waitForSelector(".RoomView"));
  report("room_opened", { url: page.url() });

  await awaiting(
    `the message ${JSON.stringify(expected)} in the timeline`,
    page.waitForFunction(
      (text) => [...document.querySelectorAll(".Timeline_message")].some((m) => m.textContent.includes(text)),
      {},
      expected,
    ),
  );
  report("read", { text: expected });

  await page.type(".MessageComposer_input textarea", reply);
  await page.keyboard.press("Enter");
  // Sent: the local echo leaves the unsent state once the server answered with an event id.
  await awaiting(
    "the server to take the message sent",
    page.waitForFunction(
      (text) =>
        [...document.querySelectorAll(".Timeline_message")].some(
          (m) => m.textContent.includes(text) && !m.classList.contains("unsent"),
        ),
      {},
      reply,
    ),
  );
  report("sent", { text: reply });
} finally {
  if (page) {
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot }).catch((e) => process.stderr.write(`screenshot: ${e}\n`));
    report("screenshot", { path: screenshot });
  }
  await browser.close();
  server.close();
}
report("done");
