"""What every measurement shares: a scratch folder, private XDG folders, the PulseAudio
daemon, the English vosk model, and the quick mode used by the bench's own test."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from assistant.coach import intents
from assistant.coach.intents import IntentSet
from tests.kit import models
from tests.kit.models import english_model
from tests.kit.pulse import PulseServer

XDG = ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")


@dataclass
class Bench:
    """The run's shared state. `quick` shrinks every measurement (seconds, not minutes),
    for tests/test_bench.py: the figures are then not worth reporting."""

    work: Path  # scratch: generated audio, recordings, private XDG folders
    quick: bool = False
    pulse: PulseServer | None = None  # None when pulseaudio is not installed

    def __post_init__(self) -> None:
        for key in XDG:
            (self.work / key.lower()).mkdir(parents=True, exist_ok=True)

    @property
    def cache_home(self) -> Path:
        """The XDG_CACHE_HOME of every run: the cue cache built by the voice measurement."""
        return self.work / "xdg_cache_home"

    def env(self, pulse: bool = False) -> dict[str, str]:
        """The environment of a `backstretch` subprocess: private folders, no user config,
        and with `pulse`, the private daemon's devices."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "BACKSTRETCH_"))}
        env.update({key: str(self.work / key.lower()) for key in XDG})
        env["PYTHONFAULTHANDLER"] = "1"  # a hung run shows its threads' stacks on SIGABRT
        if (model := english_model()) is not None:  # found through the user's cache, not the private one
            env[models.ENV] = str(model)
        if pulse:
            assert self.pulse is not None
            env.update(self.pulse.client_env())
        return env

    def apply_env(self) -> None:
        """This process uses the private folders too (the cue cache above all)."""
        for key in XDG:
            os.environ[key] = str(self.work / key.lower())
        for key in [k for k in os.environ if k.startswith("BACKSTRETCH_")]:
            del os.environ[key]


def backstretch_exe() -> str:
    return str(Path(sys.executable).parent / "backstretch")


@functools.cache
def language() -> IntentSet:
    return intents.load()


MISSING = "the English vosk model is not fetched: run `make vosk-model`"


def vosk_model() -> Path | None:
    """The English vosk model of `make vosk-model` (vosk-model-small-en-us-0.15), or None."""
    return english_model()
