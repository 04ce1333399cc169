"""One speech track: what the coach says when, with cuts applied.

The dialogue never lets utterances overlap, and a cut at `t` (pause, stop, skip)
ends the utterance under way at `t` and drops everything decided to follow it.
Four parts of the program need that picture and all of them use this class:

    the session      the says it has decided, so a cut drops the ones not yet released
    the listener     is the coach speaking between these times? (the self-hearing gate)
    the player       clips placed on the output stream, in frames
    the renderer     clips placed in a WAV file, in samples

Positions are numbers in whatever unit the owner uses (seconds, frames, samples).
Every operation is linear in what it touches, not in the length of the session:
spans are kept in order of start, and old ones are forgotten from the front.

Threads: the session adds and cuts on the main thread while the listener asks on its
own, and the player's audio callback reads while the main thread schedules; so every
method holds the track's lock, for microseconds. Nothing here blocks or does I/O.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclass
class Span(Generic[P]):
    """One utterance (or clip) from `start` to `end`, carrying `item`."""

    start: float
    end: float
    item: P


class SpeechTrack(Generic[P]):
    """Utterances on one time line, ordered by start; thread-safe."""

    def __init__(self) -> None:
        self._spans: list[Span[P]] = []
        self._starts: list[float] = []  # the spans' starts, for bisect
        self._first = 0  # spans before this index are forgotten
        # True once a span began before an earlier one ended (a late clip played when it
        # arrived): then ends are not in order, and searches look at every live span.
        self._overlaps = False
        self.lock = threading.Lock()

    # -- writing ---------------------------------------------------------------

    def add(self, start: float, end: float, item: P) -> Span[P]:
        """Place `item` from `start` to `end`."""
        span = Span(start, max(start, end), item)
        with self.lock:
            if self._live() and start < self._spans[-1].end:
                self._overlaps = True
            if not self._starts or self._starts[-1] <= start:
                self._spans.append(span)
                self._starts.append(start)
            else:  # placed before the last one (rare): keep the order
                i = bisect.bisect_right(self._starts, start, lo=self._first)
                self._spans.insert(i, span)
                self._starts.insert(i, start)
                self._overlaps = True
        return span

    def cut(self, at: float) -> list[Span[P]]:
        """Silence from `at` on: spans starting at or after `at` are dropped, and a span
        under way at `at` now ends there. Returns the dropped spans, latest first."""
        with self.lock:
            dropped: list[Span[P]] = []
            while self._live() and self._starts[-1] >= at:
                self._starts.pop()
                dropped.append(self._spans.pop())
            for span in self._running(at):
                span.end = at
            return dropped

    def forget_before(self, t: float) -> None:
        """Forget spans that ended before `t` (they can no longer matter)."""
        with self.lock:
            # From the front only: with overlaps a later span may have ended first and
            # stays a little longer, which costs nothing.
            while self._live() and self._spans[self._first].end < t:
                self._first += 1
            if len(self._spans) - self._first <= 1:
                self._overlaps = False  # one span or none: in order again
            if self._first > 64 and self._first * 2 > len(self._spans):
                del self._spans[: self._first]
                del self._starts[: self._first]
                self._first = 0

    # -- reading ---------------------------------------------------------------

    def overlapping(self, start: float, end: float) -> list[Span[P]]:
        """Spans that sound somewhere in [start, end), in order of start."""
        with self.lock:
            hi = bisect.bisect_left(self._starts, end, lo=self._first)
            out: list[Span[P]] = []
            for i in range(hi - 1, self._first - 1, -1):
                span = self._spans[i]
                if span.end > start:
                    out.append(span)
                elif not self._overlaps:
                    break  # ends are in order: every earlier span ended earlier still
            out.reverse()
            return out

    def starting_from(self, t: float) -> list[Span[P]]:
        """Spans that start at `t` or later."""
        with self.lock:
            i = bisect.bisect_left(self._starts, t, lo=self._first)
            return self._spans[i:]

    def spans(self) -> list[Span[P]]:
        """Every span not forgotten, in order of start."""
        with self.lock:
            return self._spans[self._first :]

    def end(self) -> float:
        """Where the last span ends (0 when there is none)."""
        with self.lock:
            if not self._live():
                return 0.0
            if not self._overlaps:
                return self._spans[-1].end
            return max(s.end for s in self._spans[self._first :])

    def __len__(self) -> int:
        with self.lock:
            return len(self._spans) - self._first

    def __iter__(self) -> Iterator[Span[P]]:
        return iter(self.spans())

    # -- under the lock ----------------------------------------------------------

    def _live(self) -> bool:
        return len(self._spans) > self._first

    def _running(self, at: float) -> list[Span[P]]:
        """Live spans that end after `at` (the ones a cut at `at` shortens)."""
        out = []
        for i in range(len(self._spans) - 1, self._first - 1, -1):
            span = self._spans[i]
            if span.end > at:
                out.append(span)
            elif not self._overlaps:
                break
        return out
