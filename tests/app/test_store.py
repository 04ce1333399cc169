"""Progress that survives restarts: the position file, the history, damaged files."""

from __future__ import annotations

import errno
import functools
import io
import json
import math
import os
import queue
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.app import store as store_module
from assistant.app import supervisor
from assistant.app.cli import main
from assistant.app.offline import Utterance
from assistant.app.store import ProgressStore
from assistant.app.supervisor import Heard
from assistant.coach import intents, routine
from assistant.coach.dialogue import Dialogue
from assistant.coach.events import Event, Say, State, StateChange
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Pace, Routine
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


# -- every field of a saved position is checked (issue 11, items 3 and 5) ----------------------


def _interrupted_at(routine: Routine, lang: IntentSet, folder: Path, t: float) -> dict[str, Any]:
    """The position file of a session interrupted at `t`, as a dictionary."""
    _, session, store = _session(routine, lang, folder)
    session.hear("start", 0.0)
    session.run_until(t)
    session.end(t)
    store.interrupted()
    data: dict[str, Any] = json.loads(store.position_path.read_text())
    return data


def _with(data: dict[str, Any], field: str, raw: str) -> str:
    """`data` as JSON with `field` ("pace.inhale_s" for one in the pace) set to the JSON text `raw`."""
    changed = json.loads(json.dumps(data))
    *outer, key = field.split(".")
    where = changed
    for name in outer:
        where = where[name]
    where[key] = "@@"
    return json.dumps(changed).replace('"@@"', raw)


DAMAGED_FIELDS = [
    ("set", "1e400"), ("set", "0"), ("set", "4"), ("set", "1.5"), ("set", "true"), ("set", '"1"'),
    ("side", '"middle"'), ("side", "null"), ("rep", "-1"), ("rep", "21"),
    ("done", "5000"), ("done", "-100"), ("done", "50"),  # 50: more than come before set 1, left, rep 8
    ("total", "0"), ("total", '"x"'), ("total", "3"), ("started", "NaN"), ("started", '"x"'),
    ("updated", "1e400"), ("state", '"finished"'), ("version", "2"), ("in_history", '"yes"'),
    # the pace (item 5): a breath must be finite and within the dialogue's bounds
    ("pace.inhale_s", "NaN"), ("pace.inhale_s", "1e308"), ("pace.inhale_s", "-5"), ("pace.inhale_s", "0"),
    ("pace.exhale_s", "Infinity"), ("pace.exhale_s", "60"), ("pace.hold_s", "1e308"), ("pace.hold_s", "-1"),
    ("pace.inhale_s", '"3"'), ("pace", "null"), ("pace", "[3, 4, 0]"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "raw"), DAMAGED_FIELDS, ids=[f"{f}={r}" for f, r in DAMAGED_FIELDS])
def test_a_position_with_a_field_out_of_place_is_set_aside(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path, field: str, raw: str
) -> None:
    data = _interrupted_at(knee_hug, lang, tmp_path / "run", 100.0)
    assert (data["set"], data["side"], data["rep"], data["done"]) == (1, "left", 8, 7)
    damage = _with(data, field, raw)
    (tmp_path / "position.json").write_text(damage)
    store = ProgressStore(Dialogue(knee_hug, lang), tmp_path)
    assert store.load() is None
    assert "could not be read" in store.notice and field.split(".")[-1] in store.notice
    (aside,) = tmp_path.glob("position.*.corrupt")
    assert aside.read_text() == damage


@pytest.mark.parametrize("damage", ["[1, 2]", "null", "1e400", '"position"', "[" * 100_000])
def test_a_position_that_is_no_object_is_set_aside(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path, damage: str
) -> None:
    (tmp_path / "position.json").write_text(damage)
    store = ProgressStore(Dialogue(knee_hug, lang), tmp_path)
    assert store.load() is None and "set aside" in store.notice


@functools.cache
def _bundled() -> tuple[IntentSet, Routine]:
    """The bundled intents and routine, loaded once (hypothesis cannot take pytest's fixtures)."""
    return intents.load(), routine.load()


COMMANDS = ("pause", "resume", "slower", "faster", "skip", "skip this set", "stop", "start")


@settings(max_examples=40, deadline=None)
@given(
    hold=st.booleans(),
    said=st.lists(st.tuples(st.floats(0.5, 90.0), st.sampled_from(COMMANDS)), max_size=10),
    stop_at=st.floats(1.0, 400.0),
)
def test_every_position_a_session_saves_is_taken_back(
    hold: bool, said: list[tuple[float, str]], stop_at: float
) -> None:
    """The checks set aside damage, never a position the coach itself wrote: sessions of
    any commands, on a short routine that reaches its end, are interrupted and restarted."""
    lang, knee_hug = _bundled()
    short = replace(knee_hug, sets=2, reps_per_side=3, pace=Pace(3.0, 4.0, 2.0 if hold else 0.0))
    # The store syncs every rep to disk: in memory (tmpfs) that costs nothing, 40 times over.
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as folder:
        dialogue, session, store = _session(short, lang, Path(folder))
        session.hear("start", 0.0)
        t = 0.0
        for wait, text in said:
            t += wait
            session.hear(text, t)
        session.end(stop_at + t)
        session.close()
        if dialogue.state is State.PAUSED:
            store.interrupted()
        later = ProgressStore(Dialogue(short, lang), Path(folder))
        saved = later.load()
        assert later.notice == ""
        if store.position_path.exists():
            assert saved is not None and saved.position == dialogue.position()  # the pace too
            again = Session(later.dialogue, lang, [later])
            again.offer(saved.position, 0.0)
            again.hear("resume", 0.0)
            again.run_until(math.inf)
            assert later.dialogue.state is State.FINISHED


# -- a disk that is full or read-only (issue 11, item 2) -----------------------------------------


class _Disk:
    """The store's one write function on a disk that fails with `errno_`: a full disk takes
    half of what is written first, a read-only one nothing. `new_only`: only new files fail
    (a full disk can still take a line in the last block of the history); `after`: so many
    writes succeed first."""

    def __init__(self, errno_: int, new_only: bool = False, after: int = 0) -> None:
        self.errno, self.new_only, self.after = errno_, new_only, after

    def __call__(self, fd: int, data: bytes) -> None:
        if self.after > 0 or (self.new_only and os.fstat(fd).st_size > 0):
            self.after -= 1
            os.write(fd, data)
            return
        if self.errno == errno.ENOSPC:
            os.write(fd, data[: len(data) // 2])
        raise OSError(self.errno, os.strerror(self.errno))


@pytest.mark.parametrize("errno_", [errno.ENOSPC, errno.EROFS], ids=["full", "read-only"])
def test_a_disk_that_takes_nothing_neither_stops_the_session_nor_keeps_half_a_file(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errno_: int
) -> None:
    (tmp_path / "history.jsonl").write_text(GOOD + "\n")
    monkeypatch.setattr(store_module, "_write_all", _Disk(errno_))
    dialogue, session, store = _session(knee_hug, lang, tmp_path)
    assert store.load() is None
    session.hear("start", 0.0)
    session.run_until(200.0)  # a dozen reps, each a position not saved
    session.hear("I'm done", 200.0)
    session.close()
    assert dialogue.state is State.STOPPED
    assert (tmp_path / "history.jsonl").read_text() == GOOD + "\n"  # no half line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl"]  # no temp file left
    unsaved = store.take_unsaved()
    assert unsaved is not None and os.strerror(errno_) in unsaved.text and "goes on" in unsaved.text
    assert unsaved.key == ("cannot_save_full" if errno_ == errno.ENOSPC else "cannot_save")
    assert store.take_unsaved() is None  # said once


def test_a_full_disk_records_an_interrupted_session_once(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history line fits in the file's last block, the rewritten position does not: the
    next start must not record the same session again."""
    _interrupted_after_a_crash = _interrupted_at(knee_hug, lang, tmp_path, 100.0)
    _interrupted_after_a_crash.pop("in_history")
    (tmp_path / "position.json").write_text(json.dumps(_interrupted_after_a_crash))
    (tmp_path / "history.jsonl").write_text(GOOD + "\n")
    monkeypatch.setattr(store_module, "_write_all", _Disk(errno.ENOSPC, new_only=True))
    for _ in range(3):  # three starts on the full disk
        assert ProgressStore(Dialogue(knee_hug, lang), tmp_path).load() is not None
    assert [e.end for e in ProgressStore.history_at(tmp_path)] == ["finished", "interrupted"]


def _history_a_folder(folder: Path) -> None:
    (folder / "history.jsonl").mkdir(parents=True)


def _folder_a_file(folder: Path) -> None:
    folder.write_text("not a folder")


@pytest.mark.parametrize(
    ("make", "said"),
    [(_history_a_folder, "history.jsonl: Is a directory"), (_folder_a_file, "is a file, not a folder")],
    ids=["history-a-folder", "folder-a-file"],
)
def test_a_state_folder_or_history_of_the_wrong_kind(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], make: Callable[[Path], None], said: str,
) -> None:  # fmt: skip
    """The session goes on, told once; `backstretch history` gives one line, exit 2."""
    make(tmp_path / "backstretch")
    dialogue, session, store = _session(knee_hug, lang, tmp_path / "backstretch")
    assert store.load() is None and store.notice == ""
    session.hear("start", 0.0)
    session.run_until(math.inf)
    session.close()
    assert dialogue.state is State.FINISHED
    unsaved = store.take_unsaved()
    assert unsaved is not None and said in unsaved.text
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert main(["history"]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err


class _Said:
    """A sink that keeps what the coach says."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def write(self, event: Event) -> None:
        if isinstance(event, Say):
            self.texts.append(event.text)

    def close(self) -> None:
        pass


def test_the_coach_says_at_the_start_that_progress_cannot_be_saved(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_write_all", _Disk(errno.ENOSPC))
    dialogue = Dialogue(knee_hug, lang)
    store, said, printed = ProgressStore(dialogue, tmp_path), _Said(), []
    session = Session(dialogue, lang, [said, store])
    supervisor.run(session, None, store, stdin=io.StringIO("start back stretch\n"), say=printed.append)
    assert said.texts[0] == lang.say("cannot_save_full")
    assert said.texts.count(lang.say("cannot_save_full")) == 1
    (line,) = [p for p in printed if "cannot be saved" in p]
    assert "No space left on device" in line
    assert not any("offers to carry on" in p for p in printed)  # it would not


class _Waiting(queue.Queue[Heard | None]):
    """run_live's input on a virtual clock: waiting for a line moves the clock, not the wall."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def get(self, block: bool = True, timeout: float | None = None) -> Heard | None:
        try:
            return super().get(block=False)
        except queue.Empty:
            self.now += max(timeout or 0.0, 0.01)  # a real clock moves on, even when not waiting
            raise


def test_the_coach_says_once_when_saving_fails_during_the_session(
    knee_hug: Routine, lang: IntentSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_write_all", _Disk(errno.ENOSPC, after=6))  # the disk fills
    dialogue = Dialogue(knee_hug, lang)
    store, said, printed = ProgressStore(dialogue, tmp_path), _Said(), []
    session = Session(dialogue, lang, [said, store])
    assert store.load() is None and store.take_unsaved() is None
    inputs = _Waiting()
    script = [Utterance(0.0, "start back stretch"), Utterance(240.0, "I'm done")]
    tell = supervisor.unsaved_teller(store, session, printed.append)
    supervisor.run_live(session, inputs, lambda: inputs.now, script, tell=tell)
    assert said.texts.count(lang.say("cannot_save_full")) == 1
    told = said.texts.index(lang.say("cannot_save_full"))
    assert 0 < told < len(said.texts) - 10  # said in the session, which went on
    assert dialogue.state is State.STOPPED and dialogue.done > 15
    assert len([p for p in printed if "cannot be saved" in p]) == 1
