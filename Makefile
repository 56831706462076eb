# slicewatch — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test unit lint services-start services-stop clean

# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have on its PATH
CARGO_PATH := $(HOME)/.cargo/bin:$(PATH)

$(STAMP): pyproject.toml native/Cargo.toml native/Cargo.lock native/src/lib.rs
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@# the native JSON reader (Rust): without cargo, Arrow's reader reads every block
	@if [ "$${SLICEWATCH_NATIVE:-1}" = 0 ]; then \
		echo "install: SLICEWATCH_NATIVE=0: the native JSON reader is not built"; \
	elif PATH="$(CARGO_PATH)" command -v cargo >/dev/null; then \
		PATH="$(CARGO_PATH)" $(BIN)/pip install -q ./native; \
	else \
		echo "install: WARNING: no cargo (Rust, https://rustup.rs): the native JSON reader" \
		     "is not built; JSON lines are read by Arrow's reader (slower)" >&2; \
	fi
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
	rm -rf $(VENV) .services .pytest_cache .ruff_cache native/target
