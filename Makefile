# Two commands for a newcomer: `make run` and `make test`. Both create or refresh the local
# virtual environment in .venv themselves (a stamp file tracks pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test check bench soak demo clean

# pip and setuptools warn about things that are no concern of whoever runs `make run` (a deprecated
# licence table, editable installs): their output goes to $(LOG), shown only when an install fails.
LOG := $(VENV)/install.log
QUIETLY = >> $(LOG) 2>&1 || { cat $(LOG); echo "make: the install failed (see $(LOG))"; exit 1; }

$(BIN)/python:
	@echo "make: creating $(VENV) (once)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip $(QUIETLY)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing kzconsole into $(VENV)"
	@$(BIN)/python -m pip install --quiet -e . $(QUIETLY)
	@touch $@

$(DEVSTAMP): pyproject.toml $(STAMP)
	@$(BIN)/python -m pip install --quiet -e '.[dev]' $(QUIETLY)
	@touch $@

run: $(STAMP)
	@$(BIN)/kzconsole $(ARGS)

demo: $(STAMP)
	@$(BIN)/kzconsole demo

test: check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The style and architecture checks (configured in pyproject.toml), quiet when they pass: ruff's
# lint rules and its formatting (`ruff format .` writes it), the import contracts (the engine never imports the console; the console goes through
# kzconsole.engine; no cycles), and mypy on the engine and the plugin API.
check: $(DEVSTAMP)
	@$(BIN)/ruff check --quiet .
	@$(BIN)/ruff format --check --quiet . || { echo "make: run '$(BIN)/ruff format .' (the files above are not formatted)"; exit 1; }
	@$(BIN)/lint-imports --no-logo --no-cache > $(VENV)/lint-imports.log 2>&1 || { cat $(VENV)/lint-imports.log; exit 1; }
	@$(BIN)/mypy --no-error-summary

bench: $(DEVSTAMP)
	@$(BIN)/python -m pip install --quiet -e '.[dev,bench]' $(QUIETLY)
	$(BIN)/python bench/run.py $(ARGS)

soak: $(DEVSTAMP)
	$(BIN)/python -m pytest -m slow tests $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
