# The whole set-up: `make demo` runs the main job, `make test` runs the tests.
# Both build .venv first; the install is guarded by a stamp that depends on the
# requirement files, so a second run installs nothing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
REQS   := requirements/constraints.txt requirements/base.txt requirements/nodeps.txt setup.cfg pyproject.toml
PYTEST_ARGS ?=

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c requirements/constraints.txt -r requirements/base.txt
	# DeepSpeed builds against the torch installed above; its CPU comm op is compiled once
	# here (needs g++, ~1 min) instead of inside the first multi-process run.
	DS_BUILD_OPS=0 $(PIP) install -q -c requirements/constraints.txt --no-build-isolation deepspeed
	$(PY) -c "from deepspeed.comm.torch import build_shm_op; build_shm_op()"
	# llava-torch (pins torch 2.0.1 / gradio 4) and datamol: never let pip resolve them.
	$(PIP) install -q --no-deps -r requirements/nodeps.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

demo: $(STAMP)
	$(PY) -m deepmolm_plugin.demo

bench: $(STAMP)
	$(PY) scripts/bench_encoder.py

clean:
	rm -rf $(VENV) build *.egg-info
