// One small page-driver API over the three engines the E2E suite runs in: Chromium through
// Playwright (playwright-core driving Debian's /usr/bin/chromium), Firefox through geckodriver and
// WebKitGTK through WebKitWebDriver (both W3C WebDriver, via selenium-webdriver). Fake media
// devices and autoplay are enabled in each, as in tests/webdriver.template.json.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { homedir } from "node:os";

export const SERVER = process.env.RV_TEST_SERVER ?? "http://127.0.0.1:18080";
export const OUTPUT = new URL("./output/", import.meta.url).pathname;
mkdirSync(OUTPUT, { recursive: true });

const ROOT = new URL("../", import.meta.url).pathname;
export const ENGINES = (process.env.E2E_ENGINES ?? "chromium,firefox,webkit").split(",").filter(Boolean);

/**
 * Opens a fresh browser of `engine` and returns a small driver; always `close()` it.
 * `realDevices`: the browser captures from the sound server's sources instead of a fake stream,
 * and (Chromium) plays out unmuted.
 */
export async function open(engine, { realDevices = false } = {}) {
  if (engine === "chromium") return openChromium({ realDevices });
  if (engine === "firefox" || engine === "webkit") return openWebDriver(engine, { realDevices });
  throw new Error(`unknown engine ${engine}`);
}

async function openChromium({ realDevices }) {
  const { chromium } = await import("playwright-core");
  const fake = ["--use-fake-device-for-media-stream", `--use-file-for-fake-audio-capture=${join(ROOT, "tests/fixtures/mic.wav")}`];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    // Real devices: Playwright's default --mute-audio goes too.
    ...(realDevices ? { ignoreDefaultArgs: ["--mute-audio"] } : {}),
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", ...(realDevices ? [] : fake),
      "--autoplay-policy=no-user-gesture-required"],
  });
  const context = await browser.newContext();
  const pages = [await context.newPage()];
  const logs = [];
  const watch = (p) => { p.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`)); p.on("pageerror", (e) => logs.push(`pageerror: ${e}`)); };
  watch(pages[0]);
  let page = pages[0];
  return {
    engine: "chromium", logs, engineLog: () => "",
    goto: (url) => page.goto(url),
    async newTab() { page = await context.newPage(); watch(page); pages.push(page); },
    switchTab(i) { page = pages[i]; },
    // Functions run in the page with their arguments spread, as over WebDriver (Playwright itself
    // passes a single argument), so one test body works in every engine.
    eval: (fn, ...args) => page.evaluate(`(${fn})(...${JSON.stringify(args)})`),
    // Polled from here rather than with page.waitForFunction, whose string predicates the page's
    // strict CSP (no 'unsafe-eval') refuses; page.evaluate is not subject to it.
    async waitFor(fn, timeoutMs = 15000, ...args) {
      const expr = `(${fn})(...${JSON.stringify(args)})`;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = await page.evaluate(expr);
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${fn}`);
        await new Promise((r) => setTimeout(r, 100)); // polling interval of the wait, not a sync sleep
      }
    },
    // Network emulation of the whole context (the fault lab's offline → online scenarios): the
    // page sees navigator.onLine change and the window's offline/online events.
    setOffline: (offline) => context.setOffline(offline),
    click: (selector) => page.click(selector),
    type: (selector, text) => page.fill(selector, text),
    select: (selector, value) => page.selectOption(selector, value),
    press: (selector, key) => page.press(selector, key),
    screenshot: (name) => page.screenshot({ path: join(OUTPUT, `${name}.png`), fullPage: true }),
    close: () => browser.close(),
  };
}

async function openWebDriver(engine, { realDevices }) {
  const { Builder, By } = await import("selenium-webdriver");
  const firefox = await import("selenium-webdriver/firefox.js");
  let driver;
  if (engine === "firefox") {
    ensurePulseAudio();
    const options = new firefox.Options().addArguments("-headless");
    for (const [k, v] of Object.entries({ "media.navigator.streams.fake": !realDevices, "media.navigator.permission.disabled": true,
      "media.autoplay.default": 0, "media.autoplay.block-webaudio": false })) options.setPreference(k, v);
    const service = new firefox.ServiceBuilder(process.env.GECKODRIVER ?? join(homedir(), ".cargo/bin/geckodriver"));
    driver = await new Builder().forBrowser("firefox").setFirefoxOptions(options).setFirefoxService(service).build();
  } else {
    const caps = { browserName: "MiniBrowser", "webkitgtk:browserOptions": {
      binary: "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
      args: ["--automation", "--enable-media-stream=true", "--enable-mock-capture-devices=true", "--autoplay-policy=allow"] } };
    driver = await new Builder().usingServer(await webkitDriverUrl()).withCapabilities(caps).build();
  }
  const driverLog = webkitDriverLog;
  const tabs = [await driver.getWindowHandle()];
  const toFn = (fn) => `return (${fn})(...arguments)`;
  return {
    engine, logs: [],
    // What WebKitWebDriver and the MiniBrowser it started wrote to stderr (the web process's
    // crash messages among them); empty for Firefox.
    engineLog: () => driverLog?.text ?? "",
    goto: (url) => driver.get(url),
    async newTab() {
      // WebKitGTK's MiniBrowser cannot screenshot a second tab: it gets a window of its own.
      await driver.switchTo().newWindow(engine === "webkit" ? "window" : "tab");
      tabs.push(await driver.getWindowHandle());
    },
    switchTab: (i) => driver.switchTo().window(tabs[i]),
    eval: (fn, ...args) => driver.executeScript(toFn(fn), ...args),
    async waitFor(fn, timeoutMs = 15000, ...args) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = await driver.executeScript(toFn(fn), ...args);
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${fn}`);
        await new Promise((r) => setTimeout(r, 100)); // polling interval of the wait, not a sync sleep
      }
    },
    click: async (selector) => (await driver.findElement(By.css(selector))).click(),
    type: async (selector, text) => { const el = await driver.findElement(By.css(selector)); await el.clear(); await el.sendKeys(text); },
    select: async (selector, value) => (await driver.findElement(By.css(`${selector} option[value="${value}"]`))).click(),
    async press(selector, key) {
      const { Key } = await import("selenium-webdriver");
      const k = { Enter: Key.ENTER, Tab: Key.TAB, Space: Key.SPACE }[key] ?? key;
      await (await driver.findElement(By.css(selector))).sendKeys(k);
    },
    screenshot: async (name) => writeFile(join(OUTPUT, `${name}.png`), await driver.takeScreenshot(), "base64"),
    // Never throws and never waits long: after an engine crash quit() can fail or hang, and a
    // WebKitWebDriver (or the MiniBrowser it started) left running would keep node from exiting.
    async close() {
      let timer;
      const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error("quit took over 15 s")), 15_000); });
      try { await Promise.race([driver.quit(), late]); } catch { /* the engine is gone or stuck: killed below */ } finally {
        clearTimeout(timer);
        stopWebKitDriver();
      }
    },
  };
}

// WebKitWebDriver needs an X display (MiniBrowser has no headless mode): the Makefile runs the E2E
// suite under xvfb-run. It is started here on a free port and stopped on close.
let webkitDriver = null;
let webkitDriverLog = null;
async function webkitDriverUrl() {
  const { spawn } = await import("node:child_process");
  const net = await import("node:net");
  const port = await new Promise((res) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
  // Its own process group (detached), so that closing kills the MiniBrowser and web processes
  // it started too.
  webkitDriver = spawn("/usr/bin/WebKitWebDriver", [`--port=${port}`], { stdio: ["ignore", "ignore", "pipe"], detached: true });
  process.once("exit", stopWebKitDriver);
  const log = { text: "" };
  webkitDriverLog = log;
  webkitDriver.stderr.setEncoding("utf8");
  webkitDriver.stderr.on("data", (d) => { log.text = (log.text + d).slice(-16_384); }); // the tail only: bounded
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { const r = await fetch(`${url}/status`); if (r.ok) return url; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("WebKitWebDriver did not start");
}
function stopWebKitDriver() {
  const d = webkitDriver;
  webkitDriver = null;
  if (!d) return;
  try { process.kill(-d.pid, "SIGKILL"); } catch { /* already gone */ }
  d.stderr?.destroy();
}

// Firefox processes no audio at all without a sound server (TOOLCHAIN.md). When none answers (the
// Makefile's E2E target does not wrap the run in scripts/with-pulseaudio.sh), start a PulseAudio
// null sink, as that script does, and stop it when this process exits: only the one started here.
let pulseStarted = false;
function ensurePulseAudio() {
  if (pulseStarted || spawnSync("pactl", ["info"], { stdio: "ignore" }).status === 0) return;
  const base = ["-D", "--exit-idle-time=-1", "-n", "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=nullsink"];
  if (spawnSync("pulseaudio", [...base, "--load=module-null-source source_name=nullsource"], { stdio: "ignore" }).status !== 0) {
    spawnSync("pulseaudio", base, { stdio: "ignore" });
  }
  for (let i = 0; i < 50 && spawnSync("pactl", ["info"], { stdio: "ignore" }).status !== 0; i++) {
    spawnSync("sleep", ["0.1"]); // readiness poll of the daemon we just started
  }
  pulseStarted = true;
  process.once("exit", () => spawnSync("pulseaudio", ["-k"], { stdio: "ignore" }));
}
