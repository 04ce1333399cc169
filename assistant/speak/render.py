"""Offline rendering: a session's speech written into one WAV, each cue at its exact sample.

`WavRenderer` is a timeline sink: a `say` event at session time t starts its
clip at sample round(t * rate); a `cut` ends the clip playing at that sample;
a `volume` event applies to the cues after it. Between cues: silence.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from assistant.coach.events import Event
from assistant.pcm import Audio, Samples, gain, resample
from assistant.speak.cache import CueCache
from assistant.speak.wav import write_wav

log = logging.getLogger(__name__)

TAIL_S = 0.5  # silence after the last word


class WavRenderer:
    """Collects the session's clips, then writes them as one WAV on close."""

    def __init__(self, path: Path, cache: CueCache, volume: float, rate_hz: int | None = None) -> None:
        self.path = path
        self.cache = cache
        self.volume = volume
        self.rate_hz = rate_hz or cache.synth.rate_hz
        self.clips: list[tuple[int, Samples]] = []

    def sample_at(self, t: float) -> int:
        return round(t * self.rate_hz)

    def write(self, event: Event) -> None:
        kind = event["event"]
        if kind == "say":
            audio = resample(self.cache.get(event["text"]), self.rate_hz)
            self.clips.append((self.sample_at(event["t"]), gain(audio.samples, self.volume)))
        elif kind == "cut":
            at = self.sample_at(event["t"])
            self.clips = [(start, clip[: max(at - start, 0)]) for start, clip in self.clips]
        elif kind == "volume":
            self.volume = float(event["volume"])

    def render(self) -> Audio:
        end = max((start + len(clip) for start, clip in self.clips), default=0)
        out = np.zeros(end + round(TAIL_S * self.rate_hz), dtype=np.int16)
        for start, clip in self.clips:
            out[start : start + len(clip)] = clip
        return Audio(out, self.rate_hz)

    def close(self) -> None:
        audio = self.render()
        write_wav(self.path, audio)
        log.info("wrote %s: %.1f s, %d cues", self.path, audio.duration_s, len(self.clips))
