# linky-stream — the two commands a newcomer needs:
#   make run    set everything up (virtualenv, deps, Kafka + Redis) and run the main job
#   make test   set everything up and run the whole test suite against the real stack
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv page stack-up stack-down stack-status stack-reset bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The portal's page: npm packages from the committed lockfile, bundled by esbuild (portal/page/).
PAGE_DIST := portal/page/dist/app.js
$(PAGE_DIST): portal/page/package.json portal/page/package-lock.json portal/page/index.html $(wildcard portal/page/src/*)
	cd portal/page && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

page: $(PAGE_DIST)

stack-up: venv
	$(PY) -m deploy.local up

stack-down:
	$(PY) -m deploy.local down

stack-status:
	$(PY) -m deploy.local status

stack-reset:
	$(PY) -m deploy.local reset

# The main job: see README "make run". DEVICE=/dev/serial/by-id/... reads a real dongle.
run: stack-up page
	$(PY) -m deploy.local.pipeline $(if $(DEVICE),--device $(DEVICE),) $(RUN_ARGS)

# Tests bring the stack up themselves (tests/conftest.py) and stop what they started.
# Then the date-sensitive tests (marker "clock") run again with the product's clock shifted to
# SHIFTED_CLOCK (stream/clock.py), so a test that only holds on the day it was written fails here.
SHIFTED_CLOCK ?= 2028-02-29T12:00:00+01:00
test: venv page
	$(PY) -m deploy.local deps >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PY) -m pytest -m clock --clock-at=$(SHIFTED_CLOCK) $(PYTEST_ARGS)

bench: stack-up
	$(PY) bench/decode.py
	$(PY) bench/edge_reader.py
	$(PY) bench/stream_throughput.py
	$(PY) bench/stream_latency.py
	$(PY) bench/portal.py

clean: stack-down
	rm -rf $(VENV) .stack .cache portal/page/node_modules portal/page/dist
