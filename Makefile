# kefu — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test check lint format bench install install-dev system-deps clean

# Debian packages the suite needs: headless Chromium for the page tests, CJK and
# emoji fonts so screenshots show Chinese, wrk for `make bench`, Dovecot for the IMAP
# polling tests (started by the tests on a free port, never as a service). Installed once.
APT_PACKAGES := chromium chromium-driver fonts-wqy-microhei fonts-noto-color-emoji wrk dovecot-imapd

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when pyproject.toml changes; the stamp files record what was installed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	@mkdir -p var
	$(BIN)/kefu migrate
	$(BIN)/kefu demo
	@echo
	@echo "kefu is starting on http://$(HOST):$(PORT)  (API: http://$(HOST):$(PORT)/api/v1/docs)"
	@echo "log in with one of the demo logins above; stop with Ctrl-C. Data stays in ./var/."
	@echo
	KEFU_LOG_JSON=$${KEFU_LOG_JSON:-false} $(BIN)/kefu serve --host $(HOST) --port $(PORT)

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

check: install-dev
	$(BIN)/ruff check kefu tests bench migrations
	$(BIN)/ruff format --check kefu tests bench migrations
	$(BIN)/mypy kefu
	$(BIN)/lint-imports

test: check system-deps
	$(BIN)/pytest -q -p no:cacheprovider --cov --cov-report=term:skip-covered

format: install-dev
	$(BIN)/ruff format kefu tests bench migrations
	$(BIN)/ruff check --fix kefu tests bench migrations

bench: install-dev system-deps
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage
