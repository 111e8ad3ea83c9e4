# make demo: install, fetch MovieLens-100k, train CR and LR, export the ScaNN servable,
#   serve it on localhost, query it over REST, print results and metrics, stop the server.
#   Re-runs reuse $(RUNS)/demo; `make demo DEMO_FLAGS=--retrain` starts afresh
#   (`.venv/bin/python -m trainer.demo --helpfull` lists the flags).
# make test: install, run the whole test suite (notebooks included).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= $(HOME)/.cache/tfcr
RUNS ?= runs
DEMO_FLAGS ?=
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install demo test test-fast bench clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1 $(BIN)/python -m trainer.demo --data_dir=$(DATA_DIR) \
	    --workdir=$(RUNS)/demo $(DEMO_FLAGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
