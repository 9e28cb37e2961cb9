# Two commands matter: `make test` and `make demo`. Each creates .venv on a fresh machine by itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEVICE ?= cpu

.PHONY: test demo demo-lm docs docs-serve gpu-check lint bench clean-venv test-postgres postgres-server

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# The many-machine path against a real PostgreSQL server (tests/postgres.py starts and stops its own cluster).
# postgres-server installs Debian's server when initdb is missing (as root; otherwise it says what to run).
PG_TESTS = $(wildcard tests/studies/test_postgres.py tests/studies/test_study_postgres.py)
test-postgres: $(STAMP) postgres-server
	LANDSCAPE_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest $(PG_TESTS)

postgres-server:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	  else \
	    echo "PostgreSQL server not found: run 'sudo apt-get install postgresql', then 'make test-postgres'" >&2; \
	    exit 1; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check landscape tests analyses bench

# The quick end-to-end reproduction: two short soft-quant runs, every figure, the PTQ table (figures/demo/).
demo: $(STAMP)
	$(BIN)/python analyses/demo.py --device $(DEVICE)

# The language-model demo (docs/language-models.md): a character GPT pretrained on tinyshakespeare in nanoGPT's CPU
# setting, then soft quantization of it for one epoch, into runs/lm/ (not committed; ~10 min on 2 CPU cores).
demo-lm: $(STAMP)
	$(BIN)/landscape pretrain --dataset text --arch gpt --out runs/lm/gpt-shakespeare.pt --force --device $(DEVICE)
	$(BIN)/landscape train --dataset text --arch gpt --checkpoint runs/lm/gpt-shakespeare.pt \
	    --method weight-coupling --h 0.05 --w 0.3 --epochs 1 --train-batch-size 12 --out runs/lm/sq.h5 --force \
	    --device $(DEVICE)

# The docs site (mkdocs.yml, docs/): built strictly (a warning fails, as in CI) into build/site; docs-serve shows it
# at http://127.0.0.1:8000 and rebuilds on every edit.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The GPU check (bench/gpu_check.py): every CPU-vs-device comparison in one table; `make gpu-check DEVICE=cuda`.
# On DEVICE=cpu (the default) it runs the checks that apply (what tests/scripts/test_gpu_check.py does with --quick).
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py --device $(DEVICE)

# Every benchmark, with the peer packages they compare against (the [bench] extra); each prints its table.
# Long (about 45 min on 2 idle cores); run one alone with `python bench/<name>.py [--quick] [--json]`.
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	for b in coupling analysis train sharding geometry; do $(BIN)/python bench/$$b.py || exit 1; done

clean-venv:
	rm -rf $(VENV)
