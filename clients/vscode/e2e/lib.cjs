// Shared by the code-server drivers (drive.cjs, drive_restart.cjs): launch Chromium, record steps
// and screenshots, and the few VS Code gestures they use (command palette, quick open, the
// Testing view's rows).
"use strict";
const fs = require("fs");
const path = require("path");

/** What a driver saw: steps with their times, screenshots, anything it stores on it. */
function recorder(art) {
  const seen = { steps: [], screenshots: [] };
  const t0 = Date.now();
  const step = (s) => {
    const at = ((Date.now() - t0) / 1000).toFixed(1);
    seen.steps.push(`${at}s ${s}`);
    console.log(`[drive ${at}s] ${s}`);
  };
  const shot = async (page, name) => {
    const file = path.join(art, `${String(seen.screenshots.length + 1).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file });
    seen.screenshots.push(file);
  };
  return { seen, step, shot };
}

async function launch(nodeModules, chromiumPath) {
  const { chromium } = require(path.join(nodeModules, "playwright-core"));
  return chromium.launch({
    executablePath: chromiumPath || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
}

/** Open a quick-input widget and fill it (`ask`), as a person would: if it does not work, press
 * Escape and ask again, at most 4 times in all (the last failure is thrown). */
async function askAgain(page, ask) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ask();
    } catch (err) {
      if (attempt >= 4) throw err;
      await page.keyboard.press("Escape");
      await page.waitForTimeout(1000);
    }
  }
}

async function palette(page, text) {
  // a workbench still restoring (a window reload on a loaded machine) can close the palette
  // between its opening and the typing: open it again rather than wait on a hidden input
  const input = page.locator(".quick-input-widget input");
  await askAgain(page, async () => {
    await page.keyboard.press("F1");
    await input.waitFor({ state: "visible", timeout: 10000 });
    await input.fill(`>${text}`, { timeout: 10000 });
  });
  await page.waitForTimeout(400);
  await page.keyboard.press("Enter");
  await page.waitForTimeout(300);
}

async function openFile(page, rel) {
  // Quick Open lists files from a workspace search that a loaded host can take long to start,
  // and a window still restoring may close the widget: ask again, as a person would.
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: path.basename(rel) }).first();
  await askAgain(page, async () => {
    await page.keyboard.press("Control+P");
    const input = page.locator(".quick-input-widget input");
    await input.waitFor({ state: "visible", timeout: 10000 });
    await input.fill(rel);
    await row.waitFor({ timeout: 15000 });
  });
  await page.waitForTimeout(300);
  await row.click();
  await page.locator(`.tab[aria-label*="${path.basename(rel)}"]`).first().waitFor({ timeout: 15000 });
  await page.waitForTimeout(300);
}

/** Expand the Testing view's row whose label starts with `label` (a folder, file or function):
 * waits for the row to exist and for its children to show (aria-expanded), whatever the load. */
async function expandRow(page, label, timeout = 60000) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const state = await page.$$eval(".test-explorer .monaco-list-row", (rows, want) => {
      const row = rows.find((r) => {
        const el = r.querySelector(".label, .monaco-icon-label, .test-label") || r;
        return el.textContent.trim().startsWith(want);
      });
      return row ? row.getAttribute("aria-expanded") || "leaf" : "missing";
    }, label);
    if (state === "true" || state === "leaf") return;
    if (state === "false") {
      await page.locator(".test-explorer .monaco-list-row", { hasText: label }).first()
        .locator(".monaco-tl-twistie").click().catch(() => undefined);
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`the Testing view never showed an expanded row ${label}`);
}

/** The Testing view's rows: label, state icons (codicon-testing-*) and whether VS Code shows the
 * result as outdated ("retired": dimmed). */
async function explorerRows(page) {
  return page.$$eval(".test-explorer .monaco-list-row", (rows) => rows.map((r) => ({
    label: (r.querySelector(".label, .monaco-icon-label, .test-label") || r).textContent.trim(),
    icons: [...r.querySelectorAll("[class*='codicon-testing-']")].map((i) =>
      [...i.classList].filter((c) => c.startsWith("codicon-testing-")).join(" ")),
    retired: !!r.querySelector(".retired"),
  })));
}

async function texts(locator) {
  return (await locator.allInnerTexts()).map((t) => t.trim()).filter(Boolean);
}

/** The code lens texts once one matches `re`, read in the same instant as the match (VS Code
 * re-renders lenses on every refresh, and the lens of the file shown before can still be there
 * for a moment after a switch: a second read can find none); [] if none matched in time. */
async function lensesWith(page, re, timeout) {
  const handle = await page.waitForFunction((src) => {
    const found = [...document.querySelectorAll(".codelens-decoration a")]
      .map((a) => a.textContent.trim()).filter(Boolean);
    return found.some((t) => new RegExp(src).test(t)) ? found : null;
  }, re.source, { timeout }).catch(() => undefined);
  return handle ? handle.jsonValue() : [];
}

/** Run `body(page)` in a fresh browser page; write `seen` to `out` whatever happens. */
function drive(seen, shot, out, body) {
  const main = async () => {
    const browser = await launch(process.env.E2E_NODE_MODULES, process.env.E2E_CHROMIUM);
    try {
      const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
      page.on("pageerror", (e) => (seen.pageErrors = [...(seen.pageErrors || []), String(e)].slice(-10)));
      await body(page);
    } catch (e) {
      seen.error = String(e && e.stack ? e.stack : e);
      try {
        const pages = browser.contexts().flatMap((c) => c.pages());
        if (pages[0]) await shot(pages[0], "error");
      } catch { /* nothing */ }
    } finally {
      await browser.close();
    }
  };
  main().then(() => {
    fs.writeFileSync(out, JSON.stringify(seen, null, 2));
    console.log(JSON.stringify(seen, null, 2));
  }, (e) => {
    seen.error = String(e);
    fs.writeFileSync(out, JSON.stringify(seen, null, 2));
    process.exit(1);
  });
}

module.exports = { recorder, launch, palette, openFile, expandRow, explorerRows, texts, lensesWith, drive };
