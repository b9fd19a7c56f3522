// Results across an edit, a save and a window reload, in a real VS Code (code-server) in Debian's
// Chromium: optionally first a source file's lens through an edit and a save (E2E_SOURCE), then
// run every test from the Testing view, edit a file so that a passing test fails (E2E_EDIT_FILE +
// E2E_EDIT_TEXT, typed at its end), save, reload the window, and record what the Testing view,
// the gutter and the lenses of the watched test file (E2E_WATCH_FILE) show (they must not say
// "passed": the stored result is of other inputs) and what an untouched file shows (E2E_KEPT:
// its stored result, still valid, shown again; E2E_KEPT_STATE: passed or failed).
//
//   E2E_URL=... E2E_ARTIFACTS=dir E2E_NODE_MODULES=... E2E_OUT=seen.json E2E_EDIT_FILE=tests/x.py \
//   E2E_EDIT_TEXT='...' E2E_WATCH_FILE=tests/x.py E2E_KEPT=test_calc.py [E2E_KEPT_STATE=failed] \
//   [E2E_SOURCE=pkg/a.py] [E2E_FOLDERS=tests] [E2E_RUN_TIMEOUT_S=180] node drive_restart.cjs
"use strict";
const { recorder, palette, openFile, expandRow, explorerRows, texts, drive } = require("./lib.cjs");

const env = process.env;
const { seen, step, shot } = recorder(env.E2E_ARTIFACTS);
const watchFile = env.E2E_WATCH_FILE || env.E2E_EDIT_FILE;
const watch = watchFile.split("/").pop(); // its row label in the Testing view
const kept = env.E2E_KEPT; // a file the edit leaves alone
const keptIcon = `.codicon-testing-${env.E2E_KEPT_STATE || "failed"}-icon`;
const folders = (env.E2E_FOLDERS || "tests").split(",").filter(Boolean);
const runTimeout = Number(env.E2E_RUN_TIMEOUT_S || 180) * 1000;

const rowIcon = (page, label, cls, timeout) => page.waitForFunction(([want, icon]) =>
  [...document.querySelectorAll(".test-explorer .monaco-list-row")].some((r) => {
    const el = r.querySelector(".label, .monaco-icon-label, .test-label") || r;
    return el.textContent.trim().startsWith(want) && r.querySelector(icon);
  }), [label, cls], { timeout });

async function testingView(page) {
  await palette(page, "Testing: Focus on Test Explorer View");
  await page.locator(".test-explorer .monaco-list-row").first().waitFor({ timeout: 60000 });
  for (const f of folders) await expandRow(page, f);
}

async function gutter(page) {
  // the Testing gutter's state icons in the open editor (one per test with a result)
  return page.$$eval(".part.editor .testing-run-glyph", (els) =>
    els.map((e) => [...e.classList].filter((c) => c.startsWith("codicon-testing-") || c === "retired").join(" ")));
}

drive(seen, shot, env.E2E_OUT, async (page) => {
  await page.goto(env.E2E_URL, { waitUntil: "domcontentloaded" });
  await page.locator(".monaco-workbench").waitFor({ timeout: 60000 });
  step("workbench loaded");
  const lensWith = (re, timeout) => page.waitForFunction((src) => [...document.querySelectorAll(".codelens-decoration a")]
    .some((a) => new RegExp(src).test(a.textContent.trim())), re.source, { timeout }).catch(() => undefined);
  if (env.E2E_SOURCE) {
    // the first file opened: its impacted-tests lens, through an edit and a save
    await openFile(page, env.E2E_SOURCE);
    await lensWith(/impacted test/, 120000);
    seen.sourceLenses = await texts(page.locator(".codelens-decoration a"));
    step(`source lenses: ${JSON.stringify(seen.sourceLenses)}`);
    // typed on the first line: the lens there stays in view (lenses off screen are not drawn);
    // a click on a drawn line (the lines' element is as tall as the file)
    await page.locator(".part.editor .monaco-editor .view-line").first().click();
    await page.keyboard.press("Control+Home");
    await page.keyboard.type("# edited\n");
    seen.sourceDirty = await page.locator(".tab.dirty").first().waitFor({ timeout: 3000 })
      .then(() => true, () => false);
    seen.sourceTabClass = await page.locator(".tab.active").first().getAttribute("class").catch(() => null);
    await lensWith(/unsaved edit/, 30000);
    seen.sourceLensesEdited = await texts(page.locator(".codelens-decoration a"));
    step(`source lenses after the edit: ${JSON.stringify(seen.sourceLensesEdited)}`);
    await shot(page, "source-lens-edited");
    const savedAt = Date.now();
    await page.keyboard.press("Control+S");
    await lensWith(/^▶ \d+ impacted test files?$/, 60000);
    seen.savedMs = Date.now() - savedAt;
    seen.sourceLensesSaved = await texts(page.locator(".codelens-decoration a"));
    step(`source lenses ${seen.savedMs} ms after the save: ${JSON.stringify(seen.sourceLensesSaved)}`);
    await shot(page, "source-lens-after-save");
  }
  await openFile(page, watchFile);
  await page.locator(".codelens-decoration a").first().waitFor({ timeout: 120000 }).catch(() => undefined);
  seen.lensesFirst = await texts(page.locator(".codelens-decoration a"));
  step(`lenses: ${JSON.stringify(seen.lensesFirst)}`);

  await testingView(page);
  await palette(page, "Test: Run All Tests");
  const t0 = Date.now();
  step("Test: Run All Tests");
  await rowIcon(page, watch, ".codicon-testing-passed-icon", runTimeout);
  await rowIcon(page, kept, keptIcon, runTimeout);
  await page.waitForFunction(() => !document.querySelector(
    ".test-explorer .codicon-testing-queued-icon, .test-explorer .codicon-testing-loading-icon"),
    null, { timeout: runTimeout });
  seen.runAllSeconds = (Date.now() - t0) / 1000;
  seen.before = await explorerRows(page);
  step(`run all ended after ${seen.runAllSeconds} s: ${JSON.stringify(seen.before)}`);
  await shot(page, "run-all");

  // the edit that flips an outcome, typed at the end of the file, then saved
  await openFile(page, env.E2E_EDIT_FILE);
  await page.locator(".part.editor .monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(env.E2E_EDIT_TEXT);
  await page.keyboard.press("Control+S");
  await page.waitForFunction(() => !document.querySelector(".tab.dirty"), null, { timeout: 20000 });
  step("edited and saved");
  await page.waitForTimeout(3000);
  await testingView(page);
  seen.afterSave = await explorerRows(page);
  step(`after the save: ${JSON.stringify(seen.afterSave)}`);
  await shot(page, "after-save");

  // a window reload: a fresh extension host and language server (the daemon keeps running)
  await page.reload({ waitUntil: "domcontentloaded" });
  await page.locator(".monaco-workbench").waitFor({ timeout: 60000 });
  step("window reloaded");
  await openFile(page, watchFile);
  await testingView(page);
  // the untouched file's stored result comes back: by then the server has answered
  await rowIcon(page, kept, keptIcon, 120000).catch(() => undefined);
  await page.waitForTimeout(2000);
  await expandRow(page, watch);
  seen.afterReload = await explorerRows(page);
  step(`after the reload: ${JSON.stringify(seen.afterReload)}`);
  await shot(page, "after-reload-testing-view");
  await openFile(page, watchFile);
  await page.waitForTimeout(1500);
  seen.gutterAfterReload = await gutter(page);
  seen.lensesAfterReload = await texts(page.locator(".codelens-decoration a"));
  step(`watched file after the reload: gutter ${JSON.stringify(seen.gutterAfterReload)}, lenses ${JSON.stringify(seen.lensesAfterReload)}`);
  await shot(page, "after-reload-watched-file");
});
