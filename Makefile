# One install, one `make run`, one `make test`. Everything lives in .venv; generated code in generated/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GENERATED := generated/notify/v1/notification_service_pb2.py
PYTEST_ARGS ?=

.PHONY: install generate run sandbox test lint format typecheck clean

install: $(STAMP) $(GENERATED)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# compat mode puts the checkout on sys.path, so generated/ is importable once `make generate` writes it.
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $@

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

$(GENERATED): $(STAMP) $(PROTOS) scripts/generate.py
	$(BIN)/python scripts/generate.py

run: install  ## the gateway and the vendor sandbox on loopback, with the embedded example config
	$(BIN)/notify-gateway serve --sandbox

sandbox: install  ## the vendor sandbox alone, seeded from the example config
	$(BIN)/notify-gateway sandbox

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check gateway tests scripts
	$(BIN)/ruff format --check gateway tests scripts
	$(BIN)/buf lint
	$(BIN)/mypy gateway

format: install
	$(BIN)/ruff format gateway tests scripts
	$(BIN)/ruff check --fix gateway tests scripts

typecheck: install
	$(BIN)/mypy gateway

clean:
	rm -rf $(VENV) generated .pytest_cache .mypy_cache .ruff_cache
