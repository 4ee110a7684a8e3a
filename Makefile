# The README's two commands: `make run` and `make test`. Each creates the environment if it is
# missing, installs the project into it, then runs. The suite runs on two workers (pytest-xdist):
# it is mostly XLA compiles, which use one core each. Tests that time themselves (marked `alone`)
# run after the others, with the machine to themselves. Bytecode is cached even where the
# environment turns that off: the end-to-end tests start `evonas` in subprocesses again and
# again, and each would compile the project's modules anew (about half a second).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,tfds]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/evonas run

test: $(STAMP)
	$(BIN)/ruff check evonas tests benchmarks examples
	$(BIN)/lint-imports
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n 2 -m "not alone"
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -m alone

bench: $(STAMP)
	$(BIN)/python benchmarks/nb201_search.py --runs 500 --budget 1000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
