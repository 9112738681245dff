# cycleml — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The address the servers bind: CYCLEML_HOST, or HOST given on make's command line
# (`make ui HOST=0.0.0.0`). Never a HOST from the environment: zsh and many container
# images set one (a host name, 0.0.0.0), and a server would listen beyond this machine
# without anyone asking for it.
CYCLEML_HOST ?= 127.0.0.1
ifeq ($(origin HOST),command line)
CYCLEML_HOST := $(HOST)
endif
PORT ?= 3000
UI_PORT ?= 5000

# Tools run offline here: no telemetry, no update checks.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
# dvc stages call `cycleml`: the venv comes first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
# `make audit` / `make check` fail when nothing could be audited (offline); SKIP_AUDIT=1
# (or CYCLEML_SKIP_AUDIT=1 in the environment) skips the audit on purpose instead.
AUDIT := $(if $(SKIP_AUDIT),CYCLEML_SKIP_AUDIT=$(SKIP_AUDIT) )$(BIN)/python scripts/audit.py

.PHONY: help install run repro test check deps serve bento ui loop monitor monitor-ui audit fuzz load bench wrk clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e ".[dev]" -c requirements.lock
	@touch $@

install: $(STAMP) ## create .venv (if missing) and install cycleml with its dev tools

run: install ## install, run the whole pipeline on the demo data (`dvc repro`), say where to look
	$(BIN)/dvc repro
	@$(BIN)/cycleml summary

repro: install ## rerun only the stages whose inputs changed
	$(BIN)/dvc repro

test: install ## run the test suite (unit, data, model, integration, e2e)
	$(BIN)/pytest

check: install ## lint, type-check, layers, dvc deps and audit (ruff, mypy, import-linter, pip-audit; SKIP_AUDIT=1 skips it)
	$(BIN)/ruff check src tests serving benchmarks scripts
	$(BIN)/ruff format --check src tests serving benchmarks scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/stage_deps.py --check
	$(AUDIT)

deps: install ## rewrite dvc.yaml's code deps from what each stage imports (scripts/stage_deps.py)
	$(BIN)/python scripts/stage_deps.py --write

audit: install ## known vulnerabilities in the pinned dependencies (pip-audit; needs network; SKIP_AUDIT=1 skips)
	$(AUDIT)

serve: install ## the champion over HTTP on http://127.0.0.1:3000 (BentoML; `make serve PORT=3100`)
	cd serving && CYCLEML_ROOT=$(CURDIR) CYCLEML_PARAMS=$(CURDIR)/params.yaml \
		$(CURDIR)/$(BIN)/bentoml serve service:CycleML --host $(CYCLEML_HOST) --port $(PORT)

bento: install ## build a Bento of the service (then `bentoml containerize`, needs Docker)
	rm -rf serving/wheels && $(BIN)/uv build --wheel --quiet -o serving/wheels .
	cp requirements.lock params.yaml serving/
	cd serving && CYCLEML_ROOT=$(CURDIR) CYCLEML_PARAMS=$(CURDIR)/params.yaml $(CURDIR)/$(BIN)/bentoml build

ui: install ## MLflow UI on http://127.0.0.1:5000: runs, models, the registry
	$(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" --host $(CYCLEML_HOST) --port $(UI_PORT) --workers 2

loop: install ## the lifecycle in one go on the demo data: train, serve, drift, monitor, retrain, promote
	$(BIN)/cycleml loop

monitor: install ## drift and model quality of the served traffic vs the reference (exit 3 drift, 4 degraded, 5 too few rows to judge)
	$(BIN)/cycleml monitor

monitor-ui: install ## Evidently UI on http://127.0.0.1:8000: drift over time (monitoring/)
	$(BIN)/evidently ui --workspace monitoring --host $(CYCLEML_HOST) --port 8000

fuzz: install ## fuzz the service from its OpenAPI document (Schemathesis; EXAMPLES per operation)
	$(BIN)/python -m tests.fuzz.run --examples $${EXAMPLES:-150}

load: install ## 60 s at 32 clients on a fresh served project: failures, latency, memory, shutdown
	$(BIN)/python benchmarks/load.py --seconds $${SECONDS_:-60} --clients $${CLIENTS:-32}

bench: install wrk ## the benchmark suite (~18 min): BENCHMARKS.md and benchmarks/results/latest.json
	$(BIN)/python -m benchmarks.suite $${ONLY:+--only $$ONLY}

wrk: ## the HTTP load generator the benchmarks use (Debian/Ubuntu package, or brew)
	@command -v wrk >/dev/null || { \
		echo "installing wrk (apt-get install wrk)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null; \
		elif command -v sudo >/dev/null; then sudo apt-get install -y -q wrk >/dev/null; fi; \
		command -v wrk >/dev/null || { echo "install wrk first: apt-get install wrk, or brew install wrk"; exit 1; }; }

lock: $(BIN)/python ## re-resolve requirements.lock from pyproject.toml's ranges
	$(BIN)/python -m pip install --quiet "uv>=0.4"
	$(BIN)/uv pip compile pyproject.toml --extra dev --quiet --python-version 3.11 -o requirements.lock

clean: ## remove generated state (pipeline outputs, MLflow and Optuna stores); keeps .venv and data/external
	rm -rf data/raw data/interim data/split models metrics plots reports dvc_plots
	rm -rf mlruns mlflow.db optuna.db dvc.lock
