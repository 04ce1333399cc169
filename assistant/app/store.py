"""Progress that survives restarts: the position, saved atomically as it changes, and a history.

    $XDG_STATE_HOME/backstretch/position.json   the session under way (or interrupted)
    $XDG_STATE_HOME/backstretch/history.jsonl   one line per session: date, duration, reps

The store is a timeline sink: each `state` event of a session under way rewrites
position.json (temp file, fsync, rename: a power cut leaves the old or the new
file, never half of one). A finished or stopped session goes into the history
and its position is removed. A session that was interrupted (Ctrl-C, SIGTERM,
a crash, a power cut) keeps its position, and the next run offers to carry on.
A position file that cannot be read, or whose fields do not fit the routine, is
set aside with a message, never a crash; so is a damaged history line. A disk
that refuses a write does not stop the session: the user is told once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from assistant.coach.dialogue import BREATH_BOUNDS_S, Dialogue, Position
from assistant.coach.events import Event, State, StateChange
from assistant.coach.routine import Pace, Routine
from assistant.errors import StateError

log = logging.getLogger(__name__)

VERSION = 1
T = TypeVar("T")


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "backstretch"


def _write_all(fd: int, data: bytes) -> None:
    """Every byte of `data` to `fd`: the one place the state files are written (so the one
    place a test makes the disk full)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _synced_temp(folder: Path, prefix: str, data: bytes) -> Path:
    """A new file in `folder` holding `data`, on the disk; nothing is left if that fails."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _synced_temp(path.parent, f".{path.name}.", text.encode("utf-8"))
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _append_line(path: Path, line: str) -> None:
    """Append `line` whole: on a line of its own after a line a crash left unfinished, and,
    if the disk fills on the way, cut back to what the file was (never half a line)."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        data = line.encode("utf-8") + b"\n"
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Saved:
    """An unfinished session read back: where it stood, and when it ran."""

    position: Position
    started: float  # Unix time
    updated: float
    total: int


@dataclass(frozen=True)
class Unsaved:
    """Why progress cannot be saved: `text` to print, and `key`, the coach's response."""

    text: str
    key: str


PROBE_BYTES = 4096  # a block: a disk that cannot take it cannot take a position either


class ProgressStore:
    """Saves the position of a live session as it changes, and its end into the history.

    A disk that is full or read-only (or a state folder that is a file) does not stop the
    session: the first failure is kept in `unsaved`, for the user to be told once, and
    every later write is tried again and may fail quietly, never leaving half a file."""

    def __init__(self, dialogue: Dialogue, folder: Path | None = None) -> None:
        self.dialogue = dialogue
        self.folder = folder or state_dir()
        self.position_path = self.folder / "position.json"
        self.history_path = self.folder / "history.jsonl"
        self.started = time.time()
        self.notice = ""  # a message for the user about the state file, if any
        self.unsaved: Unsaved | None = None  # why progress cannot be saved, from the first failure
        self._told = False

    def take_unsaved(self) -> Unsaved | None:
        """Why progress cannot be saved, the first time it is asked after a failure."""
        if self.unsaved is None or self._told:
            return None
        self._told = True
        return self.unsaved

    # -- reading back --------------------------------------------------------------

    def load(self) -> Saved | None:
        """The interrupted session to offer, if there is one; a damaged file is set aside.
        Whether progress can be saved is found out here too, before the first rep."""
        self._try(self._probe)
        try:
            data = json.loads(self.position_path.read_bytes().decode("utf-8"))
            saved = read_position(data, self.dialogue.routine)
        except FileNotFoundError:
            return None
        except NotADirectoryError:  # the folder is a file: `unsaved` says so
            return None
        except (OSError, ValueError, RecursionError) as exc:  # JSON and decoding errors are ValueErrors
            self._set_aside(exc)
            return None
        if data.get("in_history"):
            return saved
        # A crash or a power cut: record what was done, once.
        done, total = saved.position.done, saved.total
        if self._recorded(saved.started) or self._append_history(
            saved.started, saved.updated, done, total, "interrupted"
        ):
            data["in_history"] = True
            self._try(lambda: _atomic_write(self.position_path, json.dumps(data)))
        return saved

    def _set_aside(self, exc: Exception) -> None:
        aside = self.position_path.with_name(f"position.{time.strftime('%Y%m%d-%H%M%S')}.corrupt")
        try:
            os.replace(self.position_path, aside)
        except OSError:
            aside = self.position_path
        self.notice = f"the saved position could not be read ({exc}); set aside as {aside}, starting afresh"
        log.warning("%s", self.notice)

    def _probe(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _synced_temp(self.folder, ".probe.", bytes(PROBE_BYTES)).unlink()

    def _recorded(self, started: float) -> bool:
        """Whether the history has the session that began at `started` already (a full disk
        can take its line and then refuse the position that says so)."""
        try:
            return any(past.started == started for past in read_history(self.folder, warn=False))
        except StateError:
            return False

    # -- the sink ----------------------------------------------------------------

    def write(self, event: Event) -> None:
        match event:
            case StateChange(state=State.RUNNING | State.PAUSED as state):
                self._save(state)
            case StateChange(state=State.FINISHED | State.STOPPED as state, done=done):
                self._append_history(self.started, time.time(), done, self._total(), state.value)
                self._try(lambda: self.position_path.unlink(missing_ok=True))

    def interrupted(self) -> None:
        """The program is ending with the session under way: keep the position, note it."""
        now = time.time()
        if self._append_history(self.started, now, self.dialogue.done, self._total(), "interrupted"):
            self._save(State.PAUSED, in_history=True)

    def close(self) -> None:
        pass

    def _total(self) -> int:
        return self.dialogue.routine.total_reps

    def _save(self, state: State, in_history: bool = False) -> None:
        where = self.dialogue.position()
        data: dict[str, Any] = {
            "version": VERSION, "started": self.started, "updated": time.time(),
            "set": where.set_no, "side": where.side, "rep": where.rep, "done": where.done,
            "total": self._total(), "state": state.value,
            "pace": asdict(where.pace),
        }  # fmt: skip
        if in_history:
            data["in_history"] = True
        self._try(lambda: _atomic_write(self.position_path, json.dumps(data)))

    def _append_history(self, started: float, ended: float, done: int, total: int, end: str) -> bool:
        line = {"started": started, "duration_s": round(max(ended - started, 0.0), 1), "done": done,
                "total": total, "end": end}  # fmt: skip

        def append() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            _append_line(self.history_path, json.dumps(line))

        return self._try(append)

    def _try(self, write: Callable[[], None]) -> bool:
        """Run `write`; False if the disk refused it (the first refusal is kept, to be told)."""
        try:
            write()
        except OSError as exc:
            log.debug("cannot save progress: %s", exc)
            if self.unsaved is None:
                self.unsaved = _unsaved(exc, self.folder)
            return False
        return True

    @staticmethod
    def history_at(folder: Path) -> list[Past]:
        """Past sessions, oldest first; a line that is not one is skipped with a warning."""
        return read_history(folder)


def _unsaved(exc: OSError, folder: Path) -> Unsaved:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    fix = "free some space" if full else "make it a folder you can write to"
    text = (
        f"progress cannot be saved ({_why(exc, folder)}); the session goes on, but the next run "
        f"will not know where it stopped: {fix}"
    )
    return Unsaved(text, "cannot_save_full" if full else "cannot_save")


def _why(exc: OSError, folder: Path) -> str:
    if folder.is_file():
        return f"{folder} is a file, not a folder"
    return f"{exc.filename or folder}: {exc.strerror or exc}"


@dataclass(frozen=True)
class Past:
    """One line of the history: a session that ended (or was cut short)."""

    started: float  # Unix time
    duration_s: float
    done: int  # reps done
    total: int  # reps in the routine
    end: str  # one of ENDS


ENDS = ("finished", "stopped", "interrupted")
LATEST = 1e10  # Unix time in the year 2286: later is no date but damage (and beyond time_t)
MOST_REPS = 1_000_000  # far beyond any routine; a larger count is damage


def read_history(folder: Path, warn: bool = True) -> list[Past]:
    """The history file's sessions, oldest first. A line that is not a session (damage, a
    power cut in mid-line) is skipped, with a warning: the others are still worth showing."""
    path = folder / "history.jsonl"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StateError(f"cannot read the history ({_why(exc, folder)}); move it away") from exc
    out = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(_past(json.loads(line.decode("utf-8"))))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSON errors are ValueErrors
            if warn:
                log.warning("%s line %d skipped: %s", path, number, exc)
    return out


def _past(data: object) -> Past:
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {_short(data)}")
    return Past(
        _number(data, "started", 0.0, LATEST),
        _number(data, "duration_s", 0.0, LATEST),
        _integer(data, "done", 0, MOST_REPS),
        _integer(data, "total", 0, MOST_REPS),
        _choice(data, "end", ENDS),
    )


MOST_TOTAL = 100 * 2 * 20  # the reps of the longest routine: 100 per side, 20 sets (routine.py)
HOLD_PER_BREATH = 30.0 / 2.0  # the longest hold over the shortest breath a routine can set;
# a pace changes by scaling, which keeps this ratio


def read_position(data: object, routine: Routine) -> Saved:
    """A saved position, every field checked against the routine it is to be resumed in:
    a ValueError names the first that is out of place (the file is then set aside)."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {_short(data)}")
    _choice(data, "version", (VERSION,))
    _choice(data, "state", ("running", "paused"))
    if not isinstance(data.get("in_history", False), bool):
        raise ValueError(f"in_history is {_short(data['in_history'])}, not true or false")
    set_no = _integer(data, "set", 1, routine.sets)
    side = _choice(data, "side", routine.side_order())
    rep = _integer(data, "rep", 0, routine.reps_per_side)
    total = _integer(data, "total", 1, MOST_TOTAL)
    done = _integer(data, "done", 0, MOST_TOTAL)
    if done > total:
        raise ValueError(f"done is {done}, more than the total of {total}")
    most = _most_done(routine, set_no, side, rep)
    if done > most:
        where = f"set {set_no}, {side} leg, rep {rep}"
        raise ValueError(f"done is {done}, but only {most} reps come before {where}")
    return Saved(
        Position(set_no, side, rep, done, _pace(data.get("pace"), routine)),
        _number(data, "started", 0.0, LATEST),
        _number(data, "updated", 0.0, LATEST),
        total,
    )


def _most_done(routine: Routine, set_no: int, side: str, rep: int) -> int:
    """The most reps a session standing here can have done: those before this rep (skipped
    ones are not done, and the rep under way is done again); at the end of the last side
    (rep 0 there stands for its release), all."""
    sides_before = (set_no - 1) * 2 + routine.side_order().index(side)
    before = sides_before * routine.reps_per_side + max(rep - 1, 0)
    if rep == 0 and sides_before == routine.sets * 2 - 1:
        return before + routine.reps_per_side
    return before


def _pace(data: object, routine: Routine) -> Pace:
    """The routine's own pace, or one that "slower" and "faster" can reach: finite phases and
    a breath within the dialogue's bounds (a NaN or a huge phase would silence the coach for
    good, a breath under the floor would rush the user)."""
    if not isinstance(data, dict):
        raise ValueError(f"pace is {_short(data)}, not a mapping")
    pace = Pace(*(_number(data, key, 0.0, math.inf) for key in ("inhale_s", "exhale_s", "hold_s")))
    if pace == routine.pace:
        return pace
    breath = pace.inhale_s + pace.exhale_s
    low, high = BREATH_BOUNDS_S
    if not (pace.inhale_s > 0 and pace.exhale_s > 0 and low - 1e-6 <= breath <= high + 1e-6):
        raise ValueError(
            f"the pace (inhale_s {pace.inhale_s:g}, exhale_s {pace.exhale_s:g}) is no breath "
            f"of {low:g} to {high:g} s"
        )
    if pace.hold_s > HOLD_PER_BREATH * breath:
        raise ValueError(f"the pace's hold_s is {pace.hold_s:g}, too long for a breath of {breath:g} s")
    return pace


# -- checking what was read back: each a ValueError naming the field ------------------


def _number(data: dict[str, Any], key: str, low: float, high: float) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} is {_short(value)}, not a number")
    if not low <= value <= high:  # also NaN
        raise ValueError(f"{key} is {_short(value)}, not between {low:g} and {high:g}")
    return float(value)


def _integer(data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is {_short(value)}, not a whole number")
    if not low <= value <= high:
        raise ValueError(f"{key} is {_short(value)}, not between {low} and {high}")
    return value


def _choice(data: dict[str, Any], key: str, choices: Sequence[T]) -> T:
    value = data.get(key)
    for choice in choices:  # by type too: 1.0 and True are not the version 1
        if type(value) is type(choice) and value == choice:
            return choice
    raise ValueError(f"{key} is {_short(value)}, not one of {', '.join(map(str, choices))}")


def _short(value: object) -> str:
    """A value for a message, cut short: a damaged file can hold anything."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
