# Two commands matter: `make test` and `make demo`. Each creates .venv on a fresh machine by itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEVICE ?= cpu

.PHONY: test demo lint bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check landscape tests analyses bench

# The quick end-to-end reproduction: two short soft-quant runs, every figure, the PTQ table (figures/demo/).
demo: $(STAMP)
	$(BIN)/python analyses/demo.py --device $(DEVICE)

bench: $(STAMP)
	$(BIN)/python bench/coupling.py

clean-venv:
	rm -rf $(VENV)
