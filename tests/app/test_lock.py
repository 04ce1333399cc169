"""One coach per state folder: a second `backstretch run` is turned away (issue 11, item 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assistant.app.store import StateLock, read_history
from assistant.errors import StateError

DEADLINE_S = 60.0  # a loaded machine starts a process in seconds; this only bounds a hang


def _entry_point() -> str:
    return str(Path(sys.executable).parent / "backstretch")


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CONFIG_HOME": str(home), "XDG_STATE_HOME": str(home / "state")}


def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)


def _run(home: Path, *args: str, typed: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_entry_point(), "run", *args], input=typed, capture_output=True, text=True,
        env=_env(home), timeout=DEADLINE_S, check=False,
    )  # fmt: skip


@pytest.fixture
def first(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A coach under way: `run --text`, started, its input kept open."""
    with subprocess.Popen(
        [_entry_point(), "run", "--text", "--mute"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, env=_env(tmp_path),
    ) as coach:  # fmt: skip
        try:
            assert coach.stdin is not None
            coach.stdin.write("start back stretch\n")
            coach.stdin.flush()
            position = tmp_path / "state" / "backstretch" / "position.json"
            _until(lambda: position.exists() or coach.poll() is not None, "the first coach's position")
            assert coach.poll() is None, coach.communicate()[1]
            yield coach
        finally:
            if coach.poll() is None:
                coach.kill()


def test_a_second_coach_is_turned_away_and_the_first_keeps_its_place(
    tmp_path: Path, first: subprocess.Popen[str]
) -> None:
    folder = tmp_path / "state" / "backstretch"
    second = _run(tmp_path, "--text", "--mute", typed="I'm done\n")
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and f"process {first.pid}" in second.stderr, second.stderr
    assert not (folder / "history.jsonl").exists()  # the first was not logged as interrupted
    assert (folder / "position.json").exists()  # nor its place removed

    script = tmp_path / "s.txt"  # a simulation touches no state: it needs no lock
    script.write_text("0 start back stretch\n30 I'm done\n")
    assert _run(tmp_path, "--script", str(script), "--mute", "--quiet").returncode == 0

    assert first.stdin is not None
    first.stdin.close()  # the end of typed input: the first stops, keeping its place
    assert first.wait(timeout=DEADLINE_S) == 0
    assert [past.end for past in read_history(folder)] == ["interrupted"]
    assert (folder / "position.json").exists()


def test_a_coach_that_died_holds_nothing(tmp_path: Path, first: subprocess.Popen[str]) -> None:
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=DEADLINE_S)
    assert (tmp_path / "state" / "backstretch" / "lock").read_text().strip() == str(first.pid)
    after = _run(tmp_path, "--text", "--mute", typed="resume\nI'm done\n")
    assert after.returncode == 0, after.stderr
    ends = [past.end for past in read_history(tmp_path / "state" / "backstretch")]
    assert ends == ["interrupted", "stopped"]  # the killed session recorded, then this one


def test_the_lock_is_held_until_released(tmp_path: Path) -> None:
    held = StateLock.take(tmp_path)
    with pytest.raises(StateError, match=f"process {os.getpid()}"):
        StateLock.take(tmp_path)
    held.release()
    StateLock.take(tmp_path).release()
