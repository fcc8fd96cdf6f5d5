# Two commands do everything from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORE   := $(VENV)/.core-installed
DEV    := $(VENV)/.dev-installed
PEERS  := .venv-peers
# Django 6 needs Python 3.12+: its tests run in a second venv on pyenv's CPython 3.12.
# Django 6 needs Python 3.12+: pyenv's interpreter if present (called directly, not through its shim,
# which needs PYENV_VERSION), else any python3.13/python3.12 on PATH that really runs.
DJANGO_PYTHON ?= $(shell for p in $$HOME/.pyenv/versions/3.12*/bin/python3.12 $$(command -v python3.13 python3.12 2>/dev/null); do \
	if [ -x "$$p" ] && "$$p" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then echo "$$p"; break; fi; done)
DJANGO_VENV := .venv-django
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: test-django demo test lint bench bench-smoke bench-peers torture clean chromium screenshots

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
	$(BIN)/ruff check src tests bench tests_django
	$(BIN)/ruff format --check src tests bench tests_django
	$(BIN)/mypy

## chromium: the browser the dashboard tests drive (Debian's package; installed only when missing)
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the dashboard tests"; \
		apt-get update -qq && apt-get install -y -qq chromium; \
	fi

## test: lint, the whole suite on every available backend, the Django tests, a short benchmark smoke run
test: lint $(DEV) chromium test-django
	$(BIN)/pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory bench-smoke

$(DJANGO_VENV)/.installed: pyproject.toml
	@if [ -z "$(DJANGO_PYTHON)" ]; then \
		if [ "$$CONVEYOR_REQUIRE_DJANGO" = "1" ]; then echo "no Python 3.12 for the Django tests (CONVEYOR_REQUIRE_DJANGO=1)"; exit 1; fi; \
		echo "no Python 3.12: the Django tests are skipped"; exit 0; \
	fi; \
	$(DJANGO_PYTHON) -m venv $(DJANGO_VENV) && \
	$(DJANGO_VENV)/bin/pip install --quiet -e '.[postgres,redis,django]' 'pytest>=8.0' 'pytest-timeout>=2.3' && \
	touch $@

## test-django: the Django 6 Tasks backend's tests, in .venv-django on Python 3.12
test-django: $(DJANGO_VENV)/.installed
	@if [ -x $(DJANGO_VENV)/bin/pytest ]; then $(DJANGO_VENV)/bin/pytest -q tests_django; \
	elif [ "$$CONVEYOR_REQUIRE_DJANGO" = "1" ]; then echo "Django tests required but .venv-django is missing"; exit 1; fi

## bench: the benchmark harness (see docs/benchmarks.md)
bench: $(DEV)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.async_producers
	$(BIN)/python -m bench.flow_control

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

## torture: the crash test, long form (20,000 jobs, every backend)
torture: $(DEV)
	CONVEYOR_CRASH_JOBS=20000 $(BIN)/pytest -q -s tests/test_crash.py

clean:
	rm -rf $(VENV) $(PEERS) $(DJANGO_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis conveyor-demo.db*
