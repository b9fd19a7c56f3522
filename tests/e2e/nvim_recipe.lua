-- What a person sees in Neovim 0.7 with the README's recipe as init.lua (loaded by -u before
-- the first file, as a real init.lua is): lenses on the first buffer opened (a source file),
-- the impacted count right after an edit and `:w`, lenses on a second buffer (a test file), a
-- long run of that file from its lens ending with its result on the lenses. MAESTRO_MODE=real
-- stops after the first buffer's lens, an edit and `:w` (a real project's source file).
-- No input events happen headless (no CursorHold, BufEnter only from :edit), so a lens that
-- appears came from the recipe's own triggers. Writes JSON to $MAESTRO_OUT, then quits.
local out = os.getenv("MAESTRO_OUT")
local seen = { messages = {}, steps = {} }

local function titles(bufnr)
  local found = {}
  for _, lens in ipairs(vim.lsp.codelens.get(bufnr)) do
    if lens.command then table.insert(found, { line = lens.range.start.line, title = lens.command.title }) end
  end
  return found
end

local function wait_for(bufnr, ms, pred)
  local start = vim.loop.hrtime()
  local ok = vim.wait(ms, function() return pred(titles(bufnr)) end, 20)
  return ok, (vim.loop.hrtime() - start) / 1e6
end

local function has(pattern)
  return function(found)
    for _, lens in ipairs(found) do
      if lens.title:find(pattern) then return true end
    end
    return false
  end
end

local function restarted()
  -- a new Neovim (a new server) on a test file that ran before: its stored result, marked cached
  local buf = vim.api.nvim_get_current_buf()
  local got, ms = wait_for(buf, 120000, has("cached"))
  seen.steps.restarted = { ok = got, ms = ms, lenses = titles(buf) }
end

-- The first buffer (a source file) gets its lens without any user action; then ``edit`` changes
-- its lines and :w saves them (after a moment, as a person types) -> the saved count.
local function first_lens_edit_save(edit)
  local first = vim.api.nvim_get_current_buf()
  seen.first_name = vim.api.nvim_buf_get_name(first)
  local got, ms = wait_for(first, 120000, has("impacted test"))
  seen.steps.first = { ok = got, ms = ms, lenses = titles(first) }
  assert(got, "no lens on the first buffer")

  vim.api.nvim_buf_set_lines(first, 0, -1, false, edit(vim.api.nvim_buf_get_lines(first, 0, -1, false)))
  vim.wait(300)
  vim.cmd("doautocmd InsertLeave")  -- as leaving insert mode after typing the edit
  got, ms = wait_for(first, 20000, has("unsaved edit"))
  seen.steps.edited = { ok = got, ms = ms, lenses = titles(first) }
  vim.cmd("write")
  got, ms = wait_for(first, 20000, function(found)
    return has("impacted test")(found) and not has("unsaved")(found)
  end)
  seen.steps.saved = { ok = got, ms = ms, lenses = titles(first) }
end

-- A second buffer, a test file: its run lenses, then a run of the whole file from its lens (the
-- command answers at once; the recipe refreshes the lenses when maestro/runFinished arrives)
-- until a lens shows $MAESTRO_RAN; then the file's diagnostics.
local function run_second(path)
  local got, ms
  vim.cmd("edit " .. path)
  local second = vim.api.nvim_get_current_buf()
  got, ms = wait_for(second, 60000, has("Run file"))
  seen.steps.second = { ok = got, ms = ms, lenses = titles(second) }

  vim.api.nvim_win_set_cursor(0, { 1, 0 })  -- the file's lens, as <leader>ml there
  vim.lsp.codelens.run()
  local ran = os.getenv("MAESTRO_RAN") or "failed"
  got, ms = wait_for(second, 180000, has(ran))
  seen.steps.ran = { ok = got, ms = ms, lenses = titles(second) }
  if ran:find("failed") then
    vim.wait(15000, function() return #vim.diagnostic.get(second) > 0 end, 50)
  end
  seen.diagnostics = {}
  for _, d in ipairs(vim.diagnostic.get(second)) do
    table.insert(seen.diagnostics, { lnum = d.lnum, message = d.message })
  end
end

local function real()
  -- a real project's source file: a line added at its end; then one of its test files run
  first_lens_edit_save(function(lines)
    table.insert(lines, "# edited")
    return lines
  end)
  local second = os.getenv("MAESTRO_SECOND")
  if second then run_second(second) end
end

local function session()
  -- 1. and 2.: the first buffer's lens, then a function edited and saved
  first_lens_edit_save(function(lines)
    for i, line in ipairs(lines) do
      if line:find("return a %+ b") then lines[i] = "    return b + a" end
    end
    return lines
  end)
  -- 3. and 4.: the test file; it holds a test that sleeps past eglot-like request timeouts:
  -- the lens must show the whole run's result once it ends (a partial result streams in before)
  run_second("tests/test_calc.py")
end

local modes = { session = session, restart = restarted, real = real }
local ok, err = pcall(modes[os.getenv("MAESTRO_MODE")])
if not ok then seen.error = tostring(err) end
seen.messages = vim.split(vim.api.nvim_exec("messages", true), "\n")
for _, client in pairs(vim.lsp.get_active_clients()) do client.stop() end
vim.wait(5000, function() return #vim.lsp.get_active_clients() == 0 end, 50)
local f = io.open(out, "w")
f:write(vim.fn.json_encode(seen))
f:close()
vim.cmd("qa!")
