# One entry point: `make demo` and `make test` work on a fresh clone with only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/breach-notify demo

# Two passes: everything else on 4 xdist workers, a test module per worker at a time (modules share
# their servers; most tests wait on subprocesses, so 4 beat 2 on a 2-core machine), then the
# timing comparisons alone on a quiet machine.
test: $(STAMP)
	scripts/ensure-chromium
	$(BIN)/python -m pytest -n 4 --dist loadfile -m "not serial"
	$(BIN)/python -m pytest -m serial

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 4 --dist loadfile -m "not slow and not serial"

lint: $(STAMP)
	$(BIN)/ruff check breach_notify flows tests benchmarks
	$(BIN)/ruff format --check breach_notify flows tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/send.py
	$(BIN)/python benchmarks/web.py
	$(BIN)/python benchmarks/webhooks.py
	$(BIN)/python benchmarks/selfcheck.py

clean:
	rm -rf $(VENV) .breach-notify .pytest_cache .mypy_cache .ruff_cache
