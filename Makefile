# One install, one `make run`, one `make test`. Everything lives in .venv; generated code in generated/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GENERATED := generated/notify/v1/notification_service_pb2.py
CLIENT_STAMP := $(VENV)/.client-installed
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?=
NODE_STAMP := clients/node/node_modules/.package-lock.json
PYTEST_ARGS ?=

.PHONY: install install-python generate run sandbox test fuzz lint format typecheck bench bench-instructions clean

install: install-python $(NODE_STAMP)

install-python: $(STAMP) $(GENERATED) $(CLIENT_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# setup.py generates generated/ (the stubs) as part of the install, so the editable install maps it.
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

$(GENERATED): $(STAMP) $(PROTOS) scripts/generate.py
	$(BIN)/python scripts/generate.py

$(CLIENT_STAMP): $(STAMP) $(GENERATED) clients/python/pyproject.toml
	$(BIN)/python -m pip install --quiet -e clients/python
	touch $@

$(NODE_STAMP): clients/node/package.json clients/node/package-lock.json
	cd clients/node && npm ci --no-audit --no-fund

run: install-python  ## the gateway and the vendor sandbox on loopback, with the embedded example config or CONFIG=path
	$(BIN)/notify-gateway serve --sandbox $(if $(CONFIG),--config $(CONFIG))

sandbox: install-python  ## the vendor sandbox alone, seeded from the example config
	$(BIN)/notify-gateway sandbox

test: install  ## the Python suite, then the Node client's suite against a live gateway
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	cd clients/node && NOTIFY_PYTHON=$(CURDIR)/$(BIN)/python npm test

fuzz: install-python  ## 10,000 fuzzed requests (tests/fuzz) from a new seed, or NOTIFY_FUZZ_SEED; counts per status code
	NOTIFY_FUZZ_EXAMPLES=$${NOTIFY_FUZZ_EXAMPLES:-10000} NOTIFY_FUZZ_SEED=$${NOTIFY_FUZZ_SEED:-$$(date +%s)} \
		$(BIN)/python -m pytest tests/fuzz $(PYTEST_ARGS)

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: install-python $(BENCH_STAMP)  ## floors, gateway (everything on, sampled, minimal), queued, Apprise; latency, --processes, delivery, profile (bench/README.md); 3-6 minutes by machine
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-instructions: install-python $(BENCH_STAMP)  ## instructions per Send under valgrind's callgrind, gateway and floors (needs valgrind); about 5 minutes
	$(BIN)/python -m bench.instructions $(BENCH_ARGS)

lint: install-python
	$(BIN)/ruff check gateway tests scripts clients/python bench
	$(BIN)/ruff format --check gateway tests scripts clients/python bench
	$(BIN)/buf lint
	$(BIN)/hadolint Dockerfile
	$(BIN)/mypy gateway
	cd clients/python && $(CURDIR)/$(BIN)/mypy

format: install-python
	$(BIN)/ruff format gateway tests scripts clients/python bench
	$(BIN)/ruff check --fix gateway tests scripts clients/python bench

typecheck: install-python $(BENCH_STAMP)  ## mypy on gateway/ and bench/ (bench/ needs its extras: matplotlib, Apprise)
	$(BIN)/mypy gateway bench

clean:
	rm -rf $(VENV) generated .pytest_cache .mypy_cache .ruff_cache clients/node/node_modules
