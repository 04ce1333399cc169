"""Progress that survives restarts: the position file, the history, damaged files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from assistant.app.cli import main
from assistant.app.store import ProgressStore
from assistant.coach.dialogue import Dialogue
from assistant.coach.events import Event, StateChange
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Routine
from assistant.coach.session import Session


def _session(routine: Routine, lang: IntentSet, folder: Path) -> tuple[Dialogue, Session, ProgressStore]:
    dialogue = Dialogue(routine, lang)
    store = ProgressStore(dialogue, folder)
    return dialogue, Session(dialogue, lang, [store]), store


class States:
    """A sink keeping the session's state events: where the dialogue said it stood."""

    def __init__(self) -> None:
        self.seen: list[StateChange] = []

    def write(self, event: Event) -> None:
        if isinstance(event, StateChange):
            self.seen.append(event)

    def close(self) -> None:
        pass


def test_the_position_follows_every_rep(knee_hug: Routine, lang: IntentSet, tmp_path: Path) -> None:
    """After every rep the file holds where the session stood, as its state events said;
    and the reps counted done are the reps whose breath out ended."""
    dialogue = Dialogue(knee_hug, lang)
    store, states = ProgressStore(dialogue, tmp_path), States()
    session = Session(dialogue, lang, [store, states])
    session.hear("start", 0.0)
    for t in (20.0, 45.0, 120.0):
        session.run_until(t)
        last = states.seen[-1]
        saved = json.loads(store.position_path.read_text())
        assert (saved["set"], saved["side"], saved["rep"], saved["done"], saved["state"]) == (
            last.set_no, last.side, last.rep, last.done, "running",
        )  # fmt: skip
        reps_ended = sum(
            1 for a, b in zip(states.seen, states.seen[1:], strict=False) if b.done == a.done + 1
        )
        assert saved["done"] == reps_ended
    assert saved["done"] > 5 and saved["pace"] == {"inhale_s": 3.0, "exhale_s": 4.0, "hold_s": 0.0}
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temp file, renamed into place


def test_a_finished_or_stopped_session_goes_into_the_history(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path
) -> None:
    _, session, store = _session(knee_hug, lang, tmp_path)
    session.hear("start", 0.0)
    session.hear("I'm done", 60.0)
    session.close()
    assert not store.position_path.exists()
    (entry,) = ProgressStore.history_at(tmp_path)
    assert entry["end"] == "stopped" and entry["total"] == 120 and entry["done"] >= 1


def test_an_interrupted_session_is_offered_once_and_recorded_once(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path
) -> None:
    dialogue, session, store = _session(knee_hug, lang, tmp_path)
    session.hear("start", 0.0)
    session.run_until(100.0)
    session.end(100.0)
    store.interrupted()
    where = dialogue.position()
    later = ProgressStore(Dialogue(knee_hug, lang), tmp_path)
    saved = later.load()
    assert saved is not None and saved.position == where
    assert later.load() is not None  # still offered until the next session moves on
    assert [e["end"] for e in ProgressStore.history_at(tmp_path)] == ["interrupted"]


def test_after_a_crash_the_lost_session_is_recorded(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path
) -> None:
    _, session, store = _session(knee_hug, lang, tmp_path)
    session.hear("start", 0.0)
    session.run_until(100.0)  # ... and the power goes: no end, no history line
    assert ProgressStore.history_at(tmp_path) == []
    later = ProgressStore(Dialogue(knee_hug, lang), tmp_path)
    assert later.load() is not None
    later.load()
    assert [e["end"] for e in ProgressStore.history_at(tmp_path)] == ["interrupted"]


@pytest.mark.parametrize("damage", ["{not json", '{"set": 1}', "", '{"set": "x", "side": 1}'])
def test_a_damaged_position_is_set_aside(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path, damage: str
) -> None:
    (tmp_path / "position.json").write_text(damage)
    store = ProgressStore(Dialogue(knee_hug, lang), tmp_path)
    assert store.load() is None
    assert "could not be read" in store.notice and "set aside" in store.notice
    (aside,) = tmp_path.glob("position.*.corrupt")
    assert aside.read_text() == damage  # kept, not deleted
    assert not (tmp_path / "position.json").exists()


def test_history_command(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert main(["history"]) == 0
    assert "No sessions yet" in capsys.readouterr().out
    _, session, _ = _session(knee_hug, lang, tmp_path / "backstretch")
    session.hear("start", 0.0)
    session.run_until(math.inf)
    session.close()
    assert main(["history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["date", "duration", "reps", "end"]
    assert lines[1].split()[-2:] == ["120/120", "finished"]
