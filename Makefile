# `make demo` and `make test` each create .venv and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(VENV)/bin/backstretch demo --dir demo

test: $(STAMP)
	$(PY) -m ruff check assistant tests bench
	$(PY) -m mypy
	$(PY) -m pytest

# Issue 6's figures into bench/results.md and bench/results.json (about 13 minutes; needs
# pulseaudio and espeak-ng, as .ci/run installs them).
bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info demo/*.jsonl demo/*.wav

# Issue 11: the readers of user input and saved state fuzzed at length (the normal suite
# runs a few dozen fixed inputs each): FUZZ_EXAMPLES fresh random inputs per reader.
FUZZ_EXAMPLES ?= 5000
.PHONY: fuzz
fuzz: $(STAMP)
	BACKSTRETCH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -p no:cacheprovider tests/app/test_fuzz_inputs.py tests/app/test_fuzz_state.py
