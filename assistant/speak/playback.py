"""Playback on a real device: one output stream for the whole session, cues placed by sample.

The stream's callback mixes the clips that overlap the block it is asked for;
the session clock is the number of frames handed to the device divided by the
rate, so cue onsets follow the schedule to the sample and cannot drift from the
audio. The device is opened at the voice's rate when it accepts it (PulseAudio
and PipeWire do), otherwise at its own rate with the clips resampled.

If the device disappears (the stream stops without a word: no callback, no
error), `check()` reopens it; the frame count, and so the position in the
routine, carries on where it was. sounddevice is imported (devices.py) only when a
device is used, so offline work runs without PortAudio.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.coach.events import Cut, Event, Say, Volume
from assistant.coach.track import SpeechTrack
from assistant.errors import DeviceError
from assistant.pcm import Audio, Samples, gain, resample
from assistant.speak.cache import CueCache
from assistant.speak.devices import open_stream

if TYPE_CHECKING:
    import sounddevice

log = logging.getLogger(__name__)

BLOCK_FRAMES = 1024  # ~46 ms at 22050 Hz; helper measurements: exact onsets, no underflows
LATENCY = "high"


@dataclass
class Clip:
    """A cue on the stream: its samples at the stream rate (a cut shortens them), its volume."""

    samples: Samples
    volume: float


class Player:
    """Plays clips at session times on one open output stream; also a timeline sink."""

    def __init__(
        self,
        cache: CueCache,
        device: str | None,
        volume: float,
        rate_hz: int | None = None,
        block_frames: int = BLOCK_FRAMES,
    ) -> None:
        self.cache = cache
        self.device = device
        self.volume = volume
        self.block_frames = block_frames
        self.wanted_rate_hz = rate_hz or cache.synth.rate_hz  # clips are resampled to it
        self.rate_hz = self.wanted_rate_hz
        self._lock = threading.Lock()  # the frame count and the track change together
        self._track: SpeechTrack[Clip] = SpeechTrack()  # clips placed in frames
        self._frames = 0  # frames handed to the device since the stream opened
        self._origin = 0  # the frame at which session time 0 falls
        self._stream: sounddevice.OutputStream | None = None
        self.underflows = 0
        self.reopened = 0
        self.late_clips = 0

    # -- the session clock ------------------------------------------------------

    def start_session(self) -> None:
        """Session time 0 is now (the stream may have been open a while, for the cue cache)."""
        self._origin = self._frames

    def now_s(self) -> float:
        """Session time: frames handed to the device since `start_session`."""
        return (self._frames - self._origin) / self.rate_hz

    def _frame(self, t: float) -> int:
        return self._origin + round(t * self.rate_hz)

    # -- device --------------------------------------------------------------

    def open(self) -> None:
        where = f"audio device {self.device!r}" if self.device else "the default audio device"
        self._stream = open_stream(
            self.device, "output", self.wanted_rate_hz, self._open_at, f"cannot play on {where}"
        )

    def _open_at(self, sd: Any, device: int | str | None, rate: int) -> Any:
        if rate != self.rate_hz:
            # Keep the session clock where it was, in the new rate's frames.
            with self._lock:
                self._frames = round(self._frames * rate / self.rate_hz)
                self._origin = round(self._origin * rate / self.rate_hz)
                track: SpeechTrack[Clip] = SpeechTrack()
                for span in self._track:
                    samples = resample(Audio(span.item.samples, self.rate_hz), rate).samples
                    start = round(span.start * rate / self.rate_hz)
                    track.add(start, start + len(samples), Clip(samples, span.item.volume))
                self._track = track
            self.rate_hz = rate
        stream = sd.OutputStream(
            samplerate=rate, channels=1, dtype="int16", device=device,
            blocksize=self.block_frames, latency=LATENCY, callback=self._callback,
        )  # fmt: skip
        stream.start()
        log.info("output %s at %d Hz, latency %.0f ms", stream.device, rate, stream.latency * 1000)
        return stream

    def check(self) -> bool:
        """Reopen the stream if the device went away; True while it plays."""
        stream = self._stream
        if stream is not None and stream.active:
            return True
        if stream is not None:
            log.warning("the audio device stopped at %.1f s; reopening it", self.now_s())
            stream.close(ignore_errors=True)
            self._stream = None
        try:
            self.open()
        except DeviceError as exc:
            log.debug("still no device: %s", exc)  # tried again at the next check
            return False
        self.reopened += 1
        log.warning("the audio device is back; carrying on at %.1f s", self.now_s())
        return True

    def close(self) -> None:
        """Let the speech already scheduled play out (the stop summary, say), then close."""
        if self._stream is not None:
            while self._stream.active and (left := self.drain_s()) > 0:
                time.sleep(min(left, 0.5))  # the device's own pace: nothing to drive faster
            self._stream.stop(ignore_errors=True)
            self._stream.close(ignore_errors=True)
            self._stream = None
        self.cache.close()

    def drain_s(self) -> float:
        """Seconds of scheduled speech still to play."""
        with self._lock:
            return max(0.0, (self._track.end() - self._frames) / self.rate_hz)

    # -- scheduling ------------------------------------------------------------

    def schedule(self, t: float, audio: Audio) -> None:
        samples = resample(audio, self.rate_hz).samples
        start = self._frame(t)
        with self._lock:
            if start < self._frames:
                # Too late for its slot (synthesised on demand): play it now, in full.
                self.late_clips += 1
                log.info("clip %.0f ms late", (self._frames - start) * 1000 / self.rate_hz)
                start = self._frames
            self._track.add(start, start + len(samples), Clip(samples, self.volume))

    def cut(self, t: float) -> None:
        """Silence from `t` on: the clip playing is cut, the ones queued after it dropped."""
        at = max(self._frame(t), self._frames)
        with self._lock:
            self._track.cut(at)  # the callback plays a clip up to its span's end

    def set_volume(self, t: float, volume: float) -> None:
        """From the next cue on: clips that start at `t` or later (some may be queued already)."""
        self.volume = volume
        at = self._frame(t)
        with self._lock:
            for span in self._track.starting_from(at):
                span.item.volume = volume

    def write(self, event: Event) -> None:
        """A scheduler of the session: says, cuts and volume changes act on the device."""
        match event:
            case Say(t=t, text=text):
                self.schedule(t, self.cache.get(text))
            case Cut(t=t):
                self.cut(t)
            case Volume(t=t, volume=volume):
                self.set_volume(t, volume)

    # -- the audio callback: no allocation beyond one block, no blocking ------------

    def _callback(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        if status.output_underflow:
            self.underflows += 1
        block = np.zeros(frames, dtype=np.int16)
        with self._lock:
            start = self._frames
            end = start + frames
            for span in self._track.overlapping(start, end):
                lo, hi = max(start, round(span.start)), min(end, round(span.end))
                if lo < hi:
                    first = lo - round(span.start)
                    block[lo - start : hi - start] = gain(
                        span.item.samples[first : first + hi - lo], span.item.volume
                    )
            self._track.forget_before(end)
            self._frames = end
        outdata[:, 0] = block
