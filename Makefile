# Aduan: `make run` starts the hub on embedded defaults; `make test` runs the whole suite.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test
DEBS    := redis-server postgresql chromium

.PHONY: run test install install-test system-deps lint clean help bench lock audit

help:
	@echo "make run    - install, migrate and start the hub (http://127.0.0.1:8000)"
	@echo "make test   - install test dependencies and services, run the whole suite"
	@echo "make bench  - print pipeline and classifier benchmark figures"
	@echo "make audit  - check the locked dependencies for known vulnerabilities (needs PyPI's JSON API or OSV)"

# requirements.lock pins every dependency to the versions the suite was run with.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e .
	touch $@

install: $(STAMP)

$(TSTAMP): $(STAMP) pyproject.toml requirements.lock
	$(BIN)/pip install -q -c requirements.lock -e '.[test]'
	touch $@

install-test: $(TSTAMP)

# Debian packages the tests use: a real Redis, a real PostgreSQL, Chromium for the console tests.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# With no provider credentials in the environment the hub starts in sandbox mode: local fake
# providers and a "citizen phone" at http://127.0.0.1:8000/sandbox.
run: $(STAMP)
	$(BIN)/aduan migrate
	@if [ -z "$$TELEGRAM_BOT_TOKEN$$TWILIO_AUTH_TOKEN$$X_ACCESS_TOKEN$$X_BEARER_TOKEN$$INSTAGRAM_GRAPH_TOKEN" ]; then \
	  echo "no provider credentials set: starting in sandbox mode (http://127.0.0.1:8000/sandbox)"; \
	  $(BIN)/aduan up --sandbox; \
	else $(BIN)/aduan up; fi

test: system-deps $(TSTAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/aduan bench pipeline

# Known vulnerabilities in the locked versions (pip-audit asks OSV / PyPI's JSON API: needs internet).
audit: $(TSTAMP)
	$(BIN)/pip-audit --strict --no-deps --disable-pip -r requirements.lock

# Refresh requirements.lock after changing dependencies in pyproject.toml.
lock: $(TSTAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^aduan' > requirements.lock

clean:
	rm -rf $(VENV) data .pytest_cache
