# Two commands for a newcomer: `make run` and `make test`. Both create or refresh the local
# virtual environment in .venv themselves (a stamp file tracks pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test bench soak demo clean

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

test: $(DEVSTAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(DEVSTAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/run.py $(ARGS)

soak: $(DEVSTAMP)
	$(BIN)/python -m pytest -m slow tests $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
