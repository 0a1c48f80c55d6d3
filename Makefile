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
# Test files run in parallel, one per worker (pytest-xdist; most tests wait on a subprocess's
# imports, so 2 workers on 2 cores halve the suite's time). At most 4: each worker holds a torch.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: install test demo bench clean wordnet chromium

# WordNet 3.0 for METEOR, built offline from Debian's wordnet-base + wordnet-sense-index
# (deepmolm_plugin.eval.metrics.wordnet); the code looks in $NLTK_DATA, else <venv>/nltk_data.
NLTK_DATA ?= $(abspath $(VENV))/nltk_data
WORDNET   := $(NLTK_DATA)/corpora/wordnet/lexnames

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

wordnet: $(WORDNET)

$(WORDNET): | $(STAMP)
	test -f /usr/share/wordnet/index.sense -a -f /usr/share/wordnet/data.noun || \
	  { test "$$(id -u)" = 0 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends wordnet-base wordnet-sense-index; } || \
	  { echo "WordNet 3.0 is missing: sudo apt-get install -y wordnet-base wordnet-sense-index; then make wordnet" >&2; exit 1; }
	$(PY) -m deepmolm_plugin.eval.metrics.wordnet --nltk-data $(NLTK_DATA) --check

# Headless Chromium + its WebDriver for the GUI's browser test (tests/test_gui.py), from Debian.
chromium:
	test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
	  { test "$$(id -u)" = 0 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends chromium chromium-driver; } || \
	  { echo "Chromium is missing (the GUI's browser test drives it): sudo apt-get install -y chromium chromium-driver; then make chromium" >&2; exit 1; }

test: $(STAMP) $(WORDNET) chromium
	# whole files per worker (module fixtures built once), slowest first (tests/conftest.py)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS) tests

demo: $(STAMP)
	$(PY) -m deepmolm_plugin.demo

bench: $(STAMP)
	$(PY) scripts/bench_encoder.py

clean:
	rm -rf $(VENV) build *.egg-info
