"""Progress that survives restarts: the position, saved atomically as it changes, and a history.

    $XDG_STATE_HOME/backstretch/position.json   the session under way (or interrupted)
    $XDG_STATE_HOME/backstretch/history.jsonl   one line per session: date, duration, reps

The store is a timeline sink: each `state` event of a session under way rewrites
position.json (temp file, fsync, rename: a power cut leaves the old or the new
file, never half of one). A finished or stopped session goes into the history
and its position is removed. A session that was interrupted (Ctrl-C, SIGTERM,
a crash, a power cut) keeps its position, and the next run offers to carry on.
A position file that cannot be read is set aside with a message, never a crash.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assistant.coach.dialogue import Dialogue, Position
from assistant.coach.events import Event, State, StateChange
from assistant.coach.routine import Pace

log = logging.getLogger(__name__)

VERSION = 1


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "backstretch"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Saved:
    """An unfinished session read back: where it stood, and when it ran."""

    position: Position
    started: float  # Unix time
    updated: float
    total: int


class ProgressStore:
    """Saves the position of a live session as it changes, and its end into the history."""

    def __init__(self, dialogue: Dialogue, folder: Path | None = None) -> None:
        self.dialogue = dialogue
        self.folder = folder or state_dir()
        self.position_path = self.folder / "position.json"
        self.history_path = self.folder / "history.jsonl"
        self.started = time.time()
        self.notice = ""  # a message for the user about the state file, if any

    # -- reading back --------------------------------------------------------------

    def load(self) -> Saved | None:
        """The interrupted session to offer, if there is one; a damaged file is set aside."""
        try:
            data = json.loads(self.position_path.read_text(encoding="utf-8"))
            pace = data["pace"]
            saved = Saved(
                Position(int(data["set"]), str(data["side"]), int(data["rep"]), int(data["done"]),
                         Pace(float(pace["inhale_s"]), float(pace["exhale_s"]), float(pace["hold_s"]))),
                float(data["started"]), float(data["updated"]), int(data["total"]),
            )  # fmt: skip
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.position_path.with_name(f"position.{time.strftime('%Y%m%d-%H%M%S')}.corrupt")
            try:
                os.replace(self.position_path, aside)
            except OSError:
                aside = self.position_path
            self.notice = (
                f"the saved position could not be read ({exc}); set aside as {aside}, starting afresh"
            )
            log.warning("%s", self.notice)
            return None
        if not data.get("in_history"):  # a crash or a power cut: record what was done
            self._append_history(
                saved.started, saved.updated, saved.position.done, saved.total, "interrupted"
            )
            data["in_history"] = True
            _atomic_write(self.position_path, json.dumps(data))
        return saved

    # -- the sink ----------------------------------------------------------------

    def write(self, event: Event) -> None:
        match event:
            case StateChange(state=State.RUNNING | State.PAUSED as state):
                self._save(state)
            case StateChange(state=State.FINISHED | State.STOPPED as state, done=done):
                self._append_history(self.started, time.time(), done, self._total(), state.value)
                self.position_path.unlink(missing_ok=True)

    def interrupted(self) -> None:
        """The program is ending with the session under way: keep the position, note it."""
        if self.position_path.exists():
            data = json.loads(self.position_path.read_text(encoding="utf-8"))
            self._append_history(self.started, time.time(), int(data["done"]), self._total(), "interrupted")
            data["in_history"] = True
            _atomic_write(self.position_path, json.dumps(data))

    def close(self) -> None:
        pass

    def _total(self) -> int:
        return self.dialogue.routine.total_reps

    def _save(self, state: State) -> None:
        where = self.dialogue.position()
        data: dict[str, Any] = {
            "version": VERSION, "started": self.started, "updated": time.time(),
            "set": where.set_no, "side": where.side, "rep": where.rep, "done": where.done,
            "total": self._total(), "state": state.value,
            "pace": asdict(where.pace),
        }  # fmt: skip
        _atomic_write(self.position_path, json.dumps(data))

    def _append_history(self, started: float, ended: float, done: int, total: int, end: str) -> None:
        line = {"started": started, "duration_s": round(max(ended - started, 0.0), 1), "done": done,
                "total": total, "end": end}  # fmt: skip
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.history_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    @staticmethod
    def history_at(folder: Path) -> list[dict[str, Any]]:
        """Past sessions, oldest first; unreadable lines are skipped."""
        try:
            lines = (folder / "history.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                log.warning("skipping an unreadable history line")
        return out
