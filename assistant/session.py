"""Runs a dialogue against a clock: the virtual one for scripts, a live one for real time.

The `Session` turns heard text into intents, feeds the dialogue, and hands
every event to the sinks in time order: an event is released once the clock
has reached its time, so a reply queued behind a cue is reported when it is
spoken, not when it was decided. A `scheduler` (the audio player) instead gets
each event as soon as it is decided, so it can place a cue on its exact sample.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from assistant.capture import Chunk
from assistant.dialogue import Action, Cut, Dialogue, Position, State, StateChange
from assistant.intents import IntentSet
from assistant.listen import Listener
from assistant.script import Utterance
from assistant.timeline import Event, Sink, record

log = logging.getLogger(__name__)


class Session:
    """A dialogue, its intents and its sinks, driven by whoever owns the clock."""

    def __init__(
        self,
        dialogue: Dialogue,
        intents: IntentSet,
        sinks: Sequence[Sink],
        schedulers: Sequence[Sink] = (),
        prefetch: Callable[[list[str]], None] = lambda texts: None,
    ) -> None:
        self.dialogue = dialogue
        self.intents = intents
        self.sinks = list(sinks)
        self.schedulers = list(schedulers)
        self.prefetch = prefetch
        # In real time: the clock, so that events reach the sinks (timeline, transcript) only
        # once they happen, though the dialogue decides a lookahead ahead for the player.
        self.clock: Callable[[], float] | None = None
        self._pending: list[tuple[float, int, Event]] = []
        self._order = itertools.count()

    def _queue(self, event: Event) -> None:
        for scheduler in self.schedulers:
            scheduler.write(event)
        heapq.heappush(self._pending, (event["t"], next(self._order), event))

    def _queue_actions(self, actions: Iterable[Action]) -> None:
        changed = None
        for action in actions:
            if isinstance(action, Cut):
                self._drop_speech_from(action.t)
            elif isinstance(action, StateChange):
                changed = action.t
            self._queue(record(action))
        if changed is not None:  # a new rep, or paused: what may be asked for next changes
            self.prefetch(self.dialogue.likely_texts(changed))

    def _drop_speech_from(self, t: float) -> None:
        """A cut silences what plays at `t` and drops what was decided to follow it
        (with a lookahead, the next step may have begun in the dialogue but not yet sounded)."""
        kept = [p for p in self._pending if not (p[2]["event"] in ("say", "state") and p[0] >= t)]
        if len(kept) != len(self._pending):
            self._pending = kept
            heapq.heapify(self._pending)

    def hear(
        self, text: str, t: float, speech_end_s: float | None = None, answer_at: float | None = None
    ) -> bool:
        """The user said `text`, understood at `t` (speech ended at `speech_end_s`, for
        a recogniser); the coach answers at `answer_at` (default `t`). False when it is no
        command."""
        self.run_until(t)
        times = {} if speech_end_s is None else {"speech_end": speech_end_s, "fired": t}
        self._queue({"t": t, "event": "heard", "text": text, **times})
        intent = self.intents.match(text)
        if intent is None:
            log.info("not a command: %r", text)
            self.flush(t)
            return False
        self._queue({"t": t, "event": "intent", "name": intent.name, "slots": dict(intent.slots), **times})
        self._queue_actions(self.dialogue.hear(intent, t if answer_at is None else max(t, answer_at)))
        self.flush(t)
        return True

    def run_until(self, t: float) -> None:
        """Carry the dialogue through every step due by `t`, then release events up to `t`."""
        while (wake := self.dialogue.next_wakeup()) is not None and wake <= t:
            self._queue_actions(self.dialogue.advance(wake))
        self.flush(t)

    def next_event_at(self) -> float | None:
        times = [w for w in (self.dialogue.next_wakeup(),) if w is not None]
        if self._pending:
            times.append(self._pending[0][0])
        return min(times) if times else None

    def flush(self, t: float) -> None:
        if self.clock is not None and t != math.inf:
            t = min(t, self.clock())
        while self._pending and self._pending[0][0] <= t:
            event = heapq.heappop(self._pending)[2]
            for sink in self.sinks:
                sink.write(event)

    def end(self, t: float) -> None:
        """The program is ending (end of input, Ctrl-C, SIGTERM): a session under way
        falls silent and keeps its place, for the next run to offer."""
        self.run_until(t)
        self._queue_actions(self.dialogue.interrupt(t))

    def offer(self, saved: Position, t: float) -> None:
        """After a restart: the coach offers to carry on from `saved`."""
        self._queue_actions(self.dialogue.offer(saved, t))

    def close(self) -> None:
        self.flush(math.inf)
        for sink in self.sinks:
            sink.close()
        for scheduler in self.schedulers:
            scheduler.close()


def run_audio(session: Session, listener: Listener, chunks: Iterable[Chunk]) -> None:
    """Recorded audio as the microphone, on the virtual clock its samples define; then
    the session runs to its end."""
    end = 0.0
    for chunk in chunks:
        for command in listener.feed(chunk):
            session.hear(command.text, command.fired_s, command.speech_end_s)
        session.run_until(chunk.end_s)
        end = chunk.end_s
    for command in listener.flush(end):
        session.hear(command.text, command.fired_s, command.speech_end_s)
    session.run_until(math.inf)
    session.close()


def run_script(session: Session, script: Sequence[Utterance]) -> None:
    """Play a script on the virtual clock, then run the session to its end."""
    for said in script:
        session.hear(said.text, said.t)
    session.run_until(math.inf)
    if session.dialogue.state is State.PAUSED:
        log.info("the script ended while paused")
    session.close()


@dataclass(frozen=True)
class Heard:
    """Something the user said; `t` is when (session time), or None for "now"; a
    recogniser also gives where the speech ended."""

    text: str
    t: float | None = None
    speech_end_s: float | None = None


LOOKAHEAD_S = 0.3  # cues are decided this far ahead, so a player gets them before their sample
ANSWER_MARGIN_S = 0.08  # a reply starts this long after the command is handled: in the
# player's hands before its first sample (more than one output block), so placed exactly
POLL_S = 0.5  # longest wait between checks of the device


def run_live(
    session: Session,
    inputs: queue.Queue[Heard | None],
    clock: Callable[[], float],
    script: Sequence[Utterance] = (),
    on_unknown: Callable[[str], None] = lambda text: None,
    watchdog: Callable[[], bool] = lambda: True,
) -> None:
    """Run in real time on `clock` (session seconds): typed or heard lines from `inputs`
    (None ends the input), and `script` lines at their times.

    Ends at the end of input, or, with a script and no other input, once the script
    is played and the session is no longer running. A session still under way at
    the end keeps its place (see `Session.end`).
    """
    pending = list(script)
    session.clock = clock
    try:
        while True:
            now = clock()
            session.run_until(now + LOOKAHEAD_S)
            while pending and pending[0].t <= now + LOOKAHEAD_S:  # known ahead: decided ahead
                said = pending.pop(0)
                session.hear(said.text, said.t)
            if script and not pending and session.dialogue.state is not State.RUNNING:
                break
            wake = session.next_event_at()
            if pending:
                wake = min(wake if wake is not None else math.inf, pending[0].t)
            # Wake a lookahead before the next event, so its audio is placed in time.
            timeout = POLL_S if wake is None else min(max(wake - LOOKAHEAD_S - now, 0.0), POLL_S)
            try:
                item = inputs.get(timeout=timeout)
            except queue.Empty:
                watchdog()
                continue
            if item is None:
                break
            now = clock()
            said_at = now if item.t is None else item.t
            answer_at = now + ANSWER_MARGIN_S
            if item.text.strip() and not session.hear(item.text, said_at, item.speech_end_s, answer_at):
                on_unknown(item.text)
    finally:
        session.end(clock())
        session.close()
