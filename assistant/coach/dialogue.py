"""The dialogue manager: a pure state machine that walks the routine and answers commands.

It is driven by two events, both stamped with session time in seconds:

    advance(now)         the clock reached `now`
    hear(intent, now)    the user said a command at `now`

and returns the actions to carry out: `Say` (text at a time, with its duration),
`Cut` (silence whatever is playing), `Volume` and `StateChange`. It never reads a
clock, a device or a file; `next_wakeup()` tells the caller when to call
`advance` next. Utterances never overlap: each starts no earlier than the end of
the one before, and a step that is still being spoken lasts until its words end.

States: IDLE -> RUNNING <-> PAUSED -> FINISHED or STOPPED (either can start again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from assistant.coach import cues
from assistant.coach.cues import spell, spell_minutes
from assistant.coach.events import Action, Cut, Say, SayKind, State, StateChange, Volume
from assistant.coach.intents import Intent, IntentSet, Reply
from assistant.coach.routine import Pace, Routine, Step, StepKind, fill, plan

log = logging.getLogger(__name__)

GAP_S = 0.4  # least silence after a cue before the next step's cue
PACE_STEP = 1.2  # slower multiplies each phase by this, faster divides
BREATH_BOUNDS_S = (4.0, 20.0)  # shortest and longest inhale + exhale
VOLUME_STEP = 0.1
VOLUME_BOUNDS = (0.1, 1.0)
_ADJUSTMENTS = frozenset({"slower", "faster", "louder", "quieter"})
PaceReply = Literal["slower", "faster"]
VolumeReply = Literal["louder", "quieter"]
CUE_KINDS = {
    StepKind.SETUP: SayKind.SETUP,
    StepKind.INHALE: SayKind.INHALE,
    StepKind.EXHALE: SayKind.EXHALE,
    StepKind.HOLD: SayKind.HOLD,
    StepKind.RELEASE: SayKind.RELEASE,
}  # the kind of utterance each step's cue is


Handler = Callable[["Dialogue", Intent, float, list[Action]], None]


def estimate_speech_s(text: str) -> float:
    """A rough speaking time, until the coach has a voice that gives the real one."""
    return 0.25 + 0.055 * len(text)


@dataclass(frozen=True)
class Position:
    """Where a session stands, enough to pick it up again: the rep to go back to
    (rep 0: the start of that side), the reps done, and the pace."""

    set_no: int
    side: str
    rep: int
    done: int
    pace: Pace


class Dialogue:
    """Steps through the routine and answers every command, in every state."""

    HANDLERS: ClassVar[Mapping[str, Handler]]  # intent -> its handler; at the end of the class

    def __init__(
        self,
        routine: Routine,
        intents: IntentSet,
        verbosity: str = "detailed",
        volume: float = 0.8,
        speech_s: Callable[[str], float] = estimate_speech_s,
    ) -> None:
        check_intents(intents)
        self.routine = routine
        self.intents = intents
        self.verbosity = verbosity
        self.volume = volume
        self.speech_s = speech_s
        self.steps: tuple[Step, ...] = plan(routine, with_hold=routine.pace.hold_s > 0)
        self.state = State.IDLE
        self.pace = routine.pace
        self.index = 0  # the step under way (RUNNING) or to resume from (PAUSED)
        self.done = 0
        self.step_ends = 0.0  # when the step under way hands over to the next
        self.busy_until = 0.0  # when the last utterance ends
        self.started_at = 0.0
        self.last_instruction = ""
        self.saved: int | None = None  # a step to carry on from, offered after a restart
        self._reported: tuple[object, ...] = ()

    # -- the two events ------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """When `advance` must next be called; None while nothing is scheduled."""
        return self.step_ends if self.state is State.RUNNING else None

    def advance(self, now: float) -> list[Action]:
        """Carry the session forward to `now`, starting every step due by then."""
        out: list[Action] = []
        while self.state is State.RUNNING and self.step_ends <= now:
            self._end_step(self.step_ends, out)
        return out

    def hear(self, intent: Intent, now: float) -> list[Action]:
        """Answer `intent`, said at `now`."""
        out = self.advance(now)
        self.HANDLERS[intent.name](self, intent, now, out)  # every intent has one: check_intents
        if intent.name in _ADJUSTMENTS and self.state not in (State.RUNNING, State.PAUSED):
            self._reply(now, "hint", out)  # the change is kept; say how to begin
        self._report(now, out)
        return out

    # -- queries ---------------------------------------------------------------

    @property
    def current(self) -> Step:
        return self.steps[min(self.index, len(self.steps) - 1)]

    def remaining_s(self) -> float:
        """A rough time to the end, at the current pace."""
        return sum(self._nominal_s(s) for s in self.steps[self.index :])

    def total_s(self) -> float:
        return sum(self._nominal_s(s) for s in self.steps)

    def position(self) -> Position:
        step = self.steps[min(self._resume_index(), len(self.steps) - 1)]
        return Position(step.set_no, step.side, step.rep, self.done, self.pace)

    def interrupt(self, t: float) -> list[Action]:
        """The program is ending with the session under way (Ctrl-C, SIGTERM, end of
        input): fall silent and keep the place, as a pause does, without a word."""
        out: list[Action] = []
        if self.state is State.RUNNING:
            self._interrupt(t, out)
            self.index = self._resume_index()
            self.state = State.PAUSED
            self._report(t, out)
        return out

    def offer(self, saved: Position, t: float) -> list[Action]:
        """After a restart: offer to carry on from `saved`. Resume picks it up; start
        begins again. A position the routine does not have (it changed) is ignored."""
        index = next(
            (
                i
                for i, step in enumerate(self.steps)
                if (step.set_no, step.side, step.rep) == (saved.set_no, saved.side, saved.rep)
            ),
            None,
        )
        if index is None or self.state is not State.IDLE:
            log.info("not offering %s: not in this routine", saved)
            return []
        self.saved, self.index, self.done, self.pace = index, index, saved.done, saved.pace
        out: list[Action] = []
        self._reply(t, "offer", out, **self._where())
        return out

    def tell(self, key: Reply, t: float) -> list[Action]:
        """Say the fixed response `key` at `t`, in any state: a notice from outside the
        dialogue (that progress cannot be saved, say)."""
        out: list[Action] = []
        self._say(t, self.intents.say(key), SayKind.REPLY, out)
        return out

    def likely_texts(self, t: float) -> list[str]:
        """Lines that depend on the moment and may be asked for next, worth synthesising
        ahead so the answer is immediate: the summary if the user stopped at `t`, and,
        while paused, the resume line."""
        if self.state not in (State.RUNNING, State.PAUSED):
            return []
        out = [self._summary_text(SayKind.STOPPED, t)]
        if self.state is State.PAUSED:
            out.append(self.intents.say("resuming", **self._where()))
        return out

    # -- stepping ------------------------------------------------------------

    def _nominal_s(self, step: Step) -> float:
        if step.kind is StepKind.INHALE or step.kind is StepKind.RELEASE:
            return self.pace.inhale_s
        if step.kind is StepKind.EXHALE:
            return self.pace.exhale_s
        if step.kind is StepKind.HOLD:
            return self.pace.hold_s
        return self.routine.coaching.settle_s + 12.0  # setup: words plus settling in

    def _begin_step(self, index: int, t: float, out: list[Action], fresh: bool = False) -> None:
        self.index = index
        step = self.steps[index]
        text = cues.step_text(self.routine, step, self.verbosity, fresh)
        start = max(t, self.busy_until)
        spoken = self._say(start, text, CUE_KINDS[step.kind], out)
        self.last_instruction = text
        if step.kind is StepKind.SETUP:
            length = spoken + GAP_S + self.routine.coaching.settle_s
        else:
            length = max(self._nominal_s(step), spoken + GAP_S)
        self.step_ends = start + length
        self._report(start, out)

    def _end_step(self, t: float, out: list[Action]) -> None:
        if self.current.completes_rep:
            self.done += 1
        if self.index + 1 < len(self.steps):
            self._begin_step(self.index + 1, t, out)
        else:
            self.index = len(self.steps)
            self._finish(t, out)

    def _finish(self, t: float, out: list[Action]) -> None:
        self.state = State.FINISHED
        self._summary(SayKind.FINISHED, t, out)
        self._report(t, out)

    def _summary_text(self, kind: SayKind, t: float) -> str:
        values = {
            "sets": spell(self.routine.sets),
            "reps": spell(self.routine.reps_per_side),
            "done": spell(self.done),
            "total": spell(self.routine.total_reps),
            "minutes": spell_minutes(max(t, self.busy_until) - self.started_at),
        }
        return fill(str(self.routine.cues[kind.value]), values)

    def _summary(self, kind: SayKind, t: float, out: list[Action]) -> None:
        text = self._summary_text(kind, t)
        self._say(t, text, kind, out)
        self.last_instruction = text

    def _resume_index(self) -> int:
        """The step to go back to: the start of the rep (or side) under way."""
        i = min(self.index, len(self.steps))
        if i == len(self.steps):
            return i
        step = self.steps[i]
        if step.kind is StepKind.RELEASE:
            return i + 1  # the side is done; carry on with the next one
        while step.rep and i > 0 and self.steps[i - 1].rep == step.rep:
            i -= 1
        return i

    def _say(self, t: float, text: str, kind: SayKind, out: list[Action]) -> float:
        start = max(t, self.busy_until)
        duration = self.speech_s(text)
        out.append(Say(start, text, duration, kind))
        self.busy_until = start + duration
        return duration

    def _reply(self, t: float, key: Reply, out: list[Action], **values: object) -> None:
        if key in ("hint", "help_idle") and self.state is State.IDLE and self.saved is not None:
            key, values = "offer", self._where()  # a restart's offer still stands
        self._say(t, self.intents.say(key, **values), SayKind.REPLY, out)

    def _interrupt(self, t: float, out: list[Action]) -> None:
        """Cut off the cue under way, for commands that must take effect at once."""
        if self.busy_until > t:
            out.append(Cut(t))
            self.busy_until = t

    def _where(self) -> dict[str, object]:
        step = self.steps[min(self._resume_index(), len(self.steps) - 1)]
        return {
            "set": spell(step.set_no),
            "sets": spell(self.routine.sets),
            "side": step.side,
            "rep": spell(max(step.rep, 1)),
            "reps": spell(self.routine.reps_per_side),
        }

    def _report(self, t: float, out: list[Action]) -> None:
        step = self.current
        rep = step.rep if self.state in (State.RUNNING, State.PAUSED) else 0
        key = (self.state, step.set_no, step.side, rep, self.done)
        if key != self._reported:
            self._reported = key
            out.append(StateChange(t, self.state, step.set_no, step.side, rep, self.done))

    # -- commands ------------------------------------------------------------

    def _on_start(self, intent: Intent, t: float, out: list[Action]) -> None:
        if self.state is State.RUNNING:
            self._reply(t, "already_running", out, **self._where())
        elif self.state is State.PAUSED:
            self._on_resume(intent, t, out)
        else:
            self.state = State.RUNNING
            self.done = 0
            self.saved = None
            self.pace = self.routine.pace
            self.started_at = t
            self._begin_step(0, t, out, fresh=True)

    def _on_pause(self, intent: Intent, t: float, out: list[Action]) -> None:
        if self.state is State.PAUSED:
            self._reply(t, "already_paused", out, **self._where())
        elif self.state is State.RUNNING:
            self._interrupt(t, out)
            self.index = self._resume_index()
            self.state = State.PAUSED
            self._reply(t, "paused", out)
            if self.index >= len(self.steps):
                self._finish(t, out)
        else:
            self._reply(t, "not_running", out)

    def _on_resume(self, intent: Intent, t: float, out: list[Action]) -> None:
        if self.state is State.PAUSED:
            self.state = State.RUNNING
            self._reply(t, "resuming", out, **self._where())
            self._begin_step(self.index, t, out, fresh=True)
        elif self.state is State.RUNNING:
            self._reply(t, "already_running", out, **self._where())
        elif self.state is State.IDLE and self.saved is not None:
            index, self.saved = self.saved, None
            self.state = State.RUNNING
            self.started_at = t
            self._reply(t, "resuming", out, **self._where())
            self._begin_step(index, t, out, fresh=True)
        else:
            self._reply(t, "hint", out)

    def _on_stop(self, intent: Intent, t: float, out: list[Action]) -> None:
        if self.state in (State.RUNNING, State.PAUSED):
            self._interrupt(t, out)
            if self.state is State.RUNNING:
                self.index = self._resume_index()
            self.state = State.STOPPED
            self._summary(SayKind.STOPPED, t, out)
        else:
            self._reply(t, "not_running", out)

    def _on_skip(self, intent: Intent, t: float, out: list[Action]) -> None:
        if self.state not in (State.RUNNING, State.PAUSED):
            self._reply(t, "not_running", out)
            return
        here = self.current
        to_set = intent.slots.get("skip_target") == "set"
        target = next(
            (
                i
                for i in range(self.index + 1, len(self.steps))
                if self.steps[i].kind is StepKind.SETUP
                and (self.steps[i].set_no > here.set_no if to_set else True)
            ),
            None,
        )
        self._interrupt(t, out)
        self.state = State.RUNNING
        if target is None:
            self._reply(t, "skip_last", out)
            self.index = len(self.steps)
            self._finish(t, out)
            return
        self._reply(t, "skip", out)
        self._begin_step(target, t, out, fresh=self.steps[target].side_index == 0 and to_set)

    def _change_pace(self, t: float, out: list[Action], factor: float, name: PaceReply) -> None:
        low, high = BREATH_BOUNDS_S
        breath = self.pace.inhale_s + self.pace.exhale_s
        wanted = min(max(breath * factor, low), high)
        if abs(wanted - breath) < 0.05:
            self._reply(t, "slowest" if factor > 1 else "fastest", out)
            return
        self.pace = self.pace.scaled(wanted / breath)
        log.info("pace now %.2f s in, %.2f s out", self.pace.inhale_s, self.pace.exhale_s)
        self._say(t, self._pace_reply(name, self.pace), SayKind.REPLY, out)

    def _pace_reply(self, name: PaceReply, pace: Pace) -> str:
        return pace_reply(self.intents, name, pace)

    def _on_slower(self, intent: Intent, t: float, out: list[Action]) -> None:
        self._change_pace(t, out, PACE_STEP, "slower")

    def _on_faster(self, intent: Intent, t: float, out: list[Action]) -> None:
        self._change_pace(t, out, 1 / PACE_STEP, "faster")

    def _change_volume(self, t: float, out: list[Action], delta: float, name: VolumeReply) -> None:
        low, high = VOLUME_BOUNDS
        wanted = round(min(max(self.volume + delta, low), high), 2)
        if abs(wanted - self.volume) < 1e-6:
            self._reply(t, "loudest" if delta > 0 else "quietest", out)
            return
        self.volume = wanted
        out.append(Volume(t, wanted))
        self._reply(t, name, out)

    def _on_louder(self, intent: Intent, t: float, out: list[Action]) -> None:
        self._change_volume(t, out, VOLUME_STEP, "louder")

    def _on_quieter(self, intent: Intent, t: float, out: list[Action]) -> None:
        self._change_volume(t, out, -VOLUME_STEP, "quieter")

    def _on_repeat(self, intent: Intent, t: float, out: list[Action]) -> None:
        if self.last_instruction:
            self._say(t, self.last_instruction, SayKind.REPEAT, out)
        else:
            self._reply(t, "hint", out)

    def _on_status(self, intent: Intent, t: float, out: list[Action]) -> None:
        minutes = spell_minutes(self.remaining_s())
        if self.state is State.RUNNING:
            self._reply(t, "status", out, minutes=minutes, **self._where())
        elif self.state is State.PAUSED:
            self._reply(t, "status_paused", out, minutes=minutes, **self._where())
        elif self.state is State.IDLE:
            self._reply(t, "status_idle", out, minutes=spell_minutes(self.total_s()))
        else:
            self._summary(SayKind.FINISHED if self.state is State.FINISHED else SayKind.STOPPED, t, out)

    def _on_help(self, intent: Intent, t: float, out: list[Action]) -> None:
        running = self.state in (State.RUNNING, State.PAUSED)
        self._reply(t, "help" if running else "help_idle", out)

    # The intents the dialogue answers: an intents file must have exactly these (check_intents).
    HANDLERS = {
        "start": _on_start,
        "pause": _on_pause,
        "resume": _on_resume,
        "stop": _on_stop,
        "slower": _on_slower,
        "faster": _on_faster,
        "repeat": _on_repeat,
        "status": _on_status,
        "skip": _on_skip,
        "help": _on_help,
        "louder": _on_louder,
        "quieter": _on_quieter,
    }


def check_intents(intents: IntentSet) -> None:
    """The intents file must have every intent the dialogue answers, and no other: a command
    without a handler would be heard and ignored, a handler without phrases never called."""
    for name in intents.names:
        if name not in Dialogue.HANDLERS:
            raise intents.error(
                ("intents", name),
                f"the coach has no answer to this intent; remove it, or name it as one of "
                f"{', '.join(Dialogue.HANDLERS)}",
            )
    for name in Dialogue.HANDLERS:
        if name not in intents.names:
            raise intents.error(
                ("intents",), f"the intent {name!r} is missing; the coach answers it, so give it templates"
            )


def pace_reply(intents: IntentSet, name: PaceReply, pace: Pace) -> str:
    """The answer to "slower" or "faster" (`name`) at the new `pace`."""
    return intents.say(name, inhale=spell(round(pace.inhale_s)), exhale=spell(round(pace.exhale_s)))


def foreseeable_texts(routine: Routine, intents: IntentSet, verbosity: str) -> set[str]:
    """What a cue cache should hold before a session: every cue of the plan, every fixed
    reply, and the pace replies along the slower and faster steps."""
    texts = {
        cues.step_text(routine, step, verbosity, fresh)
        for step in plan(routine, with_hold=routine.pace.hold_s > 0)
        for fresh in (False, True)
    }
    texts |= {text for text in intents.responses.values() if "{" not in text}
    low, high = BREATH_BOUNDS_S
    steps: tuple[tuple[float, PaceReply], ...] = ((PACE_STEP, "slower"), (1 / PACE_STEP, "faster"))
    for factor, name in steps:
        pace = routine.pace
        while low <= (pace.inhale_s + pace.exhale_s) * factor <= high:
            pace = pace.scaled(factor)
            texts.add(pace_reply(intents, name, pace))
    return texts


def in_order_of_use(routine: Routine, intents: IntentSet, verbosity: str) -> list[str]:
    """The foreseeable texts (`foreseeable_texts`) in the order a session first says them,
    from "start" on without a command; then the others (replies, and cues only a resume or
    a change of pace brings), sorted."""
    texts = foreseeable_texts(routine, intents, verbosity)
    said = simulate(Dialogue(routine, intents, verbosity), [(0.0, Intent("start"))])
    first = list(dict.fromkeys(a.text for a in said if isinstance(a, Say) and a.text in texts))
    return first + sorted(texts.difference(first))


def simulate(dialogue: Dialogue, commands: Iterable[tuple[float, Intent]]) -> list[Action]:
    """Run `dialogue` on the virtual clock: each intent at its time, then on to the end."""
    out: list[Action] = []
    for t, intent in commands:
        while (wake := dialogue.next_wakeup()) is not None and wake <= t:
            out += dialogue.advance(wake)
        out += dialogue.hear(intent, t)
    while (wake := dialogue.next_wakeup()) is not None:
        out += dialogue.advance(wake)
    return out
