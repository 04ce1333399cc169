"""The routine as data: the YAML schema, its loader, and the plan of steps it unrolls to.

The default routine ships as `assistant/data/routine.yaml`; a user routine file
has the same schema and overrides only the keys it sets. `plan()` unrolls a
routine into the ordered steps of a session (setup, then inhale / exhale /
optional hold for each rep, release at the end of a side), which the dialogue
manager walks through.
"""

from __future__ import annotations

import enum
import importlib.resources
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.coach import yamldoc

SIDES = ("left", "right")
VERBOSITIES = ("detailed", "brief", "counts")
# The ranges a routine file and the configuration allow (README: "Configuration").
REPS_PER_SIDE = (1, 100)
SETS = (1, 20)
INHALE_S = (1.0, 20.0)
EXHALE_S = (1.0, 20.0)
HOLD_S = (0.0, 30.0)


class StepKind(enum.Enum):
    """One stage of the session; a rep is INHALE, EXHALE and an optional HOLD."""

    SETUP = "setup"  # get into position for a side (first side, or a switch)
    INHALE = "inhale"  # breathe in (and relax, after the first rep)
    EXHALE = "exhale"  # breathe out and pull the thigh toward chest and belly
    HOLD = "hold"  # stay at the top for one breath (only when hold_s > 0)
    RELEASE = "release"  # breathe in, relax and let go at the end of a side


@dataclass(frozen=True)
class Step:
    """A step of the plan; `set_no` and `rep` count from 1 (rep is 0 outside reps)."""

    kind: StepKind
    set_no: int
    side: str
    rep: int
    side_index: int  # 0 for the first side of a set, 1 for the second
    completes_rep: bool = False  # the rep counts as done when this step ends


@dataclass(frozen=True)
class Pace:
    """Seconds per breath phase."""

    inhale_s: float = 3.0
    exhale_s: float = 4.0
    hold_s: float = 0.0

    def scaled(self, factor: float) -> Pace:
        return Pace(self.inhale_s * factor, self.exhale_s * factor, self.hold_s * factor)


@dataclass(frozen=True)
class Coaching:
    """When the optional lines are said."""

    full_reps: int = 3  # reps per side with full instructions, at verbosity "detailed"
    form_at_reps: tuple[int, ...] = (2, 12)  # straight-leg reminder on every side
    aim_at_rep: int = 8  # "stretch, not hold" note on the first side of each set
    settle_s: float = 2.0  # quiet time after the setup instructions


@dataclass(frozen=True)
class Routine:
    """A whole routine: counts, pace, cue texts and coaching rules."""

    name: str
    reps_per_side: int
    sets: int
    first_side: str
    pace: Pace
    cues: Mapping[str, Any]  # cue texts as in the YAML `cues:` mapping
    coaching: Coaching

    @property
    def total_reps(self) -> int:
        return self.reps_per_side * 2 * self.sets

    def side_order(self) -> tuple[str, str]:
        other = SIDES[1] if self.first_side == SIDES[0] else SIDES[0]
        return (self.first_side, other)


def plan(routine: Routine, with_hold: bool) -> tuple[Step, ...]:
    """The ordered steps of a whole session (20 L, 20 R, 20 L, ... for the default)."""
    steps: list[Step] = []
    for set_no in range(1, routine.sets + 1):
        for side_index, side in enumerate(routine.side_order()):
            steps.append(Step(StepKind.SETUP, set_no, side, 0, side_index))
            for rep in range(1, routine.reps_per_side + 1):
                steps.append(Step(StepKind.INHALE, set_no, side, rep, side_index))
                steps.append(Step(StepKind.EXHALE, set_no, side, rep, side_index, not with_hold))
                if with_hold:
                    steps.append(Step(StepKind.HOLD, set_no, side, rep, side_index, True))
            steps.append(Step(StepKind.RELEASE, set_no, side, 0, side_index))
    return tuple(steps)


# -- loading ---------------------------------------------------------------

_CUE_KEYS = {
    "welcome": str,
    "safety": str,
    "setup": str,
    "set_intro": str,
    "switch": str,
    "release": str,
    "form": str,
    "aim": str,
    "finished": str,
    "stopped": str,
    "inhale": {"first": {v: str for v in VERBOSITIES}, "full": str, "short": str, "counts": str},
    "exhale": {"full": str, "short": str, "counts": str},
    "hold": {"full": str, "short": str, "counts": str},
}


def default_path() -> Path:
    return Path(str(importlib.resources.files("assistant") / "data" / "routine.yaml"))


def load(path: Path | None = None) -> Routine:
    """The default routine, overlaid with the user routine file at `path` if given."""
    base = from_doc(yamldoc.load(default_path()), None)
    return base if path is None else from_doc(yamldoc.load(path), base)


def from_doc(doc: yamldoc.Doc, base: Routine | None) -> Routine:
    """Validate a routine document; keys it leaves out come from `base`."""
    top = ("name", "reps_per_side", "sets", "first_side", "pace", "cues", "coaching")
    doc.mapping((), top)
    doc.mapping(("pace",), ("inhale_s", "exhale_s", "hold_s"))
    doc.mapping(("coaching",), ("full_reps", "form_at_reps", "aim_at_rep", "settle_s"))
    b_pace = base.pace if base else Pace()
    b_coach = base.coaching if base else Coaching()
    reps = doc.integer(("reps_per_side",), base.reps_per_side if base else 20, *REPS_PER_SIDE)
    pace = Pace(
        inhale_s=doc.number(("pace", "inhale_s"), b_pace.inhale_s, *INHALE_S),
        exhale_s=doc.number(("pace", "exhale_s"), b_pace.exhale_s, *EXHALE_S),
        hold_s=doc.number(("pace", "hold_s"), b_pace.hold_s, *HOLD_S),
    )
    form_at = doc.sequence(("coaching", "form_at_reps"))
    for i, rep in enumerate(form_at):
        if isinstance(rep, bool) or not isinstance(rep, int) or rep < 1:
            raise doc.error(("coaching", "form_at_reps", i), f"expected a rep number, got {rep!r}")
    coaching = Coaching(
        full_reps=doc.integer(("coaching", "full_reps"), b_coach.full_reps, 0, 100),
        form_at_reps=tuple(form_at)
        if doc.get(("coaching", "form_at_reps")) is not None
        else b_coach.form_at_reps,
        aim_at_rep=doc.integer(("coaching", "aim_at_rep"), b_coach.aim_at_rep, 0, 100),
        settle_s=doc.number(("coaching", "settle_s"), b_coach.settle_s, 0.0, 30.0),
    )
    cues = _cues(doc, ("cues",), _CUE_KEYS, base.cues if base else None)
    return Routine(
        name=doc.text(("name",), base.name if base else None),
        reps_per_side=reps,
        sets=doc.integer(("sets",), base.sets if base else 3, *SETS),
        first_side=doc.text(("first_side",), base.first_side if base else "left", SIDES),
        pace=pace,
        cues=cues,
        coaching=coaching,
    )


def _cues(
    doc: yamldoc.Doc, path: tuple[str, ...], schema: Mapping[str, Any], base: Mapping[str, Any] | None
) -> dict[str, Any]:
    doc.mapping(path, tuple(schema))
    out: dict[str, Any] = {}
    for key, kind in schema.items():
        sub_base = base.get(key) if base else None
        if isinstance(kind, Mapping):
            out[key] = _cues(doc, (*path, key), kind, sub_base)
        else:
            text = doc.text((*path, key), sub_base)
            _check_placeholders(doc, (*path, key), text)
            out[key] = " ".join(text.split())
    return out


# -- placeholders --------------------------------------------------------------
#
# Cue and response texts come from files the user may write, so they are filled by plain
# substitution of `{name}`, never by str.format, which would evaluate attribute access,
# indexing, conversions and format specs written in the file ("{side.__class__}",
# "{side:>100000000}").

STEP_FIELDS = ("side", "other", "count", "set", "sets", "reps")  # every cue of a step
SUMMARY_FIELDS = ("sets", "reps", "done", "total", "minutes")  # "finished" and "stopped"
_SUMMARIES = ("finished", "stopped")
_FIELD = re.compile(r"\{([^{}]*)\}")


def template_problem(text: str, fields: Sequence[str]) -> str | None:
    """What is wrong with `text` as a template with placeholders `fields`, or None."""
    for match in _FIELD.finditer(text):
        if match.group(1) not in fields:
            known = ", ".join("{" + f + "}" for f in fields) or "none"
            return f"bad placeholder {match.group(0)!r}; known placeholders here: {known}"
    if "{" in _FIELD.sub("", text) or "}" in _FIELD.sub("", text):
        return "a brace that is no placeholder; write placeholders as {name}"
    return None


def fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with each `{name}` replaced by `values[name]` (checked by `template_problem`)."""
    return _FIELD.sub(lambda match: values[match.group(1)], text)


def _check_placeholders(doc: yamldoc.Doc, path: tuple[str, ...], text: str) -> None:
    problem = template_problem(text, SUMMARY_FIELDS if path[-1] in _SUMMARIES else STEP_FIELDS)
    if problem is not None:
        raise doc.error(path, problem)
