.DEFAULT_GOAL := help
SHELL := /bin/bash
PY := .venv/bin/python
KAFKA_DATA ?= var/kafka
KAFKA_PORT ?= 9092

.PHONY: help install lock compile run demo test test-unit lint format bench soak kafka-fetch kafka-start kafka-stop kafka-status clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

install: ## create .venv and install requirements/dev.lock and the project (no-op when up to date)
	@ops/install.sh

lock: install ## refresh the lock files from pyproject.toml with uv (ARGS="--upgrade": newest allowed versions), then install
	@$(PY) ops/lock.py $(ARGS)
	@ops/install.sh

compile: install ## the fold's hot modules compiled with mypyc into projections/_compiled (~15 s of CPU, once per change; SESSIONS_PURE_PYTHON=1 runs without): docs/engine.md
	@$(PY) ops/compile.py

run: ## the main job: local Kafka + one worker on 127.0.0.1:8080, data under ./var (Ctrl-C stops both)
	@exec ops/run.sh

demo: ## make run plus a gentle `sessionctl simulate`: open http://127.0.0.1:8080/ and watch the explorer fill up
	@exec ops/demo.sh

test: ## every test tier against a throw-away local broker (pass ARGS=... to pytest)
	@exec ops/test.sh $(ARGS)

test-unit: install ## the pure tests only (no broker)
	@$(PY) -m pytest -m unit -q

lint: install ## ruff and mypy (strict on schemas/ and projections/)
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy schemas projections streams

format: install ## apply ruff's fixes and formatting
	@.venv/bin/ruff check --fix . && .venv/bin/ruff format .

bench: install ## issue 8's figures, with the fold compiled (make compile; pure Python where that fails): one worker vs Quix Streams and the raw ceiling, <10 min (ARGS="--quick" ~1 min; ARGS="--scale": the cost at 10M events, ~30 min): table + var/bench.json
	@$(PY) ops/compile.py || echo "bench: the fold could not be compiled: it runs in pure Python (the title says so)"
	@$(PY) ops/bench/run.py $(ARGS)

soak: install ## the fault suite for longer: 3 workers, SIGKILLs, restarts, a broker restart, under load (ARGS="--minutes 3"); figures, 0 lost / 0 duplicated
	@$(PY) ops/soak.py $(ARGS)

kafka-fetch: install ## fetch the pinned Kafka jars with Maven into ops/kafka/.cache (streams/devkit/broker.py)
	@$(PY) -m streams.devkit.broker fetch

kafka-start: install ## start the local broker (KAFKA_PORT, KAFKA_DATA); a no-op when it runs
	@$(PY) -m streams.devkit.broker start --data-dir $(KAFKA_DATA) --port $(KAFKA_PORT)

kafka-stop: ## stop the local broker of KAFKA_DATA
	@$(PY) -m streams.devkit.broker stop --data-dir $(KAFKA_DATA)

kafka-status: ## print the local broker's bootstrap address (exit 1 when not running)
	@$(PY) -m streams.devkit.broker status --data-dir $(KAFKA_DATA)

clean: ## remove ./var (local broker data and worker state); stop the broker first
	rm -rf var
