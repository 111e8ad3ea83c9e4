# make demo: install, fetch MovieLens-100k, train CR and LR, show the metrics.
# make test: install, run the whole test suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= $(HOME)/.cache/tfcr
RUNS ?= runs
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install demo test test-fast bench clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tfcr-train --dataset=movielens-100k --model=cr --data_dir=$(DATA_DIR) --model_dir=$(RUNS)/movielens-cr
	$(BIN)/tfcr-train --dataset=movielens-100k --model=lr --data_dir=$(DATA_DIR) --model_dir=$(RUNS)/movielens-lr
	$(BIN)/python -m trainer.compare $(RUNS)/movielens-cr $(RUNS)/movielens-lr

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
