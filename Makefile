# depthssd: the README's two commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEMO_SECONDS ?= 20
# World of the demo drive: seed 0 is a clear daytime street; seed 7 (the synthetic camera's
# default) is overcast.
DEMO_SEED ?= 0

.PHONY: setup demo test lint bench-setup bench

## setup: create .venv (Python 3.11) with every pinned dependency, ROS 2 Kilted and vision_msgs
setup:
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "make setup: error: $(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11'" >&2; \
	  exit 1; }
	@$(PYTHON) tools/setup_env.py

## demo: synthetic CARLA camera -> perception node -> planner as real ROS 2 nodes; writes out/demo/
demo: setup
	$(PY) -m depthssd_ros.demo --duration $(DEMO_SECONDS) --seed $(DEMO_SEED) --out out/demo

## test: setup, then ruff and the whole pytest suite (what CI runs)
test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

## lint: ruff over the whole repository
lint: setup
	$(VENV)/bin/ruff check .

## bench-setup: the benchmark-only extras (ultralytics for the two-model comparison)
bench-setup: setup
	$(PY) -m pip install --no-deps -r requirements-bench.txt -c tools/constraints.txt

## bench: the benchmarks behind the README's numbers (quiet machine; takes several minutes)
bench: bench-setup
	OMP_NUM_THREADS=1 $(PY) benchmarks/synth_speed.py
	$(PY) benchmarks/latency.py --checkpoint models/depthssd_conv_small.safetensors
	$(PY) benchmarks/node_latency.py
