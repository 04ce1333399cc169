"""Progress that survives restarts: the position, saved atomically as it changes, and a history.

    $XDG_STATE_HOME/backstretch/position.json   the session under way (or interrupted)
    $XDG_STATE_HOME/backstretch/history.jsonl   one line per session: date, duration, reps
    $XDG_STATE_HOME/backstretch/lock            held by the one coach using the folder (its pid)

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
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assistant.app.records import VERSION, Past, Saved, history_entries, read_position
from assistant.coach.dialogue import Dialogue
from assistant.coach.events import Event, State, StateChange
from assistant.coach.intents import Reply
from assistant.errors import StateError

log = logging.getLogger(__name__)


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


class StateLock:
    """One coach per state folder: an exclusive flock on its `lock` file, held for the
    session and released by the kernel when the process ends, however it ends. The file
    names the holder, for the coach that is turned away to say."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd  # None: nothing can be written in the folder, so there is nothing to guard

    @classmethod
    def take(cls, folder: Path) -> StateLock:
        """The folder's lock; StateError naming the holder if another process has it."""
        path = folder / "lock"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            try:  # a read-only folder: its lock can still be taken, if the file is there
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                log.debug("no lock in %s: %s", folder, exc)  # the store tells why it cannot save
                return cls(None)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StateError(
                f"another coach is running with {folder} ({holder}); stop it first "
                "(the service: systemctl --user stop backstretch)"
            ) from None
        except OSError as exc:  # a file system without locks: run, but say what is at stake
            os.close(fd)
            log.warning("cannot lock %s (%s): do not run two coaches at once", path, exc)
            return cls(None)
        with contextlib.suppress(OSError):  # a read-only or full disk: the lock holds all the same
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # which drops the flock
            self.fd = None


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "its process is unknown"


@dataclass(frozen=True)
class Unsaved:
    """Why progress cannot be saved: `text` to print, and `key`, the coach's response."""

    text: str
    key: Reply


PROBE_BYTES = 4096  # a block: a disk that cannot take it cannot take a position either


class ProgressStore:
    """Saves the position of a live session as it changes, and its end into the history.

    A disk that is full or read-only (or a state folder that is a file) does not stop the
    session: the first failure is kept in `unsaved`, for the user to be told once, and
    every later write is tried again and may fail quietly, never leaving half a file."""

    def __init__(self, dialogue: Dialogue, folder: Path | None = None, lock: StateLock | None = None) -> None:
        self.dialogue = dialogue
        self.folder = folder or state_dir()
        self.lock = lock  # held from before the store is made until `release`
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
        log.info("%s", self.notice)  # the supervisor prints it: once

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
        pass  # the lock outlives the sinks: the end of a session is saved after they close

    def release(self) -> None:
        """The session is over and saved: another coach may use the folder."""
        if self.lock is not None:
            self.lock.release()

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
    if folder.is_file():
        fix = "move that file away"
    else:
        fix = "free some space" if full else f"make {folder} and what is in it writable"
    text = (
        f"progress cannot be saved ({_why(exc, folder)}); the session goes on, but the next run "
        f"will not know where it stopped: {fix}"
    )
    return Unsaved(text, "cannot_save_full" if full else "cannot_save")


def _why(exc: OSError, folder: Path) -> str:
    if folder.is_file():
        return f"{folder} is a file, not a folder"
    return f"{exc.filename or folder}: {exc.strerror or exc}"


def read_history(folder: Path, warn: bool = True) -> list[Past]:
    """The history file's sessions, oldest first (see `records.history_entries`)."""
    path = folder / "history.jsonl"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StateError(f"cannot read the history ({_why(exc, folder)}); move it away") from exc
    return history_entries(raw, str(path), warn)
