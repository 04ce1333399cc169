"""Session helpers shared by the tests and the bench: short routines, intents files with a
fault, and a virtual-clock driver of the dialogue with readers of what it did."""

from __future__ import annotations

from collections.abc import Iterable

from assistant.coach import intents
from assistant.coach.dialogue import Dialogue, simulate
from assistant.coach.events import Action, Cut, Event, Say, SayKind, StateChange
from assistant.coach.intents import IntentSet
from assistant.coach.track import SpeechTrack

SHORT_CUES = """\
reps_per_side: 3
sets: 1
cues:
  welcome: "Knee hugs."
  set_intro: "Set {set}."
  setup: "Bend your {side} knee."
  safety: "Go gently."
  switch: "Switch to your {side} knee."
"""
SHORT_ROUTINE = (
    SHORT_CUES
    + """\
pace: {inhale_s: 1.5, exhale_s: 2.0}
coaching: {full_reps: 0, form_at_reps: [], aim_at_rep: 0}
"""
)


def bundled_intents(old: str = "", new: str = "") -> str:
    """The bundled intents file's text, with its first `old` replaced by `new`."""
    text = intents.default_path().read_text()
    assert old in text, old
    return text.replace(old, new, 1)


def intents_with_unanswered() -> str:
    """The bundled intents file plus an intent the dialogue has no handler for ("sing")."""
    return bundled_intents("  help:\n", '  sing:\n    - "sing [me] a song"\n  help:\n')


def intents_without_skip() -> str:
    """The bundled intents file without the skip intent, which the dialogue answers."""
    text = bundled_intents()
    start = text.index("  skip:\n")
    return text[:start] + text[text.index("  help:\n", start) :]


def drive(dialogue: Dialogue, lang: IntentSet, commands: Iterable[tuple[float, str]]) -> list[Action]:
    """Say `commands` at their times on a virtual clock, then run to the end."""
    intents = [(t, lang.match(text)) for t, text in commands]
    assert all(intent is not None for _, intent in intents), commands
    return simulate(dialogue, intents)  # type: ignore[arg-type]


def says(actions: Iterable[Action], kind: SayKind | None = None) -> list[Say]:
    return [a for a in actions if isinstance(a, Say) and (kind is None or a.kind == kind)]


def spoken_spans(actions: list[Action]) -> list[tuple[float, float, str]]:
    """(start, end, text) of what is really heard: cuts end what plays and drop what is queued
    (the speech track the session keeps)."""
    track: SpeechTrack[Say] = SpeechTrack()
    for a in actions:
        if isinstance(a, Cut):
            track.cut(a.t)
        elif isinstance(a, Say):
            track.add(a.t, a.end_s, a)
    return [(span.start, span.end, span.item.text) for span in track]


def completed_reps(actions: Iterable[Action]) -> list[tuple[int, str, int]]:
    """(set, side, rep) of every rep done, read from the state changes alone."""
    done: list[tuple[int, str, int]] = []
    before: StateChange | None = None
    for a in actions:
        if not isinstance(a, StateChange):
            continue
        if before is not None and a.done != before.done:
            assert a.done == before.done + 1, (before, a)
            done.append((before.set_no, before.side, before.rep))
        before = a
    return done


class Events:
    """A session sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass
