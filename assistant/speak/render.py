"""Offline rendering: a session's speech written into one WAV, each cue at its exact sample.

`WavRenderer` is a timeline sink: a `say` event at session time t starts its
clip at sample round(t * rate); a `cut` ends the clip playing at that sample;
a `volume` event applies to the cues after it. Between cues: silence.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from assistant.coach.events import Cut, Event, Say, Volume
from assistant.coach.track import SpeechTrack
from assistant.pcm import Audio, Samples, gain, resample
from assistant.speak.cache import CueCache
from assistant.speak.wav import write_wav

log = logging.getLogger(__name__)

TAIL_S = 0.5  # silence after the last word


class WavRenderer:
    """Collects the session's clips on a speech track in samples, then writes one WAV on close."""

    def __init__(self, path: Path, cache: CueCache, volume: float, rate_hz: int | None = None) -> None:
        self.path = path
        self.cache = cache
        self.volume = volume
        self.rate_hz = rate_hz or cache.synth.rate_hz
        self.track: SpeechTrack[Samples] = SpeechTrack()

    def sample_at(self, t: float) -> int:
        return round(t * self.rate_hz)

    def write(self, event: Event) -> None:
        match event:
            case Say(t=t, text=text):
                samples = gain(resample(self.cache.get(text), self.rate_hz).samples, self.volume)
                start = self.sample_at(t)
                self.track.add(start, start + len(samples), samples)
            case Cut(t=t):
                self.track.cut(self.sample_at(t))
            case Volume(volume=volume):
                self.volume = volume

    def render(self) -> Audio:
        spans = self.track.spans()
        end = max((round(span.end) for span in spans), default=0)
        out = np.zeros(end + round(TAIL_S * self.rate_hz), dtype=np.int16)
        for span in spans:
            start, stop = round(span.start), round(span.end)
            out[start:stop] = span.item[: stop - start]
        return Audio(out, self.rate_hz)

    def close(self) -> None:
        audio = self.render()
        write_wav(self.path, audio)
        log.info("wrote %s: %.1f s, %d cues", self.path, audio.duration_s, len(self.track))
