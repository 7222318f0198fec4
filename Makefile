# `make run` starts the studio; `make test` runs every test; `make bench` prints the benchmark figures.
# Each sets up .venv on first use (and again whenever a requirements file changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
ARGS ?=
# The text engine compiles llama.cpp (PyPI has no wheel for Linux): `make run` builds it in the
# background while the page is already served (studio/backends/text_engine.py); tests and benchmarks wait for it.
TEXT_ENGINE := $(shell grep -m1 '^llama-cpp-python==' requirements.txt)

.PHONY: run test lint bench clean train-melody train-melody-vae screenshots

$(RUNTIME): requirements.txt requirements-builtin.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	grep -v '^llama-cpp-python==' requirements.txt > $(VENV)/requirements-without-text-engine.txt
	$(PY) -m pip install -q -r $(VENV)/requirements-without-text-engine.txt
	$(PY) -m pip install -q --no-deps -r requirements-builtin.txt
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt requirements-ray.txt requirements.txt
	$(PY) -m studio.backends.text_engine install "$(TEXT_ENGINE)"
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -r requirements-ray.txt
	touch $@

run: $(RUNTIME)
	@$(PY) -m studio.backends.text_engine start "$(TEXT_ENGINE)"
	$(PY) app.py $(ARGS)

lint: $(DEV)
	$(PY) -m ruff check .

test: $(DEV) lint
	$(PY) -m pytest -q --timeout=900

# Every script in benchmarks/ prints its own figures.
bench: $(DEV)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# Refresh the tab pictures in docs/ from the browser tests.
screenshots: $(DEV)
	STUDIO_SCREENSHOTS=docs $(PY) -m pytest -q --timeout=900 tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Re-train the built-in melody model (assets/melody-model/) and rewrite its REPORT.md: about half an hour on 2 cores.
train-melody: $(DEV)
	nice -n 5 $(PY) training/train_melody.py $(ARGS)
	nice -n 5 $(PY) training/melody_quality.py --report

# Re-train the melody VAE for melody walks (assets/melody-vae/) and rewrite its REPORT.md: about 20 minutes on 2 cores.
train-melody-vae: $(DEV)
	nice -n 5 $(PY) training/train_melody_vae.py $(ARGS)
