// The `maestro.impactedView.followUnsaved` setting in a real VS Code (code-server) in Debian's
// Chromium. The window starts with the setting off (the test's settings): a source file's
// Impacted Tests view, an edit typed into the file, and once the lens shows the server counted the
// unsaved edit, the view still shows the saved file's answer (it does not follow typing). Then the
// setting is turned on in the workspace's .vscode/settings.json (E2E_WS_SETTINGS), and the next
// keystrokes refresh the view: it says "(unsaved edit)". Last, a save: the view shows the saved file.
//
//   E2E_URL=... E2E_ARTIFACTS=dir E2E_NODE_MODULES=... E2E_OUT=seen.json E2E_SOURCE=pkg/other.py \
//   E2E_WS_SETTINGS=/ws/.vscode/settings.json node drive_follow.cjs
"use strict";
const fs = require("fs");
const { recorder, palette, openFile, texts, drive } = require("./lib.cjs");

const env = process.env;
const { seen, step, shot } = recorder(env.E2E_ARTIFACTS);
const source = env.E2E_SOURCE;
const DEBOUNCE_MS = 500; // the view's refresh delay after a keystroke (impactedView.ts)

drive(seen, shot, env.E2E_OUT, async (page) => {
  await page.goto(env.E2E_URL, { waitUntil: "domcontentloaded" });
  await page.locator(".monaco-workbench").waitFor({ timeout: 60000 });
  step("workbench loaded");
  const lensWith = (re, timeout) => page.waitForFunction((src) => [...document.querySelectorAll(".codelens-decoration a")]
    .some((a) => new RegExp(src).test(a.textContent.trim())), re.source, { timeout });
  // the side bar's text: the Impacted Tests view's message ("1 impacted test file by ...") and rows
  const sideBar = async () => (await page.locator(".part.sidebar").innerText()).trim();
  const sideBarWith = (re, timeout) => page.waitForFunction((src) => {
    const bar = document.querySelector(".part.sidebar");
    return !!bar && new RegExp(src).test(bar.innerText);
  }, re.source, { timeout });
  const typeAtEnd = async (text) => {
    await page.locator(".part.editor .monaco-editor .view-line").first().click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type(text);
  };

  await openFile(page, source);
  await lensWith(/impacted test/, 120000);
  seen.lenses = await texts(page.locator(".codelens-decoration a"));
  step(`lenses: ${JSON.stringify(seen.lenses)}`);
  await palette(page, "Maestro: Focus on Impacted Tests View");
  await sideBarWith(/impacted test files? by /, 60000);
  seen.viewBefore = await sideBar();
  step(`view: ${JSON.stringify(seen.viewBefore)}`);
  await shot(page, "view-before-edit");

  // setting off: the server counts the edit (the lens says so), the view stays on the saved file
  await typeAtEnd("# edited\n");
  await lensWith(/unsaved edit/, 30000);
  seen.lensesEdited = await texts(page.locator(".codelens-decoration a"));
  step(`lenses after the edit: ${JSON.stringify(seen.lensesEdited)}`);
  await page.waitForTimeout(4 * DEBOUNCE_MS + 2000); // several refreshes' worth, had one been asked
  seen.viewOff = await sideBar();
  step(`view with the setting off: ${JSON.stringify(seen.viewOff)}`);
  await shot(page, "view-setting-off-after-edit");

  // setting on (workspace settings, as a user's edit of them would): the next keystroke refreshes
  const settings = JSON.parse(fs.readFileSync(env.E2E_WS_SETTINGS, "utf8"));
  settings["maestro.impactedView.followUnsaved"] = true;
  fs.writeFileSync(env.E2E_WS_SETTINGS, JSON.stringify(settings, null, 2));
  step("followUnsaved turned on in the workspace settings");
  // VS Code reads the file when its watcher fires: keep typing until a refresh follows
  const deadline = Date.now() + 60000;
  seen.keystrokesOn = 0;
  for (;;) {
    await typeAtEnd("#");
    seen.keystrokesOn += 1;
    const followed = await sideBarWith(/unsaved edit/, 3000).then(() => true, () => false);
    if (followed) break;
    if (Date.now() > deadline) throw new Error("the view never followed the unsaved edit with the setting on");
  }
  seen.viewOn = await sideBar();
  step(`view with the setting on: ${JSON.stringify(seen.viewOn)}`);
  await shot(page, "view-setting-on-after-edit");

  // a save refreshes the view whatever the setting: the saved file's answer again
  await page.keyboard.press("Control+S");
  await page.waitForFunction(() => {
    const bar = document.querySelector(".part.sidebar");
    return !!bar && /impacted test files? by /.test(bar.innerText) && !/unsaved edit/.test(bar.innerText);
  }, null, { timeout: 30000 });
  seen.viewSaved = await sideBar();
  step(`view after the save: ${JSON.stringify(seen.viewSaved)}`);
  await shot(page, "view-after-save");
});
