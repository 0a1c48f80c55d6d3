# The whole set-up: `make demo` runs the main job, `make test` runs the tests.
# Both build .venv first; the install is guarded by a stamp that depends on the
# requirement files, so a second run installs nothing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
REQS   := requirements/constraints.txt requirements/base.txt requirements/host.txt setup.cfg pyproject.toml
PYTEST_ARGS ?=

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c requirements/constraints.txt -r requirements/base.txt
	# The host's own metadata pins torch 2.0.1 / gradio 4: never let pip resolve it.
	$(PIP) install -q --no-deps -r requirements/host.txt
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
