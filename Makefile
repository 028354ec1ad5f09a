# Two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed pinned, before anything that depends on it: an unpinned torch pulls
# several GB of CUDA packages on CPU-only machines. torchvision (needed by open_clip) is
# installed without deps so it cannot pull another torch. mediapipe (the face detector, see
# models/face_crop.py) is installed without deps too: its metadata asks for numpy<2, jax and
# opencv-contrib, none of which the face detector needs; its runtime deps are in pyproject.toml.
TORCH_VERSION ?= 2.13.0
TORCHVISION_VERSION ?= 0.28.0
MEDIAPIPE_VERSION ?= 0.10.21
DEMO_ARGS ?=

.PHONY: install demo test lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet --no-deps torchvision==$(TORCHVISION_VERSION)
	$(BIN)/python -m pip install --quiet --no-deps mediapipe==$(MEDIAPIPE_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/cartooncodec demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) demo-out bench-results .mypy_cache .ruff_cache .pytest_cache
