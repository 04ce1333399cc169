"""Playback on a real device: one output stream for the whole session, cues placed by sample.

The stream's callback mixes the clips that overlap the block it is asked for.
The session clock is the number of frames handed to the device divided by the
rate, so cue onsets follow the schedule to the sample and cannot drift from the
audio, with one correction: an underrun. When the machine is too busy to feed
the device in time, the device plays silence we never gave it and every later
sample sounds that much later; a frame count cannot see it (measured on a busy
2-core machine: cues 39 and 73 ms late from the third on). PortAudio's output
DAC time can: it says when each block's first sample will sound, so DAC time
less frames handed out is constant while the audio flows and steps by exactly
the silence the device inserted (measured on a PulseAudio null sink: steps of
14 to 368 ms for stalls of 120 to 500 ms, each within 1.2 ms of the shift in
the recording; steady to 0.1 ms otherwise). But the estimate also
wanders on a loaded machine (up to 12 ms over seconds, with no change in the
audio), so it is trusted only where PortAudio flags an underrun
(`output_underflow`): then, over the next 0.3 s, the change of DAC time less
frames is the length of the silence the device inserted (or, negative, of the
audio it dropped). A step forward moves the session clock on by as much (a
clip caught in the gap resumes, or starts, right after it: late, never
clipped); a step back is made up with silence; each is counted and logged as
an output underrun. Without a flag only a jump beyond the wander (25 ms) counts.
The flag alone says that an underrun happened, not how long it was; and when
the whole program stalls (SIGSTOP, measured), PulseAudio drops what it missed
and keeps the timeline: no flag, no step, nothing to correct.

The device is opened at the voice's rate when it accepts it (PulseAudio and
PipeWire do), otherwise at its own rate with the clips resampled.

If the device disappears (the stream stops without a word: no callback, no
error), `check()` reopens it; the frame count, and so the position in the
routine, carries on where it was. sounddevice is imported (devices.py) only when a
device is used, so offline work runs without PortAudio.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

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
_monotonic = time.monotonic  # the callback's `time` argument hides the module

BLOCK_FRAMES = 1024  # ~46 ms at 22050 Hz; helper measurements: exact onsets, no underflows
# The device's buffer, seconds. PortAudio's "high" was 93 ms on PulseAudio: with piper making
# cues, or another busy process, the stream underran dozens of times a minute (43 in one
# 100 s session), and each underrun moves the echo's path under the live canceller
# (hear/echo.py); at 0.2 s, a few. A cut is heard up to this much after it is decided.
LATENCY = 0.2

# The DAC time against the frame count (see the module docstring). Measured on PulseAudio:
# the lag is steady to 0.1 ms on a quiet machine, but wanders by up to 12 ms on a loaded one
# with no change in the audio; a new stream's first estimates jump by tens of ms.
STEP_S = 0.004  # after an underrun PortAudio flagged, a change of the lag beyond this is its length
AFTER_UNDERRUN_S = 0.3  # ... measured over this long: the estimate settles within 3 blocks
UNFLAGGED_STEP_S = 0.025  # without a flag, only a jump this large (beyond the wander) is a step
SETTLE_S = 0.5  # a new stream's estimates are taken as they come for this long
MAX_STEP_S = 2.0  # beyond this it is the wall clock being set (NTP), which the DAC time follows


@dataclass
class Clip:
    """A cue on the stream: its samples at the stream rate (a cut shortens them), its volume."""

    samples: Samples
    volume: float


class OutputTap(Protocol):
    """Who is handed every block the player gives the device (the live echo canceller's
    reference): called in the audio callback, so it must only store it."""

    def played(self, dac_s: float, clock_s: float, block: Samples, rate_hz: int, frame: int) -> None:
        """`block` (int16 at `rate_hz`) goes to the device now; its first sample sounds at
        `dac_s` (PortAudio's DAC time; 0 when unknown) or, by time.monotonic, `clock_s`. It
        is the player's session `frame`: frames skipped since the last block are silence the
        device played (an underrun), and made-up silence (after it dropped audio) is left out."""
        ...


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
        self._frames = 0  # the session frame the next block starts at: frames handed out, plus steps
        self._origin = 0  # the frame at which session time 0 falls
        self._owed = 0  # frames of silence still to insert (a step back) before the session moves on
        self._stream_frames = 0  # frames handed to the stream now open
        self._lag: float | None = None  # DAC time less this stream's frames, in seconds
        self._measure_until = 0  # stream frame up to which lag changes measure an underrun
        self._stream: sounddevice.OutputStream | None = None
        self.underflows = 0  # blocks PortAudio flagged as following an underrun
        self.steps: list[tuple[float, float]] = []  # (session s, step s) of every underrun measured
        self._reported = 0  # steps already logged
        self.reopened = 0
        self.late_clips = 0
        self.first_sound: float | None = None  # time.monotonic() when speech first went to the device
        self._first_reported = False
        self.tap: OutputTap | None = None  # handed every block played
        self._latency_s = 0.0  # the open stream's output latency
        # Opens the device and returns the stream (hear/duplex.py: one duplex stream that also
        # hears the microphone); None: a stream of its own (`open_own`).
        self.opener: Callable[[], Any] | None = None

    # -- the session clock ------------------------------------------------------

    def start_session(self) -> None:
        """Session time 0 is now (the stream may have been open a while, for the cue cache)."""
        self._origin = self._frames

    def now_s(self) -> float:
        """Session time: frames handed to the device since `start_session`, plus the
        underruns measured (the silence the device played that we never gave it)."""
        return (self._frames - self._origin) / self.rate_hz

    def _frame(self, t: float) -> int:
        return self._origin + round(t * self.rate_hz)

    # -- device --------------------------------------------------------------

    def open(self) -> None:
        """Open the device: on a stream of its own, or through `opener` (hear/duplex.py: one
        duplex stream that also hears the microphone). A reopen goes the same way."""
        self._stream = self.opener() if self.opener is not None else self.open_own()

    def open_own(self) -> Any:
        """An output stream of the player's own, started."""
        where = f"audio device {self.device!r}" if self.device else "the default audio device"
        return open_stream(
            self.device, "output", self.wanted_rate_hz, self._open_at, f"cannot play on {where}"
        )

    def _open_at(self, sd: Any, device: int | str | None, rate: int) -> Any:
        self.prepare(rate)
        stream = sd.OutputStream(
            samplerate=rate, channels=1, dtype="int16", device=device,
            blocksize=self.block_frames, latency=LATENCY, callback=self.fill,
        )  # fmt: skip
        self.started(float(stream.latency))
        stream.start()
        log.info("output %s at %d Hz, latency %.0f ms", stream.device, rate, stream.latency * 1000)
        return stream

    def prepare(self, rate: int) -> None:
        """Before a stream opens at `rate`: the session clock kept (in the new rate's frames,
        the clips resampled), and what was measured of the last stream forgotten."""
        if rate != self.rate_hz:
            # Keep the session clock where it was, in the new rate's frames.
            with self._lock:
                self._frames = round(self._frames * rate / self.rate_hz)
                self._origin = round(self._origin * rate / self.rate_hz)
                self._owed = round(self._owed * rate / self.rate_hz)
                track: SpeechTrack[Clip] = SpeechTrack()
                for span in self._track:
                    samples = resample(Audio(span.item.samples, self.rate_hz), rate).samples
                    start = round(span.start * rate / self.rate_hz)
                    track.add(start, start + len(samples), Clip(samples, span.item.volume))
                self._track = track
            self.rate_hz = rate
        with self._lock:  # a new stream: its DAC time has no relation to the last one's
            self._stream_frames = self._measure_until = 0
            self._lag = None

    def started(self, latency_s: float) -> None:
        """The stream is open with this output latency (the callback's clock stamps by it)."""
        self._latency_s = latency_s

    def check(self) -> bool:
        """Report underruns measured since the last check; reopen the stream if the device
        went away. True while it plays."""
        self._report()
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
        self._report()
        if self.steps:
            lost = sum(abs(step) for _, step in self.steps)
            log.info("%d output underrun(s) in the session, %.0f ms in all", len(self.steps), lost * 1000)
        self.cache.close()

    def _report(self) -> None:
        """Log the steps the callback measured (it must not log: that can block)."""
        if self.first_sound is not None and not self._first_reported:
            self._first_reported = True  # the bench times a start by it (system-wide clock)
            log.info("first speech handed to the device at monotonic %.3f s", self.first_sound)
        steps = self.steps[self._reported :]
        self._reported += len(steps)
        for at, step in steps:
            log.warning(
                "output underrun at %.1f s: the device %s %.0f ms; the session clock steps with it, "
                "so later cues keep their times", at, "inserted" if step > 0 else "dropped", abs(step) * 1000,
            )  # fmt: skip

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
                log.info("clip %.0f ms late at %.2f s", (self._frames - start) * 1000 / self.rate_hz, t)
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

    def fill(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        """The output stream's callback, and the output side of a duplex stream's (the same
        `time` and `status`: it reads only their output fields)."""
        if status.output_underflow:
            self.underflows += 1
        block = np.zeros(frames, dtype=np.int16)
        with self._lock:
            self._follow_dac(float(time.outputBufferDacTime), bool(status.output_underflow))
            self._stream_frames += frames
            silent = min(self._owed, frames)  # made-up silence comes first; the session waits
            self._owed -= silent
            start = self._frames
            end = start + frames - silent
            for span in self._track.overlapping(start, end):
                lo, hi = max(start, round(span.start)), min(end, round(span.end))
                if lo < hi:
                    if self.first_sound is None:
                        self.first_sound = _monotonic()
                    first = lo - round(span.start)
                    block[silent + lo - start : silent + hi - start] = gain(
                        span.item.samples[first : first + hi - lo], span.item.volume
                    )
            self._track.forget_before(end)
            self._frames = end
        outdata[:, 0] = block
        if self.tap is not None:
            dac_s, late_s = float(time.outputBufferDacTime), silent / self.rate_hz
            dac_s = dac_s + late_s if dac_s > 0 else 0.0
            self.tap.played(
                dac_s, _monotonic() + self._latency_s + late_s, block[silent:], self.rate_hz, start
            )

    def _follow_dac(self, dac_s: float, underflow: bool) -> None:
        """Compare the DAC time of the block about to be handed out with the frames handed
        out so far (under the lock), and step the session clock over an underrun."""
        if dac_s <= 0.0:  # a host API that does not know it: the frame count alone
            return
        if underflow:
            self._measure_until = self._stream_frames + round(AFTER_UNDERRUN_S * self.rate_hz)
        lag = dac_s - self._stream_frames / self.rate_hz
        if self._lag is None or self._stream_frames < SETTLE_S * self.rate_hz:
            self._lag = lag
            return
        step = lag - self._lag
        measuring = self._stream_frames < self._measure_until
        if not (STEP_S if measuring else UNFLAGGED_STEP_S) <= abs(step) <= MAX_STEP_S:
            if not measuring or abs(step) > MAX_STEP_S:
                self._lag = lag  # the estimate's wander, or the system clock set: not the audio
            return  # (after an underrun, a part of it under STEP_S may still follow)
        self._lag = lag
        self.steps.append(((self._frames - self._origin) / self.rate_hz, step))
        frames = round(step * self.rate_hz)
        if frames < 0:
            self._owed -= frames
            return
        paid = min(self._owed, frames)  # a step back not yet made up cancels out first
        self._owed -= paid
        if frames > paid:
            self._skip(frames - paid)

    def _skip(self, frames: int) -> None:
        """The device played `frames` of silence we never gave it: the session moves on by as
        much, and a clip caught in the gap resumes, or starts, right after it."""
        at, until = self._frames, self._frames + frames
        self._frames = until
        under_way = [(s, s.end) for s in self._track.overlapping(at, at + 1) if s.start < at]
        later = self._track.cut(at)  # ends the clip under way at `at`, takes out the ones after
        for span, end in under_way:
            rest = Clip(span.item.samples[round(at - span.start) :], span.item.volume)
            self._track.add(until, until + end - at, rest)
        for span in reversed(later):  # in order of start
            start = max(span.start, until)
            if start > span.start:
                self.late_clips += 1
            self._track.add(start, start + span.end - span.start, span.item)
