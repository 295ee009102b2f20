# AI Business OS. The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
VENV := .venv
export DAGSTER_HOME ?= $(CURDIR)/.abos/dagster
# Python keeps the bytecode it compiles (__pycache__, git-ignored), even where the environment says
# not to: `make test` starts hundreds of Pythons (xdist workers, dbt, abos, Dagster runs), and each
# would compile dagster, dbt and pandas from source again: 2 to 3 CPU s more per dbt command
# (docs/testing.md).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install demo test test-slow ui bench clean

DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/seeds dbt_project/tests -type f 2>/dev/null) dbt_project/dbt_project.yml
MANIFEST := dbt_project/target/manifest.json

install: $(VENV)/.installed $(MANIFEST) ## create .venv from uv.lock and build the dbt manifest

$(VENV)/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || { echo "uv not found: installing it with pip"; python3 -m pip install --quiet uv; }
	$(UV) sync --frozen --python 3.11
	@touch $@

# Dagster loads the dbt project from a manifest built here, not parsed on every import.
$(MANIFEST): $(VENV)/.installed $(DBT_SOURCES)
	cd dbt_project && ../$(VENV)/bin/dbt parse --profiles-dir . --quiet
	@touch $@

demo: install ## run the sandbox and the whole pipeline on the demo workspaces
	$(VENV)/bin/abos demo

ui: install ## the sandbox plus the Dagster UI (dagster dev) on http://127.0.0.1:3000
	$(VENV)/bin/abos ui

test: install ## run the test suite (and list its 30 slowest steps, for docs/testing.md and tests/schedule.py)
	$(VENV)/bin/pytest -n 2 --dist loadfile --durations=30

test-slow: install ## the acceptance measurements on the small sandbox (slow)
	$(VENV)/bin/pytest -m slow

bench: install ## measure the pipeline on the large sandbox (docs/performance.md); BENCH_ARGS="--scale 0.05"
	$(VENV)/bin/abos bench $(BENCH_ARGS)

clean: ## remove the environment and local data
	rm -rf $(VENV) .abos
