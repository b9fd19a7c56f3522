// Drive a real VS Code (code-server) in Debian's Chromium with playwright-core: open the fixture
// workspace, see the Maestro status bar item and the code lenses, run a test file from its lens and
// then all tests from the Test Explorer (one test sleeps past eglot-like request timeouts), see the
// failure as a squiggle, in the Problems panel and in the Testing view (with pytest's whole report
// in the Test Results panel), the Impacted Tests view for
// a source file, and another source file's lens count after an edit and a save; then restart the daemon and
// reload the window (a new language server) and see the stored result again on the reopened file
// (lens marked cached, squiggle, Testing view); last, run a file the workspace policy refuses and
// see the warning with its remediation and retry time. Screenshots go to $E2E_ARTIFACTS.
//
//   E2E_URL=http://127.0.0.1:PORT/?folder=/ws E2E_ARTIFACTS=dir E2E_NODE_MODULES=.../node_modules \
//   E2E_OUT=seen.json node drive.cjs
// Writes what it saw as JSON to $E2E_OUT (also on failure, with `error`), exit 0 unless it crashed.
"use strict";
const { recorder, palette, openFile, expandRow, texts, lensesWith, drive } = require("./lib.cjs");

const url = process.env.E2E_URL;
const { seen, step, shot } = recorder(process.env.E2E_ARTIFACTS);

/** Open the Testing view's folder rows (test files sit in folder items): tests/, tests/unit/. */
async function expandFolders(page) {
  await expandRow(page, "tests");
  await expandRow(page, "unit");
}

drive(seen, shot, process.env.E2E_OUT, async (page) => {
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.locator(".monaco-workbench").waitFor({ timeout: 60000 });
  step("workbench loaded");

  await openFile(page, "tests/test_calc.py");
  step("opened tests/test_calc.py");

  const status = page.locator(".statusbar-item", { hasText: "Maestro" }).first();
  await status.waitFor({ timeout: 60000 });
  // wait until the server answered maestro/status (the item leaves its "starting" spinner)
  await page.waitForFunction(() => {
    const el = [...document.querySelectorAll(".statusbar-item")].find((e) => e.textContent.includes("Maestro"));
    const label = el && (el.getAttribute("aria-label") || "");
    return !!label && !label.includes("Starting");
  }, null, { timeout: 60000 });
  seen.statusBar = (await status.innerText()).trim();
  seen.statusBarTooltip = await status.getAttribute("aria-label");
  step(`status bar: ${seen.statusBar}`);

  const lenses = page.locator(".codelens-decoration a");
  await lenses.filter({ hasText: "Run" }).first().waitFor({ timeout: 90000 });
  seen.lenses = await texts(lenses);
  step(`lenses: ${JSON.stringify(seen.lenses)}`);
  await shot(page, "status-bar-and-lenses");

  // run the file from its lens: maestro.runFile through the server; progress, diagnostics, and
  // the test-explorer notifications of the run
  await lenses.filter({ hasText: "Run file" }).first().click();
  step("clicked ▶ Run file");
  const squiggle = page.locator(".view-overlays .squiggly-error, .view-overlays [class*='squiggly-error']");
  await squiggle.first().waitFor({ timeout: 180000 });
  seen.squiggles = await squiggle.count();
  step(`squiggles: ${seen.squiggles}`);
  // the lens now shows the last result
  await page.waitForFunction(() => [...document.querySelectorAll(".codelens-decoration a")]
    .some((a) => /failed/.test(a.textContent)), null, { timeout: 30000 }).catch(() => undefined);
  seen.lensesAfterRun = await texts(lenses);
  await page.waitForTimeout(500);
  await shot(page, "failure-squiggle");

  // hover the squiggle: the diagnostic message
  await squiggle.first().hover({ force: true }).catch(() => undefined);
  await page.waitForTimeout(1500);
  seen.hover = await texts(page.locator(".monaco-hover-content"));
  await shot(page, "diagnostic-hover");
  await page.keyboard.press("Escape");

  await palette(page, "View: Focus Problems");
  const problems = page.locator(".markers-panel .monaco-list-row");
  await problems.first().waitFor({ timeout: 20000 });
  seen.problems = await texts(problems);
  step(`problems: ${JSON.stringify(seen.problems)}`);
  await shot(page, "problems-panel");

  // Test Explorer: the run above is mirrored there; now run everything from the explorer
  // (our run profile -> maestro/testExplorer/run)
  await palette(page, "Testing: Focus on Test Explorer View");
  const tree = page.locator(".test-explorer .monaco-list-row");
  await tree.first().waitFor({ timeout: 30000 });
  await expandFolders(page);
  await palette(page, "Test: Run All Tests");
  const runAllAt = Date.now();
  step("Test: Run All Tests");
  // tests/test_slow.py sleeps past eglot-like request timeouts: the run must still end in the view
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll(".test-explorer .monaco-list-row")];
    const icon = (name, cls) => rows.some((r) => r.textContent.includes(name) && r.querySelector(cls));
    return icon("test_calc.py", ".codicon-testing-failed-icon") && icon("test_other.py", ".codicon-testing-passed-icon")
      && icon("test_param.py", ".codicon-testing-failed-icon") && icon("test_slow.py", ".codicon-testing-passed-icon");
  }, null, { timeout: 180000 });
  seen.runAllSeconds = (Date.now() - runAllAt) / 1000;
  step(`run all: the slow file passed after ${seen.runAllSeconds} s`);
  // expand the failing files to show their tests; icons can settle before the run ends (a
  // failure shows at once): wait until none of the tests is left queued or running
  await expandRow(page, "test_calc.py");
  await expandRow(page, "test_param.py");
  await page.waitForFunction(() => !document.querySelector(
    ".test-explorer .codicon-testing-queued-icon, .test-explorer .codicon-testing-loading-icon"),
    null, { timeout: 60000 }).catch(() => undefined);
  seen.explorer = await page.$$eval(".test-explorer .monaco-list-row", (rows) => rows.map((r) => ({
    label: (r.querySelector(".label, .monaco-icon-label, .test-label") || r).textContent.trim(),
    icons: [...r.querySelectorAll("[class*='codicon-testing-']")].map((i) =>
      [...i.classList].filter((c) => c.startsWith("codicon-testing-")).join(" ")),
  })));
  step(`explorer: ${JSON.stringify(seen.explorer)}`);
  seen.testResultsPanel = await texts(page.locator(".test-output-peek, .test-results"))
    .catch(() => []);
  await shot(page, "test-explorer");
  // the failure's whole report: its message selected in the Test Results tree shows in the
  // panel's text view, as pytest printed it (the traceback, where it raised)
  await page.locator(".part.panel .monaco-list-row", { hasText: "ZeroDivisionError: no zero please" })
    .first().click({ timeout: 10000 }).catch((e) => step(`no failure message row: ${e}`));
  await page.waitForFunction(() => [...document.querySelectorAll(".part.panel .view-lines")]
    .some((v) => v.textContent.includes("calc.py:7")), null, { timeout: 15000 }).catch(() => undefined);
  seen.failureReport = await texts(page.locator(".part.panel .view-lines")).catch(() => []);
  step(`failure report: ${JSON.stringify(seen.failureReport)}`);
  await shot(page, "failure-report");
  // the Problems panel after the whole run: the parametrized failure is one entry
  await palette(page, "View: Focus Problems");
  await page.locator(".markers-panel .monaco-list-row", { hasText: "test_many" }).first()
    .waitFor({ timeout: 30000 }).catch(() => undefined);
  seen.problemsAfterAll = await texts(problems);
  step(`problems after all: ${JSON.stringify(seen.problemsAfterAll)}`);
  await shot(page, "problems-after-all");

  // Impacted Tests view for a source file, with an unsaved edit
  await openFile(page, "pkg/calc.py");
  await page.locator(".codelens-decoration a", { hasText: "impacted" }).first().waitFor({ timeout: 60000 })
    .catch(() => undefined);
  seen.sourceLenses = await texts(page.locator(".codelens-decoration a"));
  await palette(page, "Maestro: Focus on Impacted Tests View");
  const impacted = page.locator(".monaco-list-row", { hasText: "tests/test_calc.py" });
  await impacted.first().waitFor({ timeout: 60000 }).catch(() => undefined);
  seen.impactedView = await texts(page.locator("[id='workbench.view.extension.maestro'] .monaco-list-row, .pane-body .monaco-list-row").filter({ hasText: "tests/" }));
  seen.impactedMessage = await texts(page.locator(".pane-body .tree-explorer-viewlet-tree-view-message, .pane-body .message"))
    .catch(() => []);
  step(`impacted view: ${JSON.stringify(seen.impactedView)}`);
  await shot(page, "impacted-tests-view");

  // edit a source file, then save it: its lens marks the unsaved edit, then counts the saved
  // file (the count must not stay on the unsaved state or drop to 0)
  await openFile(page, "pkg/other.py");
  seen.otherLenses = await lensesWith(page, /impacted test/, 60000);
  await page.locator(".part.editor .monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type("# edited\n");
  seen.otherLensesEdited = await lensesWith(page, /unsaved edit/, 30000);
  step(`lenses after the edit: ${JSON.stringify(seen.otherLensesEdited)}`);
  const savedAt = Date.now();
  await page.keyboard.press("Control+S");
  seen.otherLensesSaved = await lensesWith(page, /^▶ \d+ impacted test files?$/, 30000);
  seen.savedMs = Date.now() - savedAt;
  step(`lenses ${seen.savedMs} ms after the save: ${JSON.stringify(seen.otherLensesSaved)}`);
  await shot(page, "source-lens-after-save");
  // the status bar once the runs are over (it refreshes on run begin/end)
  await page.waitForFunction(() => {
    const el = [...document.querySelectorAll(".statusbar-item")].find((e) => e.textContent.includes("Maestro"));
    return el && !el.textContent.includes("running");
  }, null, { timeout: 30000 }).catch(() => undefined);
  seen.statusBarEnd = (await status.innerText()).trim();
  seen.statusBarEndTooltip = await status.getAttribute("aria-label");

  // Restart: a fresh daemon, then reload the window (a fresh extension host and language
  // server). The reopened test file shows the stored result of its unchanged inputs.
  await palette(page, "Maestro: Restart Daemon");
  await page.waitForTimeout(3000);
  step("restarted the daemon");
  await page.reload({ waitUntil: "domcontentloaded" });
  await page.locator(".monaco-workbench").waitFor({ timeout: 60000 });
  step("window reloaded");
  await openFile(page, "tests/test_calc.py");
  await page.waitForFunction(() => [...document.querySelectorAll(".codelens-decoration a")]
    .some((a) => /cached/.test(a.textContent)), null, { timeout: 90000 });
  seen.lensesAfterRestart = await texts(page.locator(".codelens-decoration a"));
  step(`lenses after restart: ${JSON.stringify(seen.lensesAfterRestart)}`);
  await squiggle.first().waitFor({ timeout: 60000 });
  seen.squigglesAfterRestart = await squiggle.count();
  await palette(page, "View: Focus Problems");
  await problems.first().waitFor({ timeout: 20000 });
  seen.problemsAfterRestart = await texts(problems);
  await shot(page, "after-restart-cached-result");
  await palette(page, "Testing: Focus on Test Explorer View");
  await tree.first().waitFor({ timeout: 30000 });
  await expandFolders(page);
  await page.waitForFunction(() => [...document.querySelectorAll(".test-explorer .monaco-list-row")]
    .some((r) => r.textContent.includes("test_calc.py") && r.querySelector(".codicon-testing-failed-icon")),
    null, { timeout: 60000 }).catch(() => undefined);
  seen.explorerAfterRestart = await page.$$eval(".test-explorer .monaco-list-row", (rows) => rows.map((r) => ({
    label: (r.querySelector(".label, .monaco-icon-label, .test-label") || r).textContent.trim(),
    icons: [...r.querySelectorAll("[class*='codicon-testing-']")].map((i) =>
      [...i.classList].filter((c) => c.startsWith("codicon-testing-")).join(" ")),
  })));
  step(`explorer after restart: ${JSON.stringify(seen.explorerAfterRestart)}`);
  await shot(page, "after-restart-testing-view");

  // a run the workspace policy refuses (.maestro/policy/freeze.rego): the server's warning
  // names the rule, its remediation and the retry time
  await openFile(page, "tests/test_frozen.py");
  const frozenLens = page.locator(".codelens-decoration a", { hasText: "Run file" }).first();
  await frozenLens.waitFor({ timeout: 90000 });
  await frozenLens.click();
  step("clicked ▶ Run file on tests/test_frozen.py");
  const toast = page.locator(".notifications-toasts .notification-list-item-message", { hasText: "refused by policy" });
  await toast.first().waitFor({ timeout: 90000 });
  await page.waitForTimeout(500);
  seen.deniedNotifications = await texts(page.locator(".notifications-toasts .notification-list-item-message"));
  step(`denied: ${JSON.stringify(seen.deniedNotifications)}`);
  await shot(page, "policy-denied-run");
});
