# depthssd: the README's two commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint

## setup: create .venv (Python 3.11) with every pinned dependency, ROS 2 Kilted and vision_msgs
setup:
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "make setup: error: $(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11'" >&2; \
	  exit 1; }
	@$(PYTHON) tools/setup_env.py

## lint: ruff over the whole repository
lint: setup
	$(VENV)/bin/ruff check .

## test: setup, then ruff and the whole pytest suite (what CI runs)
test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest
