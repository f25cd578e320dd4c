# Two commands do everything: `make run` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
DURATION ?=
RUN_ARGS ?= $(if $(DURATION),--duration $(DURATION),)

.PHONY: setup run test lint bench clean

setup:
	@scripts/setup.sh

run: setup
	$(BIN)/x0tta6bl4 run $(RUN_ARGS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check x0tta6bl4 tests benchmarks
	$(BIN)/ruff format --check x0tta6bl4 tests benchmarks

bench: setup
	@for b in benchmarks/[a-z]*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	$(BIN)/x0tta6bl4 mesh clean 2>/dev/null || true
	rm -rf .pytest_cache build *.egg-info
