# Quick start: `make run` (demo on an embedded workspace) and `make test` (the whole suite).
# Both create .venv themselves on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.maestro-installed
# Strict editable mode builds a link tree under build/ that mypy and pytest both read;
# re-linking is cheap and picks up newly added modules.
EDITABLE := --no-build-isolation --config-settings editable_mode=strict

# Debian packages the end-to-end tests drive for real: headless editors (neovim, emacs),
# redis-server and nginx (coordinator scale-out), ccache (a cache client nobody here wrote).
# Installed when missing and we can (root, apt); otherwise those tests skip and say why.
# SYSDEPS maps a command to its package; SYSDEPS_LIBS are packages with no command of their own
# (elpa-eglot: eglot for Emacs 28, which has none built in), checked with dpkg-query.
SYSDEPS := nvim:neovim emacs:emacs-nox redis-server:redis-server nginx:nginx ccache:ccache git:git
SYSDEPS_LIBS := elpa-eglot

# code-server + playwright for the real-VS-Code end-to-end test: ~8 min to prepare on a fresh
# machine, kept outside the clone so later runs (and CI on the same machine) reuse it.
export MAESTRO_VSCODE_E2E_DIR ?= $(HOME)/.cache/maestro/vscode-e2e

.PHONY: run test lint typecheck unit extended bench relink sysdeps vscode vscode-e2e-setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools>=77" wheel
	$(BIN)/pip install -q $(EDITABLE) -e '.[dev]'
	touch $@

relink: $(STAMP)
	$(BIN)/pip install -q --no-deps $(EDITABLE) -e .

run: relink
	$(BIN)/maestro demo

lint: relink
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd build/__editable__.*/ && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p maestro

sysdeps:
	@missing=""; for pair in $(SYSDEPS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	for pkg in $(SYSDEPS_LIBS); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "warning: missing$$missing (not root or no apt-get); the tests that need them will skip"; \
	  fi; \
	fi

# typecheck, unit-test, bundle and package the extension (-> clients/vscode/*.vsix)
vscode:
	clients/vscode/build.sh

# best effort: where it cannot work (no root/apt, no node 20) the e2e test skips and says why
vscode-e2e-setup: sysdeps
	-clients/vscode/e2e/setup.sh

# the `extended` tests (long real-project variants of what the suite checks on sample
# workspaces) run with the benches. The suite runs TEST_JOBS test processes side by side (its
# time is the pytest children its tests start): docs/BENCHMARKS.md says where the time goes
TEST_JOBS ?= 3
unit: relink sysdeps vscode vscode-e2e-setup
	$(BIN)/pytest -q --durations=25 -n $(TEST_JOBS) -m "not extended"

extended: relink sysdeps vscode vscode-e2e-setup
	$(BIN)/pytest -q --durations=10 -m extended

test: lint unit

bench: relink extended
	$(BIN)/pip install -q -e '.[bench]' $(EDITABLE)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
