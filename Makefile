# slicewatch — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test unit lint services-start services-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/slicewatch demo

# Installs everything, starts Kafka, Prometheus, Alertmanager and Pushgateway on 127.0.0.1,
# runs the whole suite, and stops the services whatever the outcome.
test: $(STAMP)
	bash scripts/services install
	bash scripts/run-tests $(BIN)/python

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit monitor slices alerts -q

lint: $(STAMP)
	$(BIN)/ruff check .

services-start:
	bash scripts/services start

services-stop:
	bash scripts/services stop

clean:
	rm -rf $(VENV) .services .pytest_cache .ruff_cache
