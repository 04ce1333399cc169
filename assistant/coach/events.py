"""What a session produces: typed events, the same for every sink, in time order.

    Say          the coach speaks `text` from `t` for `duration_s`; `kind` tells cues from replies
    Cut          whatever the coach is saying at `t` stops (pause, stop, skip)
    Volume       the volume from `t` on
    StateChange  where the session stands (state, set, side, rep, reps done)
    Heard        the user said `text` (typed, scripted or recognised)
    Understood   ... and it is this command

The dialogue returns the first four (its `Action`s); the session adds the other two.
Sinks dispatch on the type with `match`; only the timeline file turns events into
JSON (app/timeline.py), so a renamed field is a type error, not a silent miss.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class State(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"


class SayKind(enum.Enum):
    """What an utterance is: the cue of a step, or something said in answer or at the end."""

    SETUP = "setup"
    INHALE = "inhale"
    EXHALE = "exhale"
    HOLD = "hold"
    RELEASE = "release"
    REPLY = "reply"  # an answer to a command
    REPEAT = "repeat"  # the last instruction again
    FINISHED = "finished"  # the summary at the end of the routine
    STOPPED = "stopped"  # the summary when the user stopped


@dataclass(frozen=True)
class Say:
    """Speak `text` from session time `t` for `duration_s`."""

    t: float
    text: str
    duration_s: float
    kind: SayKind

    @property
    def end_s(self) -> float:
        return self.t + self.duration_s


@dataclass(frozen=True)
class Cut:
    """Silence whatever is being spoken at `t` (a pause or stop interrupts a cue)."""

    t: float


@dataclass(frozen=True)
class Volume:
    t: float
    volume: float


@dataclass(frozen=True)
class StateChange:
    """Where the session is: `rep` is the rep under way (0 between sides), `done` the reps done."""

    t: float
    state: State
    set_no: int
    side: str
    rep: int
    done: int


@dataclass(frozen=True)
class Heard:
    """The user said `text` at `t`; from a recogniser, also where the speech ended (audio
    time mapped to session time): `t` is then when the recogniser had it."""

    t: float
    text: str
    speech_end_s: float | None = None


@dataclass(frozen=True)
class Understood:
    """What was heard at `t` is the command `name` with these slot values."""

    t: float
    name: str
    slots: Mapping[str, str] = field(default_factory=dict)
    speech_end_s: float | None = None


Action = Say | Cut | Volume | StateChange  # what the dialogue decides
Event = Action | Heard | Understood  # what sinks receive


class Sink(Protocol):
    """Where events go: a timeline file, a transcript, the player, the store."""

    def write(self, event: Event) -> None: ...

    def close(self) -> None: ...
