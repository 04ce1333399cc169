"""Shared fixtures: the bundled routine and intents, and a virtual-clock driver."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator

import pytest

from assistant import intents, routine
from assistant.dialogue import Action, Cut, Dialogue, Say, StateChange, simulate
from assistant.intents import IntentSet
from assistant.routine import Routine
from tests.pulse import PulseError, PulseServer


@pytest.fixture(scope="session", autouse=True)
def _private_xdg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read or write the user's folders: one cue cache shared by the run (each
    cue is synthesised once), and empty configuration, data and state folders."""
    base = tmp_path_factory.mktemp("xdg")
    saved = {k: os.environ.get(k) for k in XDG}
    for key in XDG:
        os.environ[key] = str(base / key.lower())
    for key in ("BACKSTRETCH_CONFIG", "BACKSTRETCH_VOSK_MODEL", "BACKSTRETCH_VOICES_URL"):
        saved[key] = os.environ.pop(key, None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


XDG = ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")


@pytest.fixture(scope="session")
def lang() -> IntentSet:
    return intents.load()


@pytest.fixture(scope="session")
def knee_hug() -> Routine:
    return routine.load()


def drive(dialogue: Dialogue, lang: IntentSet, commands: Iterable[tuple[float, str]]) -> list[Action]:
    """Say `commands` at their times on a virtual clock, then run to the end."""
    intents = [(t, lang.match(text)) for t, text in commands]
    assert all(intent is not None for _, intent in intents), commands
    return simulate(dialogue, intents)  # type: ignore[arg-type]


def says(actions: Iterable[Action], kind: str | None = None) -> list[Say]:
    return [a for a in actions if isinstance(a, Say) and (kind is None or a.kind == kind)]


def spoken_spans(actions: list[Action]) -> list[tuple[float, float, str]]:
    """(start, end, text) of what is really heard: cuts end what plays and drop what is queued."""
    spans: list[tuple[float, float, str]] = []
    for a in actions:
        if isinstance(a, Cut):
            spans = [(s, min(e, a.t), x) for s, e, x in spans if s < a.t]
        elif isinstance(a, Say):
            spans.append((a.t, a.t + a.duration_s, a.text))
    return sorted(spans)


def completed_reps(actions: Iterable[Action]) -> list[tuple[int, str, int]]:
    """(set, side, rep) of every rep done, read from the state changes alone."""
    done: list[tuple[int, str, int]] = []
    before: StateChange | None = None
    for a in actions:
        if not isinstance(a, StateChange):
            continue
        if before is not None and a.done != before.done:
            assert a.done == before.done + 1, (before, a)
            done.append((before.set_no, before.side, before.rep))
        before = a
    return done


@pytest.fixture(scope="session")
def pulse() -> Iterator[PulseServer]:
    """A private PulseAudio daemon, its client environment set for this process and
    its children; in CI a missing PulseAudio is a failure, not a skip."""
    try:
        server = PulseServer().start()
    except PulseError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    saved = {k: os.environ.get(k) for k in server.client_env()}
    os.environ.update(server.client_env())
    if "sounddevice" in sys.modules:  # PortAudio scanned the devices before the daemon existed
        sd = sys.modules["sounddevice"]
        sd._terminate()
        sd._initialize()
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
