"""Echo cancellation: the coach's own voice taken out of the microphone, before endpointing
and recognition.

We know the exact samples the coach plays, so the canceller is fed two streams of
10 ms frames at 16 kHz: the capture (what the microphone heard) and the reference (what
the player handed the device over the same 10 ms, or any fixed time before: the
canceller finds the delay itself, and `delay_hint_ms` only speeds that up). Out comes
the capture with the echo removed.

- `Canceller` is the interface: one `process(capture, reference)` per 10 ms frame.
- `SpeexDspCanceller`, the default: speexdsp's MDF canceller and its residual-echo
  preprocessor, from the system library libspeexdsp (BSD; Debian and Raspberry Pi OS
  package `libspeexdsp1`) through `ctypes`, set up as `pyaec` sets it up. Chosen by
  measurement (bench/echo.py, README "Echo cancellation"): it keeps the user's voice in
  double talk, so "stop" said over a cue is heard.
- `WebRtcCanceller`: WebRTC's AEC3, through the AudioProcessingModule of the `livekit`
  package (Apache-2.0, wheels for x86_64 and aarch64): the most echo removed, robust to
  a wrong delay hint, clock drift and a non-linear speaker, but its suppressor takes the
  user's word away with the echo (0 of 10 heard over a cue).
- `SpeexCanceller`: the same canceller through `pyaec` (a Rust build of speexdsp that
  publishes no licence), kept for the bench's comparison (`pyaec` is a test dependency,
  imported only here).
- `EchoJudge` says whether the canceller has learnt the echo (until then, and whenever it
  loses it, the microphone is heard as it is).
- `EchoStage` turns any chunking of the capture into 10 ms frames for a canceller,
  keeping the remainder between calls; the caller says which reference goes with them.

The offline runner (`backstretch run --in`) uses the coach's own rendered output as the
reference (assistant/app/offline.py); live, `LiveEcho` (assistant/hear/align.py) takes the
blocks the player hands the device and aligns them with the microphone's (README, "Echo cancellation").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections import deque
from typing import Protocol

import numpy as np

from assistant.errors import DeviceError
from assistant.pcm import RATE_HZ, Samples

log = logging.getLogger(__name__)

FRAME_SAMPLES = RATE_HZ // 100  # 10 ms: the frame every canceller here works in
DEFAULT_DELAY_MS = 40  # a typical output-to-input latency, as a first hint
# speexdsp's adaptive filter: the echo's delay after its reference plus the room's response.
# 200 ms (pyaec's 300 until stop 20): live the echo is kept 20 ms after its reference
# (align.py), and in the simulated bedroom the echo removed after 3 s was as good or better
# (RT60 0.3 s 41.3 dB against 35.6; 0.6 s 34.0 against 35.0; 150 ms of device latency
# offline 33.5 against 34.0), for 13 M instructions a second less (bench section 10).
FILTER_MS = 200


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
        try:
            from livekit import rtc
        except ImportError as exc:
            raise DeviceError(
                "WebRTC AEC3 needs the livekit package, which is not installed; install it with "
                "`pip install 'backstretch[webrtc]'`, or use the default canceller (speexdsp)"
            ) from exc
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


# From the headers of libspeexdsp-dev 1.2.1 (speex/speex_echo.h, speex/speex_preprocess.h).
SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_PREPROCESS_SET_ECHO_STATE = 24


def load_speexdsp(name: str | None = None) -> ctypes.CDLL:
    """The system's libspeexdsp (or the library `name`), with the signatures used here
    declared; a DeviceError saying how to install it when it is missing."""
    name = name or ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:  # not installed, or no such file
        raise DeviceError(
            f"speexdsp ({name}) is not installed, so the coach's own voice cannot be taken out "
            "of the microphone; install it with `sudo apt-get install libspeexdsp1`"
        ) from exc
    ptr = ctypes.c_void_p
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_state_init.restype = ptr
    lib.speex_echo_ctl.argtypes = [ptr, ctypes.c_int, ptr]
    lib.speex_echo_ctl.restype = ctypes.c_int
    # The sample buffers go as addresses (numpy's `.ctypes.data`): no pointer object per call.
    lib.speex_echo_cancellation.argtypes = [ptr, ptr, ptr, ptr]
    lib.speex_echo_cancellation.restype = None
    lib.speex_echo_state_destroy.argtypes = [ptr]
    lib.speex_echo_state_destroy.restype = None
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_state_init.restype = ptr
    lib.speex_preprocess_ctl.argtypes = [ptr, ctypes.c_int, ptr]
    lib.speex_preprocess_ctl.restype = ctypes.c_int
    lib.speex_preprocess_run.argtypes = [ptr, ptr]
    lib.speex_preprocess_run.restype = ctypes.c_int
    lib.speex_preprocess_state_destroy.argtypes = [ptr]
    lib.speex_preprocess_state_destroy.restype = None
    return lib


class SpeexDspCanceller:
    """speexdsp's MDF canceller with its preprocessor (noise suppression and residual-echo
    suppression, speexdsp's defaults) from the system's libspeexdsp.

    Set up as `pyaec` 1.0.1 sets it up (read from its library's machine code: echo state
    (frame, filter), preprocessor (frame, rate) given the echo state, nothing else), so
    the barge-in figures measured through pyaec carry over. pyaec never tells the echo
    state its sampling rate, which then assumes 8 kHz (a slower adaptation step and a
    different DC notch); `set_rate=True` tells it 16 kHz, as speexdsp's documentation
    asks."""

    name = "speexdsp"

    def __init__(self, filter_ms: int = FILTER_MS, preprocess: bool = True, set_rate: bool = False) -> None:
        self._lib = lib = load_speexdsp()
        self._echo: int | None = lib.speex_echo_state_init(FRAME_SAMPLES, RATE_HZ * filter_ms // 1000)
        self._pre: int | None = None
        if not self._echo:
            raise DeviceError("speexdsp could not create an echo canceller")
        if set_rate:
            rate = ctypes.c_int(RATE_HZ)
            lib.speex_echo_ctl(self._echo, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        if preprocess:
            self._pre = lib.speex_preprocess_state_init(FRAME_SAMPLES, RATE_HZ)
            if not self._pre:
                self.close()
                raise DeviceError("speexdsp could not create its preprocessor")
            lib.speex_preprocess_ctl(self._pre, SPEEX_PREPROCESS_SET_ECHO_STATE, self._echo)

    def process(self, capture: Samples, reference: Samples) -> Samples:
        if self._echo is None:
            raise ValueError("the canceller is closed")
        rec = np.ascontiguousarray(capture, dtype=np.int16)
        play = np.ascontiguousarray(reference, dtype=np.int16)
        if len(rec) != FRAME_SAMPLES or len(play) != FRAME_SAMPLES:
            raise ValueError(f"frames of {FRAME_SAMPLES} samples, not {len(rec)} and {len(play)}")
        out = np.empty(FRAME_SAMPLES, np.int16)
        self._lib.speex_echo_cancellation(self._echo, rec.ctypes.data, play.ctypes.data, out.ctypes.data)
        if self._pre is not None:
            self._lib.speex_preprocess_run(self._pre, out.ctypes.data)  # in place
        return out

    def close(self) -> None:
        """Free speexdsp's states (the preprocessor first: it points at the echo state)."""
        if self._pre is not None:
            self._lib.speex_preprocess_state_destroy(self._pre)
            self._pre = None
        if self._echo is not None:
            self._lib.speex_echo_state_destroy(self._echo)
            self._echo = None

    def __del__(self) -> None:
        if hasattr(self, "_echo"):
            self.close()


class SpeexCanceller:
    """speexdsp's MDF canceller (with its residual-echo preprocessor) through `pyaec`."""

    name = "speex"

    def __init__(self, filter_ms: int = FILTER_MS, preprocess: bool = True) -> None:
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
        self.fed = np.zeros(0, np.int16)  # the capture whose cleaned frames `feed` last returned

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
        self.fed = cap[:whole]
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    @property
    def pending(self) -> int:
        """Capture samples waiting for the rest of their frame."""
        return len(self._capture)


ENGINES = {"speexdsp": SpeexDspCanceller, "webrtc": WebRtcCanceller, "speex": SpeexCanceller}


def open_canceller(engine: str = "speexdsp") -> Canceller:
    """The named canceller: `speexdsp`, the default (README, "Echo cancellation": it keeps
    the user's voice in double talk, where AEC3's suppressor takes it away), `webrtc` or
    `speex` (pyaec, for the bench)."""
    canceller: Canceller = ENGINES[engine]()
    log.info("echo canceller: %s", canceller.name)
    return canceller


# -- whether the canceller has learnt the echo (live and offline) ----------------------------

CONVERGENCE_S = 1.0  # the echo removed is judged over the last this much of the coach's voice:
LEARNT_DB = 20.0  # ... this much and the cleaned microphone is heard (the user 20 dB under the
LOST_DB = 12.0  # coach is then over its residue); under this, the microphone as it is
REPORT_S = 10.0  # how much of the coach's voice each log of the echo removed covers
# An echo to judge: the capture while the coach speaks this far over the quiet capture (the
# least of QUIET_CHUNKS chunks heard while the coach was silent). Without it the "echo
# removed" is the preprocessor's noise suppression alone (27 dB, with no echo at all).
ECHO_OVER_QUIET_DB = 10.0
QUIET_CHUNKS = 100
SPEAKING_PEAK = 1000  # a reference chunk peaking above this (int16) is the coach speaking


class EchoJudge:
    """Has the canceller learnt the echo? Judged on the last CONVERGENCE_S of the coach's
    voice (the reference loud): the capture's power over the cleaned output's, learnt from
    LEARNT_DB, lost under LOST_DB. Until it has (and when it loses it: an underrun moved
    the echo, the echo clips), the listener hears the microphone as it is: a half-learnt
    residue is garbled speech, in which the barge-in grammar once heard "hang on" (the
    PulseAudio test, 10 dB down), and vosk heard "wait" through speexdsp at +30 dB (14 dB
    down; bench section 9, a whole session); the coach's clear voice it decodes as nothing
    (bench section 9: 0 in 840 s). Also logs what it removes every REPORT_S of the voice.
    Where the microphone hears no echo (headphones; ECHO_OVER_QUIET_DB), nothing is learnt:
    the microphone is heard as it is."""

    def __init__(self) -> None:
        self._recent: deque[tuple[float, float, int]] = deque()  # energies in, out; samples
        self._totals = [0.0, 0.0, 0]  # their sums
        self._quiet: deque[float] = deque(maxlen=QUIET_CHUNKS)  # capture power while the coach is silent
        self._told_no_echo = False
        self._report = [0.0, 0.0, 0]  # the same since the last report
        self.erle_db = 0.0
        self.learnt = False

    def update(self, capture: Samples, cleaned: Samples, reference: Samples) -> None:
        if not len(cleaned):
            return
        n = len(cleaned)
        if np.abs(reference).max(initial=0) < SPEAKING_PEAK:
            self._quiet.append(float(np.mean(np.square(capture[:n].astype(np.float64)))))
            return
        energy_in = float(np.sum(np.square(capture[:n].astype(np.float64))))
        energy_out = float(np.sum(np.square(cleaned.astype(np.float64))))
        self._recent.append((energy_in, energy_out, n))
        self._totals = [self._totals[0] + energy_in, self._totals[1] + energy_out, self._totals[2] + n]
        while self._totals[2] > CONVERGENCE_S * RATE_HZ:
            gone_in, gone_out, k = self._recent.popleft()
            self._totals = [self._totals[0] - gone_in, self._totals[1] - gone_out, self._totals[2] - k]
        if len(self._recent) == 1:  # afresh now and then: no rounding carried along
            self._totals = [energy_in, energy_out, n]
        total_in, total_out = max(self._totals[0], 0.0), max(self._totals[1], 0.0)
        self.erle_db = 10 * float(np.log10((total_in + 1.0) / (total_out + 1.0)))
        quiet = max(min(self._quiet), 1.0) if self._quiet else None
        level = total_in / max(self._totals[2], 1)  # the capture's power while the coach speaks
        echo = quiet is not None and level > quiet * 10 ** (ECHO_OVER_QUIET_DB / 10)
        # Learnt from half a second of the coach's voice on: over its first frames the echo
        # has not arrived yet (the device's latency), and the noise suppressor's quiet output
        # looked like 35 dB removed (learnt at 0.12 s, lost at 0.18 s, offline).
        judged = self._totals[2] >= CONVERGENCE_S * RATE_HZ / 2
        if self.learnt != (echo and judged and self.erle_db >= (LOST_DB if self.learnt else LEARNT_DB)):
            self.learnt = not self.learnt
            if self.learnt:
                log.info(
                    "echo canceller: the coach's voice is %.0f dB down; it can be interrupted", self.erle_db
                )
            elif echo:
                log.info("echo canceller: only %.0f dB down; the microphone is heard as it is until "
                         "the canceller has learnt the echo again", self.erle_db)  # fmt: skip
            else:
                log.info("echo canceller: the coach's echo is gone; the microphone is heard as it is")
        full = self._totals[2] >= CONVERGENCE_S * RATE_HZ * 0.95  # (a second of it: not its first words)
        if full and quiet is not None and not echo and not self._told_no_echo:
            self._told_no_echo = True
            log.info("echo canceller: no echo of the coach in the microphone (headphones?); it is heard "
                     "as it is")  # fmt: skip
        self._report[0] += energy_in
        self._report[1] += energy_out
        self._report[2] += n
        if self._report[2] >= REPORT_S * RATE_HZ:
            removed_db = 10 * float(np.log10((self._report[0] + 1.0) / (self._report[1] + 1.0)))
            log.info("echo cancelled: %.1f dB less while the coach spoke (last %.0f s of its voice)",
                     removed_db, REPORT_S)  # fmt: skip
            self._report = [0.0, 0.0, 0]
