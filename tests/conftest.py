"""Shared fixtures: the bundled routine and intents, and a virtual-clock driver."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from assistant.coach import intents, routine
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Routine
from tests.kit.pulse import PulseError, PulseServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs the tests in two passes: everything but the real-time tests, then the
    real-time tests on the PulseAudio daemon (marked `pulse` here), alone on the machine: a
    loaded machine delays their audio callbacks (an unflagged underrun moved a cue by 0.3 s
    when they shared it with other tests)."""
    for item in items:
        if "pulse" in getattr(item, "fixturenames", ()) and item.get_closest_marker("pulse") is None:
            item.add_marker(pytest.mark.pulse)
    # The slowest files first: the first pass runs a file at a time on each core (pytest-xdist,
    # --dist loadfile), and a long file started last would leave one core idle at the end.
    items.sort(key=_slow_first)


SLOW_FILES = ("test_accuracy.py", "test_real_speech.py", "test_packaging.py", "test_echo.py")


def _slow_first(item: pytest.Item) -> int:
    name = item.path.name
    return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)


@pytest.fixture(scope="session", autouse=True)
def _private_xdg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read or write the user's folders: one cue cache shared by the run (each
    cue is synthesised once), and empty configuration, data and state folders."""
    base = tmp_path_factory.mktemp("xdg")
    saved = {k: os.environ.get(k) for k in XDG}
    for key in XDG:
        os.environ[key] = str(base / key.lower())
    for key in (
        "BACKSTRETCH_CONFIG",
        "BACKSTRETCH_VOSK_MODEL",
        "BACKSTRETCH_VOICES_URL",
        "BACKSTRETCH_MODELS_URL",
    ):
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
