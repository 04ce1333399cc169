"""Runs a dialogue against a clock: the virtual one for scripts, the wall clock for live input.

The `Session` turns heard text into intents, feeds the dialogue, and hands
every event to the sinks in time order: an event is released once the clock
has reached its time, so a reply queued behind a cue is reported when it is
spoken, not when it was decided.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import time
from collections.abc import Callable, Iterable, Sequence

from assistant.dialogue import Action, Cut, Dialogue, State
from assistant.intents import IntentSet
from assistant.script import Utterance
from assistant.timeline import Event, Sink, record

log = logging.getLogger(__name__)


class Session:
    """A dialogue, its intents and its sinks, driven by whoever owns the clock."""

    def __init__(self, dialogue: Dialogue, intents: IntentSet, sinks: Sequence[Sink]) -> None:
        self.dialogue = dialogue
        self.intents = intents
        self.sinks = list(sinks)
        self._pending: list[tuple[float, int, Event]] = []
        self._order = itertools.count()

    def _queue(self, event: Event) -> None:
        heapq.heappush(self._pending, (event["t"], next(self._order), event))

    def _queue_actions(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, Cut):
                self._drop_speech_from(action.t)
            self._queue(record(action))

    def _drop_speech_from(self, t: float) -> None:
        """A cut silences what plays at `t` and what was queued to follow it."""
        kept = [p for p in self._pending if not (p[2]["event"] == "say" and p[0] >= t)]
        if len(kept) != len(self._pending):
            self._pending = kept
            heapq.heapify(self._pending)

    def hear(self, text: str, t: float) -> bool:
        """The user said `text` at `t`; False when it is no command."""
        self.run_until(t)
        self._queue({"t": t, "event": "heard", "text": text})
        intent = self.intents.match(text)
        if intent is None:
            log.info("not a command: %r", text)
            self.flush(t)
            return False
        self._queue({"t": t, "event": "intent", "name": intent.name, "slots": dict(intent.slots)})
        self._queue_actions(self.dialogue.hear(intent, t))
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
        while self._pending and self._pending[0][0] <= t:
            event = heapq.heappop(self._pending)[2]
            for sink in self.sinks:
                sink.write(event)

    def end(self, t: float) -> None:
        """Stop a session still under way (end of input, Ctrl-C), so it ends with its summary."""
        if self.dialogue.state in (State.RUNNING, State.PAUSED):
            stop = self.intents.match("stop")
            if stop is not None:
                self.run_until(t)
                self._queue_actions(self.dialogue.hear(stop, t))

    def close(self) -> None:
        self.flush(math.inf)
        for sink in self.sinks:
            sink.close()


def run_script(session: Session, script: Sequence[Utterance]) -> None:
    """Play a script on the virtual clock, then run the session to its end."""
    for said in script:
        session.hear(said.text, said.t)
    session.run_until(math.inf)
    if session.dialogue.state is State.PAUSED:
        log.info("the script ended while paused")
    session.close()


def run_live(
    session: Session,
    lines: queue.Queue[str | None],
    clock: Callable[[], float] = time.monotonic,
    on_unknown: Callable[[str], None] = lambda text: None,
) -> None:
    """Take typed lines as they come, on the wall clock, until end of input (None)."""
    start = clock()
    try:
        while True:
            now = clock() - start
            session.run_until(now)
            wake = session.next_event_at()
            try:
                line = lines.get(timeout=None if wake is None else max(wake - now, 0.0))
            except queue.Empty:
                continue
            if line is None:
                break
            if line.strip() and not session.hear(line, clock() - start):
                on_unknown(line)
    finally:
        session.end(clock() - start)
        session.close()
