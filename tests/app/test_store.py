"""Progress that survives restarts: the position file, the history, damaged files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from assistant.app.cli import main
from assistant.app.store import ProgressStore
from assistant.coach.dialogue import Dialogue
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Routine
from assistant.coach.session import Session


def _session(routine: Routine, lang: IntentSet, folder: Path) -> tuple[Dialogue, Session, ProgressStore]:
    dialogue = Dialogue(routine, lang)
    store = ProgressStore(dialogue, folder)
    return dialogue, Session(dialogue, lang, [store]), store


def test_the_position_follows_every_rep(knee_hug: Routine, lang: IntentSet, tmp_path: Path) -> None:
    dialogue, session, store = _session(knee_hug, lang, tmp_path)
    session.hear("start", 0.0)
    session.run_until(120.0)
    saved = json.loads(store.position_path.read_text())
    where = dialogue.position()
    assert (saved["set"], saved["side"], saved["rep"], saved["done"]) == (
        where.set_no, where.side, where.rep, where.done,
    )  # fmt: skip
    assert saved["state"] == "running" and saved["done"] > 5
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
    assert entry.end == "stopped" and entry.total == 120 and entry.done >= 1


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
    assert [e.end for e in ProgressStore.history_at(tmp_path)] == ["interrupted"]


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
    assert [e.end for e in ProgressStore.history_at(tmp_path)] == ["interrupted"]


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


# -- the history (issue 11, item 6) ----------------------------------------------------------

GOOD = '{"started": 1700000000.0, "duration_s": 754.3, "done": 120, "total": 120, "end": "finished"}'
LATER = '{"started": 1700090000.0, "duration_s": 61.0, "done": 3, "total": 120, "end": "stopped"}'
BAD_HISTORY_LINES = {
    "a list": b"[1, 2]",
    "an empty object": b"{}",
    "a date that is text": b'{"started": "abc", "duration_s": 1, "done": 1, "total": 2, "end": "stopped"}',
    "a date out of range": b'{"started": 1e20, "duration_s": 1, "done": 1, "total": 2, "end": "stopped"}',
    "a bare number": b"1e20",
    "NaN": b"NaN",
    "a NaN duration": b'{"started": 1.0, "duration_s": NaN, "done": 1, "total": 2, "end": "stopped"}',
    "an infinite duration": b'{"started": 1.0, "duration_s": 1e400, "done": 1, "total": 2, "end": "stopped"}',
    "reps as text": b'{"started": 1.0, "duration_s": 1, "done": "x", "total": 2, "end": "stopped"}',
    "an unknown end": b'{"started": 1.0, "duration_s": 1, "done": 1, "total": 2, "end": 5}',
    "binary garbage": bytes(b for b in range(256) if b != ord("\n")),
    "deep nesting": b"[" * 100_000,
}


@pytest.mark.parametrize("bad", BAD_HISTORY_LINES.values(), ids=BAD_HISTORY_LINES.keys())
def test_a_bad_history_line_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, bad: bytes,
) -> None:  # fmt: skip
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    (tmp_path / "backstretch").mkdir()
    history = f"{GOOD}\n".encode() + bad + f"\n{LATER}\n".encode()
    (tmp_path / "backstretch" / "history.jsonl").write_bytes(history)
    assert main(["history"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[-2:] for row in rows] == [["120/120", "finished"], ["3/120", "stopped"]]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "history.jsonl line 2" in warning and "skipped" in warning


def test_an_append_after_a_half_written_line_starts_a_line_of_its_own(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path
) -> None:
    (tmp_path / "history.jsonl").write_text(f"{GOOD}\n{GOOD[:30]}")  # a power cut in mid-line
    _, session, _ = _session(knee_hug, lang, tmp_path)
    session.hear("start", 0.0)
    session.hear("I'm done", 60.0)
    session.close()
    assert [e.end for e in ProgressStore.history_at(tmp_path)] == ["finished", "stopped"]
