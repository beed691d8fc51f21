# streamgov: `make run` sets everything up and runs the governance job on the demo data;
# `make test` runs the tests; `make ui` opens the Dagster UI on 127.0.0.1 over the same instance.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
LANDING := $(or $(STREAMGOV_LANDING_DIR),data/landing)

.PHONY: install run test ui bench bench-history demo-data clean
EVENTS ?= 10000000
FORMAT_LINES ?= 2000000
REPEAT ?= 2
TEST_WORKERS ?= auto

$(BIN)/streamgov: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(BIN)/streamgov

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The demo landing zone is committed; regenerate it when absent (same seed, same files).
demo-data: install
	@if [ ! -d "$(LANDING)/access" ]; then $(BIN)/streamgov generate --gzip --out "$(LANDING)"; fi

run: install $(DAGSTER_HOME)/dagster.yaml demo-data
	$(BIN)/streamgov run

# The tests are independent (each has its own tmp_path warehouse, Dagster instance and PostgreSQL
# database) and mostly single-threaded Python: one worker per core (TEST_WORKERS=0 runs them serially).
test: install
	$(BIN)/pytest -q -n $(TEST_WORKERS)

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# Generates EVENTS access events once into data/bench (reused), runs the pipeline and a plain-SQL baseline,
# REPEAT times in turn (the fastest of each is compared: the machine is noisy).
# `make bench-history`: the cost of adding one day to a 30-day history, against that day alone.
bench: install
	$(BIN)/streamgov bench --events $(EVENTS) --format-lines $(FORMAT_LINES) --repeat $(REPEAT)

bench-history: install
	$(BIN)/streamgov bench --history-days 30

clean:
	rm -rf data/warehouse.duckdb data/warehouse.duckdb.wal data/reports data/alerts .dagster_home
