# The two commands of the README. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[tf-cpu,jax,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/featurize train data/hymenoptera --out model.joblib

test: $(STAMP)
	$(BIN)/ruff check featurize pipelines tests benchmarks
	$(BIN)/ruff format --check featurize pipelines tests benchmarks
	$(BIN)/python -m pytest
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m backend
