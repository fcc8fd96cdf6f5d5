# Two commands do everything from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORE   := $(VENV)/.core-installed
DEV    := $(VENV)/.dev-installed
PEERS  := .venv-peers
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test lint bench bench-smoke bench-peers torture clean chromium promtool screenshots observability-preview

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(CORE): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(CORE)

## demo: install Conveyor and run the demo on the embedded SQLite default
demo: $(CORE)
	$(BIN)/conveyor demo

## lint: ruff, ruff format --check, mypy on the package
lint: $(DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## chromium: the browser the dashboard tests drive (Debian's package; installed only when missing)
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the dashboard tests"; \
		apt-get update -qq && apt-get install -y -qq chromium; \
	fi

## promtool: checks deploy/prometheus/alerts.yml in the tests (Debian's prometheus; installed only when missing)
promtool:
	@if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		echo "installing prometheus (promtool) for the alert rule tests"; \
		apt-get update -qq && apt-get install -y -qq prometheus; \
	fi

## test: lint, the whole suite on every available backend, a short benchmark smoke run
test: lint $(DEV) chromium promtool
	$(BIN)/pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory bench-smoke

## bench: the benchmark harness (see docs/benchmarks.md), then drain with metrics and tracing on and off
bench: $(DEV)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.observability

bench-smoke: $(DEV)
	$(BIN)/python -m bench.run --smoke

$(PEERS)/.installed: bench/peers/requirements.txt
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet --upgrade pip
	$(PEERS)/bin/pip install --quiet -r bench/peers/requirements.txt
	touch $@

## bench-peers: Conveyor against Celery, RQ, Dramatiq, Huey, arq, SAQ, Procrastinate (rewrites docs/benchmarks.md)
bench-peers: $(DEV) $(PEERS)/.installed
	$(BIN)/python -m bench.compare --peers-python $(PEERS)/bin/python $(BENCH_ARGS)

## screenshots: every dashboard page, light and dark, from a real run (docs/img/dashboard-*.png)
screenshots: $(DEV) chromium
	$(BIN)/python scripts/dashboard_screenshots.py

## observability-preview: the Grafana panels drawn from a real run scraped by a real Prometheus
observability-preview: $(DEV) promtool
	$(BIN)/python scripts/observability_preview.py

## torture: the crash test, long form (20,000 jobs, every backend)
torture: $(DEV)
	CONVEYOR_CRASH_JOBS=20000 $(BIN)/pytest -q -s tests/test_crash.py

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .mypy_cache .ruff_cache .hypothesis conveyor-demo.db*
