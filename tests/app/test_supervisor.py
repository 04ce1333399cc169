"""The live loop (`run_live`) on a virtual clock: what it decides when, without real time.

`Said` plays the input queue: the user's lines at set times, and `get(timeout)` waits on
the virtual clock as `queue.Queue.get` waits on the real one. Sinks note the clock when
each event reaches them; the scheduler is where the player would be.
"""

from __future__ import annotations

import io
import math
import queue
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.app import supervisor
from assistant.app.offline import Utterance
from assistant.app.progress import MilestoneProgress
from assistant.app.supervisor import ANSWER_MARGIN_S, GREETING, LOOKAHEAD_S, POLL_S, run_live
from assistant.app.wiring import prepare_in_background
from assistant.coach.dialogue import Dialogue, in_order_of_use
from assistant.coach.events import Cut, Event, Heard, Say, SayKind, State, StateChange, Understood
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Routine
from assistant.coach.session import Session
from assistant.speak import voices
from assistant.speak.cache import CueCache
from assistant.speak.tts import SpeechSettings, Synthesizer
from tests.kit.spy import Spy


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


Line = supervisor.Heard | None | type[BaseException]


class Said:
    """The input queue on the virtual clock: each line at its time (None: end of input;
    an exception class: raised there, as Ctrl-C raises KeyboardInterrupt in the main thread)."""

    def __init__(self, clock: Clock, lines: list[tuple[float, Line]]) -> None:
        self.clock = clock
        self.lines = lines
        self.waits: list[float] = []

    def get(self, block: bool = True, timeout: float | None = None) -> supervisor.Heard | None:
        assert timeout is not None and 0.0 <= timeout <= POLL_S
        assert self.clock.t < 3600, "the loop never ended"
        self.waits.append(timeout)
        assert self.waits[-100:].count(0.0) < 100, "the loop spins: it waits 0 s, again and again"
        if self.lines and self.lines[0][0] <= self.clock.t + timeout:
            at, line = self.lines.pop(0)
            self.clock.t = max(self.clock.t, at)
            if isinstance(line, type):
                raise line
            return line
        self.clock.t += timeout
        raise queue.Empty


class Seen:
    """A sink noting the virtual time at which each event reached it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.events: list[tuple[float, Event]] = []
        self.closed = False

    def write(self, event: Event) -> None:
        self.events.append((self.clock.t, event))

    def close(self) -> None:
        self.closed = True

    def of(self, kind: type) -> list[tuple[float, Event]]:
        return [(at, e) for at, e in self.events if isinstance(e, kind)]


class Live:
    """A session wired as the supervisor wires it, on a virtual clock."""

    def __init__(self, routine: Routine, lang: IntentSet) -> None:
        self.clock = Clock()
        self.dialogue = Dialogue(routine, lang)
        self.sink, self.player = Seen(self.clock), Seen(self.clock)
        self.session = Session(self.dialogue, lang, [self.sink], schedulers=[self.player])
        self.unknown: list[str] = []
        self.watchdog = 0

    def run(self, lines: list[tuple[float, Line]], script: list[Utterance] | None = None) -> Said:
        said = Said(self.clock, lines)

        def watchdog() -> bool:
            self.watchdog += 1
            return True

        run_live(self.session, said, self.clock, script or [], self.unknown.append, watchdog)
        return said

    def says(self) -> list[Say]:
        return [e for _, e in self.sink.of(Say)]  # type: ignore[misc]


@pytest.fixture
def short(knee_hug: Routine) -> Routine:
    return replace(knee_hug, reps_per_side=3, sets=1)


def test_cues_reach_the_player_a_lookahead_ahead_and_the_sinks_when_they_happen(
    short: Routine, lang: IntentSet
) -> None:
    live = Live(short, lang)
    live.run([(0.0, supervisor.Heard("start back stretch")), (1000.0, None)])
    said = live.player.of(Say)
    assert len(said) > 15 and live.dialogue.state is State.FINISHED
    first = said[0][1]
    assert first.t == ANSWER_MARGIN_S  # type: ignore[union-attr]
    for decided, say in said[1:]:
        assert say.t - decided >= LOOKAHEAD_S - 1e-9, say  # type: ignore[union-attr]
    assert [e for _, e in said] == live.says()  # the same cues, in the same order
    for reached, event in live.sink.events:
        assert event.t <= reached <= event.t + 1e-9, event  # never early, never late


def test_the_loop_sleeps_between_events(short: Routine, lang: IntentSet) -> None:
    """Between two events the loop waits, in one wait or a few of at most POLL_S, and never
    spins (it did: a timeout of 0 for the lookahead before every event, 0.3 s of a core)."""
    live = Live(short, lang)
    said = live.run([(0.0, supervisor.Heard("start back stretch")), (1000.0, None)])
    end = next(e.t for _, e in live.sink.of(StateChange) if e.state is State.FINISHED)  # type: ignore[union-attr]
    waits = len(said.waits)
    events = len(live.sink.events)
    assert waits <= events + math.ceil(1000.0 / POLL_S) + 5
    assert 0.0 not in said.waits
    assert end < 1000.0 and live.watchdog >= math.ceil((1000.0 - end) / POLL_S)  # checked while idle


def test_a_reply_starts_an_answer_margin_after_the_command(short: Routine, lang: IntentSet) -> None:
    live = Live(short, lang)
    live.run([(0.0, supervisor.Heard("start")), (10.3, supervisor.Heard("pause")), (20.0, None)])
    paused = next(s for s in live.says() if s.text.startswith("Paused"))
    assert paused.t == pytest.approx(10.3 + ANSWER_MARGIN_S)
    (cut,) = [e for _, e in live.sink.of(Cut)]
    assert cut.t == pytest.approx(10.3 + ANSWER_MARGIN_S)
    heard = [e for _, e in live.sink.of(Heard)]
    assert [(h.t, h.text) for h in heard] == [(0.0, "start"), (10.3, "pause")]


def test_a_recognised_command_keeps_when_it_was_heard(short: Routine, lang: IntentSet) -> None:
    """A recogniser gives when it had the command (`t`) and where the speech ended; the
    loop handles it later (here 0.2 s): the events keep those times, the answer is now."""
    live = Live(short, lang)
    live.run([(0.0, supervisor.Heard("start")), (12.0, supervisor.Heard("pause", 11.8, 11.5)), (20.0, None)])
    (_, understood), *_ = [x for x in live.sink.of(Understood) if x[1].name == "pause"]  # type: ignore[union-attr]
    assert (understood.t, understood.speech_end_s) == (11.8, 11.5)  # type: ignore[union-attr]
    paused = next(s for s in live.says() if s.text.startswith("Paused"))
    assert paused.t == pytest.approx(12.0 + ANSWER_MARGIN_S)


def test_script_lines_are_heard_at_their_times_and_the_run_ends_with_the_session(
    short: Routine, lang: IntentSet
) -> None:
    live = Live(short, lang)
    script = [Utterance(0.0, "start"), Utterance(9.5, "hold on"), Utterance(14.0, "keep going")]
    live.run([], script)  # no other input: the script alone
    heard = [(e.t, e.text) for _, e in live.sink.of(Heard)]  # type: ignore[union-attr]
    assert heard == [(0.0, "start"), (9.5, "hold on"), (14.0, "keep going")]
    decided = [at for at, e in live.player.of(Cut)]
    assert decided and decided[0] <= 9.5 - LOOKAHEAD_S + 1e-9  # known ahead: decided ahead
    assert live.dialogue.state is State.FINISHED
    end = next(e.t for _, e in live.sink.of(StateChange) if e.state is State.FINISHED)  # type: ignore[union-attr]
    assert live.clock.t == pytest.approx(end, abs=POLL_S)  # ended with the session, not later
    assert live.sink.closed and live.player.closed


def test_the_end_of_input_keeps_the_place(short: Routine, lang: IntentSet) -> None:
    live = Live(short, lang)
    live.run([(0.0, supervisor.Heard("start")), (15.0, None)])
    assert live.clock.t == 15.0
    assert live.dialogue.state is State.PAUSED  # the place kept, for the next run to offer
    last = [e for _, e in live.sink.of(StateChange)][-1]
    assert last.state is State.PAUSED and last.t == 15.0  # type: ignore[union-attr]
    assert all(s.t < 15.0 for s in live.says())  # it fell silent
    assert live.sink.closed


def test_an_interrupt_keeps_the_place(short: Routine, lang: IntentSet) -> None:
    live = Live(short, lang)
    with pytest.raises(KeyboardInterrupt):
        live.run([(0.0, supervisor.Heard("start")), (15.0, KeyboardInterrupt)])
    before = [e for _, e in live.sink.of(StateChange)][-2]
    assert live.dialogue.state is State.PAUSED and live.sink.closed
    where = live.dialogue.position()
    assert (where.set_no, where.side, where.rep) == (before.set_no, before.side, before.rep)  # type: ignore[union-attr]
    assert live.player.of(Cut)[-1][1].t == 15.0  # silent at once


def test_what_is_no_command_is_reported_and_blank_lines_ignored(short: Routine, lang: IntentSet) -> None:
    live = Live(short, lang)
    live.run([(1.0, supervisor.Heard("make me a sandwich")), (2.0, supervisor.Heard("   ")), (3.0, None)])
    assert live.unknown == ["make me a sandwich"]
    assert [e.text for _, e in live.sink.of(Heard)] == ["make me a sandwich"]  # type: ignore[union-attr]
    assert live.dialogue.state is State.IDLE


def test_cues_are_said_in_order_with_their_kinds(short: Routine, lang: IntentSet) -> None:
    live = Live(short, lang)
    live.run([(0.0, supervisor.Heard("start")), (1000.0, None)])
    kinds = [s.kind for s in live.says()]
    assert kinds.count(SayKind.EXHALE) == 6 and kinds[-1] is SayKind.FINISHED


class Deciding:
    """A scheduler (where the player is) noting each say when it is decided, with how many
    cues the cache still has to prepare at that moment."""

    def __init__(self, cache: CueCache) -> None:
        self.cache = cache
        self.says: list[tuple[Say, int]] = []

    def write(self, event: Event) -> None:
        if isinstance(event, Say):
            self.says.append((event, self.cache.pending()))

    def close(self) -> None:
        pass


def test_a_cold_start_greets_and_answers_at_once_while_the_cues_are_prepared(
    tmp_path: Path, short: Routine, lang: IntentSet
) -> None:
    """A first run: the greeting and the answer to a command heard at once are synthesised
    ahead of the batch; the batch goes on behind them and stops with the session."""
    spy = Spy(Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings()))
    cache = CueCache(spy, tmp_path)
    clock = Clock()
    sink, deciding = Seen(clock), Deciding(cache)
    session = Session(
        Dialogue(short, lang, speech_s=cache.duration_s), lang, [sink], [deciding], cache.prefetch
    )
    shown = io.StringIO()
    texts = [lang.say(GREETING), *in_order_of_use(short, lang, "detailed")]
    todo = prepare_in_background(cache, texts, MilestoneProgress(shown))
    assert todo == len(texts) - 1  # the greeting is one of the replies too
    supervisor.begin(session, None, listening=True, say=print, tell=lambda t: None, clock=clock)
    # "help" once the greeting has been said (the virtual clock runs as fast as the CPU)
    run_live(session, Said(clock, [(4.0, supervisor.Heard("help")), (4.5, None)]), clock)
    cache.close()

    (greeting, left_then), (reply, left_later) = deciding.says
    assert (greeting.t, greeting.text) == (ANSWER_MARGIN_S, lang.say(GREETING)) and greeting.end_s < 4.0
    assert left_then > 0 and left_later > 0  # both said before the batch was done
    assert reply.text == lang.say("help_idle") and reply.t == pytest.approx(4.0 + ANSWER_MARGIN_S)
    made_by = {text: thread for event, text, thread in spy.log if event == "start"}
    assert made_by[reply.text] == "MainThread"  # on demand, not left to the worker's turn
    assert texts.index(reply.text) > 2  # (the worker would have come to it late)
    assert max(Counter(spy.made()).values()) == 1  # nothing synthesised twice
    assert not any(t.name == "cues" and t.is_alive() for t in threading.enumerate())
    assert not list(cache.dir.glob(".*"))  # no temp file left
    lines = shown.getvalue().splitlines()
    assert lines[0] == f"preparing {todo} cues in voice en_US-joe-medium: started, in the background"
    assert len(lines) <= 5  # milestones, not a line per cue


def test_the_microphone_offset_is_the_least_lag_and_follows_drift() -> None:
    from assistant.app.supervisor import OFFSET_WINDOW_S, MicOffset

    offset = MicOffset()
    chunk_s = 0.03
    # A backlog first: the chunks captured before the listening thread ran arrive together.
    lags = [0.5 - i * chunk_s for i in range(15)]
    # then on time, 5 to 35 ms after their last sample, and late behind a decoding now and then
    lags += [0.05 + 0.005 + 0.03 * ((i * 7) % 11) / 10 + (0.4 if i % 50 == 7 else 0.0) for i in range(400)]
    got = [offset.update(lag, (i + 1) * chunk_s) for i, lag in enumerate(lags)]
    assert got[0] == 0.5 and got[14] == pytest.approx(0.5 - 14 * chunk_s)
    assert got[-1] == pytest.approx(0.055)  # the least delivery delay, not a late chunk's
    # the microphone's clock runs slow against the session's: 1 ms of lag more per second
    n = round(3 * OFFSET_WINDOW_S / chunk_s)
    t0 = 401 * chunk_s
    got = [offset.update(0.055 + 0.001 * i * chunk_s, t0 + i * chunk_s) for i in range(n)]
    assert got[-1] == pytest.approx(0.055 + 0.001 * (n - 1) * chunk_s - 0.001 * OFFSET_WINDOW_S, abs=0.002)


def test_without_speexdsp_the_live_coach_still_runs_and_says_why_it_cannot_be_interrupted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No libspeexdsp on the machine: a warning naming the package, and no canceller (the
    coach hears commands between its cues, as before); not a refusal to start."""
    from assistant.app import wiring
    from assistant.errors import DeviceError

    def missing(engine: str = "speexdsp") -> object:
        raise DeviceError("speexdsp (libspeexdsp.so.1) is not installed; install it with apt")

    monkeypatch.setattr(wiring, "open_canceller", missing)
    with caplog.at_level("WARNING"):
        assert wiring.open_live_echo() is None
    assert "libspeexdsp" in caplog.text and "between the coach's cues" in caplog.text
