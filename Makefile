# passport-hub: the two commands a newcomer needs are `make run` and `make test`.
SHELL  := bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run demo bench test test-kafka lint typecheck unit integration e2e clean chromium \
        prometheus

# The venv is rebuilt whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the hub with its embedded broker and live demo traffic (Ctrl-C stops it).
run: $(STAMP)
	$(BIN)/passport-hub up --demo

## A finite scenario that exits with a summary.
demo: $(STAMP)
	$(BIN)/passport-hub demo

## Ingest benchmark: the API against the raw producer, on one broker, in one run.
bench: $(STAMP)
	$(BIN)/python -m bench.bench_ingest

BENCH_STAMP := $(VENV)/.bench-stamp

# The `bench` extra (Quix Streams), from wheels only; `make test` never installs it.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --only-binary=:all: -e '.[dev,bench]'
	touch $(BENCH_STAMP)

.PHONY: reliability
## The crash campaign: every component SIGKILLed in turn during a realistic flow, checked
## against an oracle and a crash-free run, then the campaigns that are test suites (hostile
## input, auth matrix, poison, erasure, full store, broker faults, zombies); report in
## docs/reliability.md (make test-kafka runs the bounded crash campaign).
## RELIABILITY_ARGS=--long: 8 plans x 26 kills (208), then a 30-min soak; --no-suites.
reliability: $(STAMP)
	$(BIN)/python -m reliability $(RELIABILITY_ARGS)

.PHONY: bench-passport
## Passport benchmark: the service against raw kafka-python and Quix Streams, one broker,
## one run (Apache Kafka from deploy/kafka when java is there). BENCH_ARGS=--help for sizes.
bench-passport: $(BENCH_STAMP)
	$(BIN)/python -m bench.bench_passport $(BENCH_ARGS)

.PHONY: bench-restore
## Restore benchmark: 1M passports rebuilt from pn.passports.v1, against a raw read of it.
bench-restore: $(STAMP)
	$(BIN)/python -m bench.bench_restore $(BENCH_ARGS)

## Lint, type-check and run every test (unit, integration, end to end).
test: lint typecheck chromium prometheus
	$(BIN)/pytest -q

KAFKA := deploy/kafka/kafka.sh

## The integration, e2e and reliability (crash campaign) suites on one Apache Kafka node,
## then the broker-fault
## tests on a three-broker cluster. Needs a JDK 17+ and Maven (jars from Maven Central).
test-kafka: $(STAMP)
	$(KAFKA) fetch
	set -e; export KAFKA_RUN_DIR="$(CURDIR)/deploy/kafka/run/single"; \
	  bootstrap=$$($(KAFKA) start single | tail -n 1); \
	  trap '$(KAFKA) stop >/dev/null 2>&1' EXIT; \
	  KAFKA_BOOTSTRAP_SERVERS="$$bootstrap" $(BIN)/pytest -q tests/integration tests/e2e \
	    tests/reliability
	$(BIN)/pytest -q tests/faults

## Headless Chromium for the simulator report's browser test (apt-get, only when missing).
chromium:
	@bash deploy/tools/ensure-chromium.sh >/dev/null

## Debian's prometheus (promtool and the server) for the metrics, rules, dashboard and
## scrape tests (apt-get, only when missing).
prometheus:
	@bash deploy/tools/ensure-prometheus.sh >/dev/null

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e

clean:
	rm -rf $(VENV) .passport-hub .mypy_cache .ruff_cache .pytest_cache
