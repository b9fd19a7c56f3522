-- Headless Neovim (0.7+) end to end: start `python -P -m maestro.server` with vim.lsp.start_client,
-- attach the current buffer (tests/test_calc.py), ask for code lenses, run the impacted tests of
-- pkg/calc.py through workspace/executeCommand and read the failure diagnostics.
-- Writes what it saw as JSON to $MAESTRO_OUT, then quits (cquit 1 on a Lua error).
local root = os.getenv("MAESTRO_WS")
local python = os.getenv("MAESTRO_PY")
local out = os.getenv("MAESTRO_OUT")
local seen = { lenses = {}, diagnostics = {}, progress = 0, test_results = {} }

local function finish()
  local f = io.open(out, "w")
  f:write(vim.fn.json_encode(seen))
  f:close()
  vim.cmd("qa!")
end

local ok, err = pcall(function()
  local ready = false
  local id = vim.lsp.start_client({
    name = "maestro",
    cmd = { python, "-P", "-m", "maestro.server" },
    cmd_cwd = root,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = "ws" } },
    init_options = { interpreter = python },
    on_init = function() ready = true end,
    handlers = {
      ["maestro/testResults"] = function(_, result)
        -- batches as results arrive, each test once: keep every test's outcome
        for _, t in ipairs(result.tests) do seen.test_results[t.id] = t.outcome end
      end,
      ["maestro/runFinished"] = function(_, result) seen.finished = result end,
      ["$/progress"] = function(_, result)
        seen.progress = seen.progress + 1
        if result and result.value and result.value.kind == "end" then
          seen.progress_end = result.value.message
        end
      end,
    },
  })
  assert(id, "start_client failed")
  vim.lsp.buf_attach_client(0, id)
  assert(vim.wait(60000, function() return ready end, 50), "the server did not initialize")
  seen.server = vim.lsp.get_client_by_id(id).name

  local params = { textDocument = vim.lsp.util.make_text_document_params() }
  local resp = vim.lsp.buf_request_sync(0, "textDocument/codeLens", params, 60000)
  for _, r in pairs(resp or {}) do
    assert(not r.err, vim.inspect(r.err))
    for _, lens in ipairs(r.result or {}) do
      table.insert(seen.lenses, { line = lens.range.start.line, title = lens.command.title,
                                  command = lens.command.command })
    end
  end

  local calc = vim.uri_from_fname(root .. "/pkg/calc.py")
  resp = vim.lsp.buf_request_sync(0, "workspace/executeCommand",
    { command = "maestro.runImpacted", arguments = { calc } }, 180000)
  local run_id
  for _, r in pairs(resp or {}) do
    assert(not r.err, vim.inspect(r.err))
    run_id = r.result.runId
  end
  -- the command answers at once with the run id; the outcome arrives as maestro/runFinished
  assert(vim.wait(180000, function() return seen.finished and seen.finished.runId == run_id end, 50),
    "the run did not finish")
  seen.run = { passed = seen.finished.passed, failed = seen.finished.failed, runId = run_id }

  vim.wait(15000, function() return #vim.diagnostic.get(0) > 0 end, 50)
  for _, d in ipairs(vim.diagnostic.get(0)) do
    table.insert(seen.diagnostics, { lnum = d.lnum, message = d.message, source = d.source })
  end
  vim.lsp.stop_client(id)
  vim.wait(5000, function() return vim.lsp.get_client_by_id(id) == nil end, 50)
end)
if not ok then
  seen.error = tostring(err)
end
finish()
