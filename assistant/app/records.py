"""What the state files hold, read back and checked: a saved position and the history.

Both files can be damaged (a power cut, a full disk, a hand edit, a hostile file) and
both are read at every start, so nothing in them is trusted: every field is checked
for its type and range, and a position against the routine it is to be resumed in.
A field out of place is a ValueError naming it; the store sets such a position
aside, and skips such a history line. Nothing here touches a file.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from assistant.coach.dialogue import BREATH_BOUNDS_S, Position
from assistant.coach.routine import Pace, Routine

log = logging.getLogger(__name__)

VERSION = 1  # of the position file
T = TypeVar("T")


@dataclass(frozen=True)
class Saved:
    """An unfinished session read back: where it stood, and when it ran."""

    position: Position
    started: float  # Unix time
    updated: float
    total: int


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


def history_entries(raw: bytes, source: str, warn: bool = True) -> list[Past]:
    """The sessions in the history file's bytes, oldest first. A line that is not a session
    (damage, a power cut in mid-line) is skipped, with a warning naming it: the others are
    still worth showing."""
    out = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(_past(json.loads(line.decode("utf-8"))))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSON errors are ValueErrors
            if warn:
                log.warning("%s line %d skipped: %s", source, number, exc)
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
