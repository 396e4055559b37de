# Silverset: `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# The CPU build of torch (torch==X+cpu in requirements.lock) ships as a local wheel in /opt/wheels on the project's
# machines; elsewhere it comes from PyTorch's CPU wheel index.
TORCH_WHEELS ?= /opt/wheels
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
ifneq ($(wildcard $(TORCH_WHEELS)/torch-*.whl),)
TORCH_SOURCE := --find-links $(TORCH_WHEELS)
else
TORCH_SOURCE := --extra-index-url $(TORCH_INDEX)
endif
UV_FLAGS := --python $(BIN)/python $(TORCH_SOURCE) --index-strategy unsafe-best-match
STAMP := $(VENV)/.installed
WORKDIR ?= demo-workdir
VIDEOS ?= 200
PYTEST_ARGS ?=

.PHONY: venv lock lock-gpu demo lint test test-fast bench browser postgres clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/pip install -q uv==0.13.9
	@echo "make venv: torch's CPU build from $(if $(findstring find-links,$(TORCH_SOURCE)),the local wheels in $(TORCH_WHEELS),$(TORCH_INDEX) (no torch wheel in $(TORCH_WHEELS)))"
	$(UV) pip install $(UV_FLAGS) -r requirements.lock
	$(UV) pip install $(UV_FLAGS) --no-deps -e .
	touch $(STAMP)

lock: $(BIN)/python
	$(UV) pip compile pyproject.toml --extra dev --extra objectstore --python-version 3.11 --find-links /opt/wheels \
	  --index-strategy unsafe-best-match --no-header --no-annotate -o requirements.lock

# The GPU image's lock: the CPU lock's versions (torch's CUDA build of the same version) plus the `gpu` extra, for
# linux x86_64 / CPython 3.11, from PyPI alone (PyPI's torch is the CUDA 13.0 build). Needs the network, so it is not
# part of `make test`; tests/images/test_gpu_lock.py checks the committed lock against pyproject offline.
GPU_LOCK := images/gpu/requirements.lock
lock-gpu: $(BIN)/python
	sed -E 's/^(torch==[0-9.]+)\+cpu$$/\1/' requirements.lock > $(GPU_LOCK).constraints
	$(UV) pip compile pyproject.toml --extra gpu --extra objectstore -c $(GPU_LOCK).constraints \
	  --config-file images/gpu/uv.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --no-emit-package onnxruntime --no-header --no-annotate -o $(GPU_LOCK) ; rc=$$?; rm -f $(GPU_LOCK).constraints; exit $$rc

# Debian's chromium drives the studio's browser test (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: venv
	$(BIN)/silverset demo --workdir $(WORKDIR) --videos $(VIDEOS)

# Debian's PostgreSQL server: the studio tests run on a real PostgreSQL as well as SQLite, each session starting a
# throwaway server (tests/components/studio/postgres_server.py). A no-op when the binaries are there; where apt cannot
# install them, the PostgreSQL half of the studio tests is skipped with the reason.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
	  echo "make postgres: could not install Debian's postgresql package; the studio's PostgreSQL tests will be skipped"

# ruff (lint + format check, config in pyproject.toml) over the tree, mypy over components/common and
# components/runtime; .ci/run runs it before the tests. `ruff format . && ruff check --fix .` fixes most findings.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv browser postgres
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not gpu and not slow and not browser" -x -q $(PYTEST_ARGS)

bench: venv
	@mkdir -p benchmarks/results
	@for script in benchmarks/[a-z]*.py; do name=$$(basename $$script .py); echo "== python -m benchmarks.$$name"; \
	  $(BIN)/python -m benchmarks.$$name --out benchmarks/results || exit 1; done

clean:
	rm -rf $(VENV) $(WORKDIR) .pytest_cache
