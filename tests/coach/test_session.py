"""The session (coach/session.py): heard text to intents, events to sinks in time order,
the player (a scheduler) told at once, cuts dropping what was decided ahead."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from assistant.coach.dialogue import Dialogue
from assistant.coach.events import Cut, Event, Heard, Say, SayKind, State, StateChange, Understood
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Routine
from assistant.coach.session import FORGET_S, Session


class Sink:
    """Keeps what it is given, with the clock reading at the time (None: no clock)."""

    def __init__(self, clock: list[float] | None = None) -> None:
        self.clock = clock
        self.events: list[Event] = []
        self.at: list[float | None] = []
        self.closed = False

    def write(self, event: Event) -> None:
        self.events.append(event)
        self.at.append(self.clock[0] if self.clock else None)

    def close(self) -> None:
        self.closed = True

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def short(knee_hug: Routine) -> Routine:
    return replace(knee_hug, reps_per_side=3, sets=1)


def test_heard_text_becomes_an_intent_and_an_answer(short: Routine, lang: IntentSet) -> None:
    sink = Sink()
    session = Session(Dialogue(short, lang), lang, [sink])
    assert session.hear("Okay, start back stretch please", 1.0)
    heard, understood, say = sink.events[:3]
    assert heard == Heard(1.0, "Okay, start back stretch please")
    assert understood == Understood(1.0, "start", {})
    assert isinstance(say, Say) and say.t == 1.0 and say.kind is SayKind.SETUP


def test_what_is_no_command_is_heard_but_not_understood(short: Routine, lang: IntentSet) -> None:
    sink = Sink()
    session = Session(Dialogue(short, lang), lang, [sink])
    assert not session.hear("make me a sandwich", 2.0, speech_end_s=1.7)
    assert sink.events == [Heard(2.0, "make me a sandwich", 1.7)]
    assert session.dialogue.state is State.IDLE


def test_the_answer_waits_for_answer_at(short: Routine, lang: IntentSet) -> None:
    sink = Sink()
    session = Session(Dialogue(short, lang), lang, [sink])
    session.hear("start", 1.0, speech_end_s=0.6, answer_at=1.08)
    assert sink.of(Say) == []  # not yet: the answer is due at 1.08
    session.run_until(1.08)
    understood = sink.of(Understood)[0]
    assert (understood.t, understood.speech_end_s) == (1.0, 0.6)  # type: ignore[union-attr]
    assert sink.of(Say)[0].t == 1.08


def test_on_a_live_clock_sinks_hear_of_events_when_they_happen_and_the_player_at_once(
    short: Routine, lang: IntentSet
) -> None:
    now = [0.0]
    sink, player = Sink(now), Sink(now)
    session = Session(Dialogue(short, lang), lang, [sink], schedulers=[player])
    session.clock = lambda: now[0]
    session.hear("start", 0.0)
    session.run_until(60.0)  # decided 60 s ahead (a lookahead), but the clock reads 0
    assert len(player.of(Say)) > 3
    assert all(e.t <= 0.0 for e in sink.events)
    for now[0] in (20.0, 40.0, 60.0):
        session.flush(60.0)
        assert all(e.t <= now[0] for e in sink.events)
    assert sink.events == [e for e in player.events if e.t <= 60.0]  # the same, in time order
    assert all(at is not None and at >= e.t for e, at in zip(sink.events, sink.at, strict=True))


def test_a_cut_drops_what_was_decided_to_follow(short: Routine, lang: IntentSet) -> None:
    now = [0.0]
    sink, player = Sink(now), Sink(now)
    session = Session(Dialogue(short, lang), lang, [sink], schedulers=[player])
    session.clock = lambda: now[0]
    session.hear("start", 0.0)
    session.run_until(60.0)  # the next cues decided well ahead
    now[0] = 40.0
    session.hear("pause", 40.0)
    now[0] = 100.0
    session.flush(100.0)
    cut = sink.of(Cut)[0]
    assert cut.t == 40.0
    said = sink.of(Say)
    assert [s for s in said if s.t > 40.0] == []  # nothing decided for after 40 s is said
    assert said[-1].text.startswith("Paused") and said[-1].t == 40.0
    assert [s.state for s in sink.of(StateChange) if s.t >= 40.0] == [State.PAUSED]  # type: ignore[union-attr]
    assert any(s.t > 40.0 for s in player.of(Say))  # the player had them: its cut silences them


def test_the_speech_track_holds_what_is_heard_with_cuts(short: Routine, lang: IntentSet) -> None:
    session = Session(Dialogue(short, lang), lang, [])
    session.hear("start", 0.0)
    session.run_until(40.0)
    session.hear("pause", 40.0)
    spans = session.track.spans()
    assert all(a.end <= b.start + 1e-9 for a, b in zip(spans, spans[1:], strict=False))
    under_way = [s for s in spans if s.start < 40.0 < s.item.end_s]
    assert under_way and under_way[0].end == 40.0  # cut where the user said pause
    assert spans[-1].item.text.startswith("Paused")
    session.run_until(40.0 + FORGET_S + 10.0)
    assert len(session.track) <= 1  # speech long over is forgotten


def test_the_likely_next_lines_are_prefetched_on_each_state_change(short: Routine, lang: IntentSet) -> None:
    asked: list[list[str]] = []
    session = Session(Dialogue(short, lang), lang, [], prefetch=asked.append)
    session.hear("start", 0.0)
    session.run_until(10.0)
    session.hear("pause", 10.0)
    assert asked and asked[-1] == session.dialogue.likely_texts(10.0)
    assert any(text.startswith("Resuming") for text in asked[-1])


def test_end_keeps_the_place_and_close_flushes_everything(short: Routine, lang: IntentSet) -> None:
    sink, player = Sink(), Sink()
    session = Session(Dialogue(short, lang), lang, [sink], schedulers=[player])
    session.hear("start", 0.0)
    session.run_until(40.0)
    where = session.dialogue.position()
    session.end(40.0)
    assert session.dialogue.state is State.PAUSED and session.dialogue.position() == where
    session.close()
    assert sink.closed and player.closed
    assert sink.of(StateChange)[-1].state is State.PAUSED  # type: ignore[union-attr]
    assert session.next_release_at() is None
    assert [e.t for e in sink.events] == sorted(e.t for e in sink.events)


def test_a_whole_session_in_virtual_time(short: Routine, lang: IntentSet) -> None:
    sink = Sink()
    session = Session(Dialogue(short, lang), lang, [sink])
    session.hear("start", 0.0)
    session.run_until(math.inf)
    states = sink.of(StateChange)
    assert states[-1].state is State.FINISHED and states[-1].done == 6  # type: ignore[union-attr]
    assert len([s for s in sink.of(Say) if s.kind is SayKind.EXHALE]) == 6  # type: ignore[union-attr]
