# streamgov: `make run` sets everything up and runs the governance job on the demo data;
# `make test` runs the tests; `make ui` opens the Dagster UI on 127.0.0.1 over the same instance.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
LANDING := $(or $(STREAMGOV_LANDING_DIR),data/landing)

.PHONY: install run test ui bench demo-data clean
EVENTS ?= 10000000

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

test: install
	$(BIN)/pytest -q

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# Generates EVENTS access events once into data/bench (reused), runs the pipeline and a plain-SQL baseline.
bench: install
	$(BIN)/streamgov bench --events $(EVENTS)

clean:
	rm -rf data/warehouse.duckdb data/warehouse.duckdb.wal data/reports data/alerts .dagster_home
