# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_VERSION := 26.3

.PHONY: run test lint typecheck unit bench chart image-test clean

$(STAMP): pyproject.toml constraints.txt scripts/install_k8s_tools.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(BIN)/python scripts/install_k8s_tools.py
	touch $(STAMP)

## run: set up, then run the main job locally (the retrain pipeline on the default data)
run: $(STAMP)
	$(BIN)/cnai run

## test: set up, then lint, type-check and run the whole test suite
test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

## bench: every benchmark, each printing its JSON summary as its last line
bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

## image-test: build the pipeline image with podman (as root; installs podman, runc and
## debootstrap when missing) and run the pipeline's tasks in containers as Argo starts them
image-test: $(STAMP)
	$(BIN)/python scripts/image_test.py

## chart: refresh the Helm chart's copies of `cnai compile` output and events/*.yaml
chart: $(STAMP)
	$(BIN)/python -m cnai.chart sync

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
