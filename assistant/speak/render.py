"""Offline rendering: a session's speech written into one WAV, each cue at its exact sample.

`OutputTrack` is the coach's output in memory and `WavRenderer` writes it to a file; both
are timeline sinks: a `say` event at session time t starts its clip at sample
round(t * rate); a `cut` ends the clip playing at that sample; a `volume` event applies
to the cues after it. Between cues: silence. The file is
written as the session goes, a block at a time (see `WavWriter`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from assistant.coach.events import Cut, Event, Say, Volume
from assistant.coach.track import SpeechTrack
from assistant.pcm import Samples, gain, resample
from assistant.speak.cache import CueCache
from assistant.speak.wav import WavWriter

log = logging.getLogger(__name__)

TAIL_S = 0.5  # silence after the last word
BLOCK_SAMPLES = 1 << 16  # written a block at a time: a long silence is never held whole


class OutputTrack:
    """The coach's output as samples at `rate_hz`, as a timeline sink: what the player would
    hand the device, built from the session's `say`, `cut` and `volume` events. The WAV
    renderer writes it to a file; the echo canceller of an offline run reads it as its
    reference, and the tests' room simulator plays it into the room.

    Events come in time order, so every sample before the last event's is final. Clips
    are kept until `forget_before`."""

    def __init__(self, cache: CueCache, volume: float, rate_hz: int | None = None) -> None:
        self.cache = cache
        self.volume = volume
        self.rate_hz = rate_hz or cache.synth.rate_hz
        self.track: SpeechTrack[Samples] = SpeechTrack()
        self.cues = 0

    def sample_at(self, t: float) -> int:
        return round(t * self.rate_hz)

    def write(self, event: Event) -> None:
        match event:
            case Say(t=t, text=text):
                samples = gain(resample(self.cache.get(text), self.rate_hz).samples, self.volume)
                start = self.sample_at(t)
                self.track.add(start, start + len(samples), samples)
                self.cues += 1
            case Cut(t=t):
                self.track.cut(self.sample_at(t))
            case Volume(volume=volume):
                self.volume = volume

    def samples(self, start: int, stop: int) -> Samples:
        """The output from sample `start` to `stop`: silence, and the clips sounding there."""
        block = np.zeros(max(0, stop - start), dtype=np.int16)
        for span in self.track.overlapping(start, stop):
            lo, hi = max(start, round(span.start)), min(stop, round(span.end))
            block[lo - start : hi - start] = span.item[lo - round(span.start) : hi - round(span.start)]
        return block

    def end(self) -> int:
        return round(self.track.end())

    def forget_before(self, sample: int) -> None:
        self.track.forget_before(sample)

    def close(self) -> None:
        pass


class WavRenderer:
    """Places the session's clips on a speech track in samples and writes the WAV as the
    session goes: events come in time order, so every sample before an event's is final
    and goes to disk; memory holds only the clips still sounding (a session of hours, or
    a script line far in the future, costs disk, not memory)."""

    def __init__(self, path: Path, cache: CueCache, volume: float, rate_hz: int | None = None) -> None:
        self.output = OutputTrack(cache, volume, rate_hz)
        self.rate_hz = self.output.rate_hz
        self._out = WavWriter(path, self.rate_hz)

    @property
    def cues(self) -> int:
        return self.output.cues

    def write(self, event: Event) -> None:
        if isinstance(event, Say | Cut | Volume):
            self._flush_to(self.output.sample_at(event.t))
        self.output.write(event)

    def _flush_to(self, end: int) -> None:
        """Write every sample before `end`: silence, and the clips sounding there."""
        while self._out.frames < end:
            start = self._out.frames
            stop = min(end, start + BLOCK_SAMPLES)
            self._out.write(self.output.samples(start, stop))
            self.output.forget_before(stop)

    def close(self) -> None:
        self._flush_to(max(self.output.end(), self._out.frames) + round(TAIL_S * self.rate_hz))
        self._out.close()
        seconds = self._out.frames / self.rate_hz
        log.info("wrote %s: %.1f s, %d cues", self._out.path, seconds, self.cues)
