// The README's VS Code screenshots: a real VS Code (code-server) in Debian's Chromium, the test
// file open with the Problems panel, before and after a failing run started from the
// "▶ Run file" lens. Run by tests/e2e/vscode_screenshots.py, which sets:
//   E2E_URL, E2E_NODE_MODULES (with playwright-core), E2E_CHROMIUM, E2E_BEFORE, E2E_AFTER (png)
"use strict";
const path = require("path");
const { launch, palette, openFile } = require(path.join(__dirname, "..", "..", "clients", "vscode", "e2e", "lib.cjs"));

async function main() {
  const browser = await launch(process.env.E2E_NODE_MODULES, process.env.E2E_CHROMIUM);
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(process.env.E2E_URL, { waitUntil: "domcontentloaded" });
    await page.locator(".monaco-workbench").waitFor({ timeout: 60000 });
    await openFile(page, "tests/test_calc.py");
    const lenses = page.locator(".codelens-decoration a");
    await lenses.filter({ hasText: "Run file" }).first().waitFor({ timeout: 120000 });
    await palette(page, "View: Focus Problems");
    await page.locator(".markers-panel").waitFor({ timeout: 20000 });
    await page.locator(".monaco-editor .view-lines").first().click({ position: { x: 400, y: 5 } });
    await page.waitForTimeout(1000);
    await page.screenshot({ path: process.env.E2E_BEFORE });
    console.log("before: lenses", JSON.stringify(await lenses.allInnerTexts()));

    await lenses.filter({ hasText: "Run file" }).first().click();
    const squiggle = page.locator(".view-overlays [class*='squiggly-error']");
    await squiggle.first().waitFor({ timeout: 180000 });
    await page.waitForFunction(() => [...document.querySelectorAll(".codelens-decoration a")]
      .some((a) => /failed/.test(a.textContent)), null, { timeout: 60000 });
    await page.locator(".markers-panel .monaco-list-row").first().waitFor({ timeout: 30000 });
    await page.waitForTimeout(1500);
    await page.screenshot({ path: process.env.E2E_AFTER });
    console.log("after: lenses", JSON.stringify(await lenses.allInnerTexts()));
    console.log("after: problems", JSON.stringify(await page.locator(".markers-panel .monaco-list-row").allInnerTexts()));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
