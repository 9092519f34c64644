# The README's two commands: `make demo` and `make test`. Both build their own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := build/demo/my-digits
# The versions CI passed on (`make lock` refreshes them): pip installs these exact versions.
CONSTRAINTS := $(abspath constraints.txt)

.PHONY: demo test learning fast install lock check-latest clean

$(BIN)/kgen: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint $(CONSTRAINTS) --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet --constraint $(CONSTRAINTS) -e ".[dev]"
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
	$(BIN)/python -m pytest -n auto --dist worksteal --durations=20 tests

# Every family's learning floor alone (about 20 minutes on 2 cores; CI runs them too):
# run after changing a recipe, a model or its preprocessing.
learning: install
	$(BIN)/python -m pytest -n auto --dist worksteal --durations=0 tests/test_learning.py

# The fast tier: everything but real training (aimed at 3 minutes on 2 cores).
fast: install
	$(BIN)/python -m pytest -n auto --dist worksteal -m "not slow" tests

# A fresh venv, $(1), of the newest versions pyproject.toml allows (no constraints).
define newest_venv
	rm -rf $(1) && $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(1)/bin/python -m pip install --quiet -e ".[dev]"
endef

# Rewrite constraints.txt from the newest versions pyproject.toml allows. Run it, then
# `make clean test`, and commit the file when the suite passes.
lock:
	$(call newest_venv,.venv-lock)
	sed -n '/^#/p' constraints.txt > constraints.new
	.venv-lock/bin/python -m pip freeze --exclude-editable --all >> constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-lock

# The fast tier against the newest versions pyproject.toml allows, without the
# constraints: upstream drift found on purpose, not by a red main.
check-latest:
	$(call newest_venv,.venv-latest)
	.venv-latest/bin/python -m pip freeze --exclude-editable --all \
		| diff constraints.txt - | grep '^[<>] [^#]' || echo "no version differs from constraints.txt"
	.venv-latest/bin/python -m pytest -n auto --dist worksteal -m "not slow" tests

clean:
	rm -rf build $(VENV) .venv-lock .venv-latest
