"""Echo cancellation: the coach's own voice taken out of the microphone, before endpointing
and recognition.

We know the exact samples the coach plays, so the canceller is fed two streams of
10 ms frames at 16 kHz: the capture (what the microphone heard) and the reference (what
the player handed the device over the same 10 ms, or any fixed time before: the
canceller finds the delay itself, and `delay_hint_ms` only speeds that up). Out comes
the capture with the echo removed.

- `Canceller` is the interface: one `process(capture, reference)` per 10 ms frame.
- `WebRtcCanceller`: WebRTC's AEC3, through the AudioProcessingModule of the `livekit`
  package (Apache-2.0, wheels for x86_64 and aarch64). Chosen by measurement
  (bench/echo.py, README "Echo cancellation"): the most echo removed, robust to a wrong
  delay hint, clock drift and a non-linear speaker.
- `SpeexCanceller`: speexdsp's canceller through `pyaec`, kept for the bench's comparison
  (`pyaec` is a test dependency, imported only here).
- `EchoStage` turns any chunking of the capture into 10 ms frames for a canceller,
  keeping the remainder between calls; the caller says which reference goes with them.

The offline runner (`backstretch run --in`) uses the coach's own rendered output as the
reference (assistant/app/offline.py). The live path (player -> reference queue,
capture -> stage) is not wired yet: see the notes in README, "Echo cancellation".
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from assistant.pcm import RATE_HZ, Samples

log = logging.getLogger(__name__)

FRAME_SAMPLES = RATE_HZ // 100  # 10 ms: the frame every canceller here works in
DEFAULT_DELAY_MS = 40  # a typical output-to-input latency, as a first hint


class Canceller(Protocol):
    """Removes the echo of `reference` from `capture`, 10 ms at a time."""

    name: str

    def process(self, capture: Samples, reference: Samples) -> Samples:
        """`capture` (FRAME_SAMPLES of 16 kHz int16) with the echo of the played
        `reference` (the same length, played at the same time or earlier) removed."""
        ...


class WebRtcCanceller:
    """WebRTC AEC3 (livekit's AudioProcessingModule): echo cancellation only, by default;
    the high-pass filter and noise suppression are left to the endpointer and recogniser,
    which are tuned on unprocessed speech."""

    name = "webrtc-aec3"

    def __init__(
        self,
        delay_hint_ms: int = DEFAULT_DELAY_MS,
        noise_suppression: bool = False,
        high_pass_filter: bool = False,
        auto_gain_control: bool = False,
    ) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter,
            auto_gain_control=auto_gain_control,
        )
        self.delay_hint_ms = delay_hint_ms

    def process(self, capture: Samples, reference: Samples) -> Samples:
        rtc = self._rtc
        ref = bytearray(np.ascontiguousarray(reference, dtype=np.int16).tobytes())
        self._apm.process_reverse_stream(rtc.AudioFrame(ref, RATE_HZ, 1, FRAME_SAMPLES))
        # Set on every frame, as WebRTC asks: the hint belongs to this capture frame.
        self._apm.set_stream_delay_ms(self.delay_hint_ms)
        cap = rtc.AudioFrame(bytearray(np.ascontiguousarray(capture, dtype=np.int16).tobytes()), RATE_HZ, 1,
                             FRAME_SAMPLES)  # fmt: skip
        self._apm.process_stream(cap)  # in place
        return np.array(cap.data, dtype=np.int16)


class SpeexCanceller:
    """speexdsp's MDF canceller (with its residual-echo preprocessor) through `pyaec`."""

    name = "speex"

    def __init__(self, filter_ms: int = 300, preprocess: bool = True) -> None:
        import pyaec

        self._aec = pyaec.Aec(FRAME_SAMPLES, RATE_HZ * filter_ms // 1000, RATE_HZ, preprocess)

    def process(self, capture: Samples, reference: Samples) -> Samples:
        out = self._aec.cancel_echo(capture.tolist(), reference.tolist())
        return np.asarray(out, dtype=np.int16)


class EchoStage:
    """A canceller behind chunks of any length: whole 10 ms frames go through it, the rest
    waits for the next call. `feed(capture, reference)` takes the reference samples
    matching `capture` one for one, and returns the cleaned samples of every whole
    frame so far (possibly none, at most one frame fewer than were given)."""

    def __init__(self, canceller: Canceller) -> None:
        self.canceller = canceller
        self._capture = np.zeros(0, np.int16)
        self._reference = np.zeros(0, np.int16)

    def feed(self, capture: Samples, reference: Samples) -> Samples:
        if len(capture) != len(reference):
            raise ValueError(f"capture of {len(capture)} samples, reference of {len(reference)}")
        cap = np.concatenate([self._capture, capture.astype(np.int16, copy=False)])
        ref = np.concatenate([self._reference, reference.astype(np.int16, copy=False)])
        whole = len(cap) - len(cap) % FRAME_SAMPLES
        out = [
            self.canceller.process(cap[i : i + FRAME_SAMPLES], ref[i : i + FRAME_SAMPLES])
            for i in range(0, whole, FRAME_SAMPLES)
        ]
        self._capture, self._reference = cap[whole:], ref[whole:]
        return np.concatenate(out) if out else np.zeros(0, np.int16)


ENGINES = {"webrtc": WebRtcCanceller, "speex": SpeexCanceller}


def open_canceller(engine: str = "webrtc") -> Canceller:
    """The named canceller (`webrtc`, the default, or `speex`)."""
    canceller: Canceller = ENGINES[engine]()
    log.info("echo canceller: %s", canceller.name)
    return canceller
