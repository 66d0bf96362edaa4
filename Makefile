# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-slow bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned in setup.cfg (2.13.0: a CPU build, no CUDA download)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# the latency-constrained search with the shipped predictor (`make demo DEMO_ARGS="--predictor PATH"`)
demo: install
	HWNAS_TORCH_THREADS=1 $(PY) examples/latency_constrained_search.py $(DEMO_ARGS)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/measure_cost.py
	$(PY) benchmarks/graph_extract.py
	$(PY) benchmarks/spaces.py --samples 30
	$(PY) benchmarks/predict_speed.py

clean:
	rm -rf $(VENV) *.egg-info build dist
