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
from collections.abc import Callable, Iterable, Sequence

from assistant.coach.dialogue import Dialogue, Position
from assistant.coach.events import Action, Cut, Event, Heard, Say, Sink, StateChange, Understood
from assistant.coach.intents import IntentSet, Reply
from assistant.coach.track import SpeechTrack

log = logging.getLogger(__name__)

FORGET_S = 60.0  # speech that ended this long ago no longer matters to anyone (the gate)


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
        # What the coach says when, cuts applied, from the moment it is decided: the
        # listener's self-hearing gate reads it on its own thread.
        self.track: SpeechTrack[Say] = SpeechTrack()

    def _queue(self, event: Event) -> None:
        for scheduler in self.schedulers:
            scheduler.write(event)
        heapq.heappush(self._pending, (event.t, next(self._order), event))

    def _queue_actions(self, actions: Iterable[Action]) -> None:
        changed = None
        for action in actions:
            match action:
                case Say():
                    self.track.add(action.t, action.end_s, action)
                case Cut(t=t):
                    self._drop_speech_from(t)
                case StateChange(t=t):
                    changed = t
            self._queue(action)
        if changed is not None:  # a new rep, or paused: what may be asked for next changes
            self.prefetch(self.dialogue.likely_texts(changed))

    def _drop_speech_from(self, t: float) -> None:
        """A cut silences what plays at `t` and drops what was decided to follow it
        (with a lookahead, the next step may have begun in the dialogue but not yet sounded)."""
        self.track.cut(t)
        kept = [p for p in self._pending if not (isinstance(p[2], Say | StateChange) and p[0] >= t)]
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
        self._queue(Heard(t, text, speech_end_s))
        intent = self.intents.match(text)
        if intent is None:
            log.info("not a command: %r", text)
            self.flush(t)
            return False
        self._queue(Understood(t, intent.name, dict(intent.slots), speech_end_s))
        self._queue_actions(self.dialogue.hear(intent, t if answer_at is None else max(t, answer_at)))
        self.flush(t)
        return True

    def run_until(self, t: float) -> None:
        """Carry the dialogue through every step due by `t`, then release events up to `t`."""
        while (wake := self.dialogue.next_wakeup()) is not None and wake <= t:
            self._queue_actions(self.dialogue.advance(wake))
        self.flush(t)

    def next_release_at(self) -> float | None:
        """When the next event already decided is due at the sinks."""
        return self._pending[0][0] if self._pending else None

    def flush(self, t: float) -> None:
        if self.clock is not None and t != math.inf:
            t = min(t, self.clock())
        while self._pending and self._pending[0][0] <= t:
            event = heapq.heappop(self._pending)[2]
            for sink in self.sinks:
                sink.write(event)
        if t != math.inf:
            self.track.forget_before(t - FORGET_S)

    def end(self, t: float) -> None:
        """The program is ending (end of input, Ctrl-C, SIGTERM): a session under way
        falls silent and keeps its place, for the next run to offer."""
        self.run_until(t)
        self._queue_actions(self.dialogue.interrupt(t))

    def offer(self, saved: Position, t: float) -> None:
        """After a restart: the coach offers to carry on from `saved`."""
        self._queue_actions(self.dialogue.offer(saved, t))

    def tell(self, key: Reply, t: float) -> None:
        """The coach says the fixed response `key` at `t` (a notice from outside the dialogue)."""
        self._queue_actions(self.dialogue.tell(key, t))

    def close(self) -> None:
        self.flush(math.inf)
        for sink in self.sinks:
            sink.close()
        for scheduler in self.schedulers:
            scheduler.close()
