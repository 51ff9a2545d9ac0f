# Two commands on a fresh machine: `make run` and `make test`. Both create the environment and install the
# locked dependencies first; nothing needs installing by hand beyond Python 3.11+.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1

TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint unit integration bench bench-retention bench-dsr bench-export faults scale soak schemas token clean

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.synced

run: install
	$(VENV)/bin/sailo dev

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest -q

unit: install
	$(VENV)/bin/pytest -q tests/unit

bench: install
	$(PY) -m bench.ingest
	$(PY) -m bench.retention
	$(PY) -m bench.dsr
	$(PY) -m bench.export

# BENCH_RETENTION_SCALE=0.1 for a quick run (100,000 live artifacts instead of 1,000,000).
bench-retention: install
	$(PY) -m bench.retention

# BENCH_DSR_SCALE=0.1 for a quick run (100,000 contacts instead of 1,000,000).
bench-dsr: install
	$(PY) -m bench.dsr

# .venv/bin/python -m bench.export --help for the loan's size (default 50 recordings of 60 s at 16 kHz).
bench-export: install
	$(PY) -m bench.export

# The fault harness (tests/faults): 100,000 events under kill -9, forced crash points, database and broker
# faults; exit 1 if anything acknowledged is lost or any effect happens twice. --help for its options.
faults: install
	$(PY) -m tests.faults faults

# 1, 2 and 3 instances of every service against one database and broker: throughput and the same checks.
scale: install
	$(PY) -m tests.faults scale

# 30 minutes at a steady rate: memory of each process, deletion lag, consumer lag (--minutes, --rate).
soak: install
	$(PY) -m tests.faults soak

schemas: install
	$(VENV)/bin/sailo schemas

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
