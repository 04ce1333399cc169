"""Where the recogniser's audio comes from: a microphone, or a WAV file standing in for one.

Both yield `Chunk`s of 16 kHz mono int16, 30 ms each, stamped with the audio
time at their end (seconds of audio since the source started). A microphone
that does not take 16 kHz is opened at its own rate and resampled on the fly.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.pcm import RATE_HZ, Samples
from assistant.speak.devices import open_stream
from assistant.speak.wav import stream_wav

log = logging.getLogger(__name__)
_monotonic = time.monotonic  # the callback's `time` argument hides the module

CHUNK_FRAMES = 480  # 30 ms at 16 kHz: short enough for a quick endpoint


@dataclass(frozen=True)
class Chunk:
    samples: Samples  # 16 kHz mono
    end_s: float  # audio time at the chunk's end
    # From a microphone, when its first sample was heard: PortAudio's ADC time (0 when the
    # host API does not know it), and by the callback's own clock (time.monotonic, less the
    # stream's latency). The live echo canceller aligns the coach's output with them.
    adc_s: float = 0.0
    clock_s: float = 0.0
    # Out of the echo canceller (once it has learnt the echo): the coach's voice taken out,
    # its residue left (listen.Listener asks the recogniser whether it hears commands there).
    cancelled: bool = False


def wav_chunks(path: Path) -> Iterator[Chunk]:
    """A WAV file (any rate, channels, 16/24/32-bit or float) as microphone chunks, read
    and resampled a block at a time, so memory stays flat in the length of the file."""
    import soxr

    rate, blocks = stream_wav(path)
    log.info("feeding %s at %d Hz", path, rate)
    resampler = (
        None if rate == RATE_HZ else soxr.ResampleStream(rate, RATE_HZ, 1, dtype="float32", quality="HQ")
    )
    pending = np.zeros(0, np.int16)
    fed = 0  # 16 kHz samples handed out
    for block in itertools.chain(blocks, [None]):
        if resampler is None:
            new = block if block is not None else np.zeros(0, np.int16)
        else:
            source = (block if block is not None else np.zeros(0, np.int16)).astype(np.float32)
            out = resampler.resample_chunk(source, last=block is None)
            new = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
        pending = np.concatenate([pending, new])
        whole = len(pending) if block is None else len(pending) - len(pending) % CHUNK_FRAMES
        for start in range(0, whole, CHUNK_FRAMES):
            chunk = pending[start : start + CHUNK_FRAMES]
            fed += len(chunk)
            yield Chunk(chunk, fed / RATE_HZ)
        pending = pending[whole:]


class _Resampler:
    """A stream's rate to 16 kHz, a block at a time, and how far its output is behind. soxr
    hands its output out in lumps (from 22050 Hz: 9 to 38 ms behind the input, changing from
    block to block), so a block's stamps, the time of its first input sample, are moved back
    by the input before it still inside: then they are the time of the first sample handed
    out, where the count of samples delivered is (LiveEcho's Clock believes the count; the
    lumps, left in, moved its capture by up to 38 ms and tripped its 40 ms step)."""

    def __init__(self, rate_hz: int) -> None:
        import soxr

        self.rate_hz = rate_hz
        self._soxr = soxr.ResampleStream(rate_hz, RATE_HZ, 1, dtype="int16")
        self._in = self._out = 0  # samples in (at rate_hz) and out (at 16 kHz)

    def resample(self, block: Samples) -> tuple[Samples, float]:
        """The block at 16 kHz (what of it is ready), and the seconds its first sample out
        is behind the block's first sample in."""
        behind_s = (self._in * RATE_HZ / self.rate_hz - self._out) / RATE_HZ
        out = np.asarray(self._soxr.resample_chunk(block), dtype=np.int16)
        self._in += len(block)
        self._out += len(out)
        return out, behind_s


class _CountedStamps:
    """The ADC times of a duplex stream's input, by its count of frames. In one duplex stream
    the input is counted with the output, frame for frame, so the count is the clock; the
    ADC times PortAudio gives it are not (through ALSA's PulseAudio plugin they ran 0 to 40 ms
    ahead of the count in a sawtooth of about 8 s, so LiveEcho's Clock, which believes the
    count until the stamps leave it by 40 ms, stepped and realigned the echo every few seconds:
    13 times in 60 s, the canceller 9 to 15 dB down where two streams had 41 to 55). So a
    block's ADC time is the stream's median offset over its first SETTLE_S, plus its count;
    after an overflow the PortAudio flags (input lost: the count no longer says where it
    is), the offset is taken afresh the same way."""

    SETTLE_S = 0.5

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self._frames = 0
        self._offsets: list[float] = []  # ADC time less count, while settling
        self._offset = 0.0

    def stamp(self, adc_s: float, frames: int, overflow: bool) -> float:
        if overflow:
            self._offsets = []
        if len(self._offsets) * frames < self.SETTLE_S * self.rate_hz:
            self._offsets.append(adc_s - self._frames / self.rate_hz)
            self._offset = float(np.median(self._offsets))
        stamp = self._offset + self._frames / self.rate_hz
        self._frames += frames
        return stamp


class Microphone:
    """A sounddevice input stream; `chunks()` yields what it hears, in order, as it comes.

    Or the input side of the player's duplex stream (hear/duplex.py), when one device does
    both: then the player's stream hands it every block (`take`), and opens, reopens and
    closes that stream; the microphone only starts and stops listening."""

    def __init__(self, device: str | None) -> None:
        self.device = device
        self._queue: queue.Queue[tuple[Samples, float, float] | None] = queue.Queue()
        self._stream: Any = None
        self._resampler: _Resampler | None = None  # the open stream's rate to 16 kHz
        self._latency_s, self._rate_hz = 0.0, RATE_HZ  # the open stream's, for the callback
        self._frames = 0  # 16 kHz frames delivered: the microphone's audio clock
        self._closed = threading.Event()  # closed on purpose: not to be reopened
        self._lock = threading.Lock()  # one open or close at a time
        self.overflows = 0
        self.shared = False  # the input side of the player's duplex stream
        self._listening = False  # (shared) blocks are kept from `open` on
        self._counted: _CountedStamps | None = None  # (shared) the stream's ADC times by count

    def open(self) -> None:
        if self.shared:
            self._listening = True
            return
        where = f"microphone {self.device!r}" if self.device else "the default microphone"
        self._stream = open_stream(self.device, "input", RATE_HZ, self._open_at, f"cannot listen on {where}")

    def _open_at(self, sd: Any, device: int | str | None, rate: int) -> Any:
        blocksize = round(CHUNK_FRAMES * rate / RATE_HZ)
        stream = sd.InputStream(
            samplerate=rate, channels=1, dtype="int16", device=device, blocksize=blocksize,
            callback=self.take, finished_callback=self.finished,
        )  # fmt: skip
        self.started(rate, float(stream.latency))
        stream.start()
        log.info("microphone %s at %d Hz", stream.device, rate)
        return stream

    def started(self, rate: int, latency_s: float) -> None:
        """A stream opens at `rate`, with this input latency: resampled to 16 kHz from it."""
        self._resampler = _Resampler(rate) if rate != RATE_HZ else None
        self._latency_s, self._rate_hz = latency_s, rate
        self._counted = _CountedStamps(rate) if self.shared else None

    def take(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        """The input stream's callback, and the input side of a duplex stream's (the same
        `time` and `status`: it reads only their input fields)."""
        if self.shared and not self._listening:
            return  # the player's stream opened first; nobody listens yet
        if status.input_overflow:
            self.overflows += 1
        heard = _monotonic() - self._latency_s - frames / self._rate_hz
        adc_s, counted = float(time.inputBufferAdcTime), self._counted
        if adc_s and counted is not None:
            adc_s = counted.stamp(adc_s, frames, bool(status.input_overflow))
        # No more work here: the listener thread resamples.
        self._queue.put((indata[:, 0].copy(), adc_s, heard))

    def finished(self) -> None:
        """The stream ended (closed, or the device went away): `chunks` looks up at once."""
        self._queue.put(None)

    def chunks(self, timeout_s: float = 1.0) -> Iterator[Chunk | None]:
        """Chunks as they come; None when nothing came within `timeout_s` (or the device
        went away), so the caller can check on things and carry on. Ends once closed."""
        while not self._closed.is_set():
            try:
                item = self._queue.get(timeout=timeout_s)
            except queue.Empty:
                yield None
                continue
            if item is None:
                yield None
                continue
            block, adc_s, clock_s = item
            resampler = self._resampler  # (a reopen on another thread replaces it)
            if resampler is not None:
                block, behind_s = resampler.resample(block)
                adc_s, clock_s = (adc_s - behind_s if adc_s else 0.0), clock_s - behind_s
            self._frames += len(block)
            yield Chunk(block, self._frames / RATE_HZ, adc_s, clock_s)

    def reopen(self) -> None:
        """Open the device again after it vanished. The audio clock stood still while it
        was gone: the caller maps audio time to session time afresh. (Shared: the player
        reopens the one stream, and `active` says so.)"""
        with self._lock:
            if self._closed.is_set() or self.shared:
                return
            if self._stream is not None:
                self._stream.close(ignore_errors=True)
                self._stream = None
            self.open()
        log.info("microphone reopened at %.1f s of audio", self.now_s())

    def now_s(self) -> float:
        return self._frames / RATE_HZ

    def active(self) -> bool:
        """Whether it hears (or was closed on purpose). Shared, always: the player's check
        reopens the one stream, and the audio clocks of both stand still until it does."""
        if self._closed.is_set() or self.shared:
            return True
        return self._stream is not None and bool(self._stream.active)

    def close(self) -> None:
        self._closed.set()
        self._listening = False
        with self._lock:
            if self._stream is not None:
                self._stream.close(ignore_errors=True)
                self._stream = None
        if self.overflows:  # (the callback must not log)
            log.info("%d input overflow(s) in the session", self.overflows)
