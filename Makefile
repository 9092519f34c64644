# The README's two commands: `make demo` and `make test`. Both build their own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := build/demo/my-digits

.PHONY: demo test install clean

$(BIN)/kgen: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/kgen

# Generate the default project, train it on the bundled sample, print validation accuracy.
demo: install
	rm -rf $(DEMO) && mkdir -p $(dir $(DEMO))
	$(BIN)/kgen new $(DEMO) --defaults
	cd $(DEMO) && TF_CPP_MIN_LOG_LEVEL=2 $(abspath $(BIN))/python -m my_digits train
	@echo "project: $(DEMO)  outputs: $(DEMO)/runs/latest (model.keras, metrics.json, ...)"

# The whole suite, slow (real training) tests included, on all cores.
test: install
	$(BIN)/python -m pytest -n auto --dist worksteal --durations=15 tests

clean:
	rm -rf build $(VENV)
