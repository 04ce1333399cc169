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
- `EchoStage` turns any chunking of the capture into 10 ms frames for a canceller,
  keeping the remainder between calls; the caller says which reference goes with them.

The offline runner (`backstretch run --in`) uses the coach's own rendered output as the
reference (assistant/app/offline.py); live, `LiveEcho` takes the blocks the player hands
the device and aligns them with the microphone's (README, "Echo cancellation").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections import deque
from typing import Any, Protocol

import numpy as np

from assistant.errors import DeviceError
from assistant.hear.capture import Chunk
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
    ptr, i16p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16)
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_state_init.restype = ptr
    lib.speex_echo_ctl.argtypes = [ptr, ctypes.c_int, ptr]
    lib.speex_echo_ctl.restype = ctypes.c_int
    lib.speex_echo_cancellation.argtypes = [ptr, i16p, i16p, i16p]
    lib.speex_echo_cancellation.restype = None
    lib.speex_echo_state_destroy.argtypes = [ptr]
    lib.speex_echo_state_destroy.restype = None
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_state_init.restype = ptr
    lib.speex_preprocess_ctl.argtypes = [ptr, ctypes.c_int, ptr]
    lib.speex_preprocess_ctl.restype = ctypes.c_int
    lib.speex_preprocess_run.argtypes = [ptr, i16p]
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

    def __init__(self, filter_ms: int = 300, preprocess: bool = True, set_rate: bool = False) -> None:
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
        i16p = ctypes.POINTER(ctypes.c_int16)
        out = np.empty(FRAME_SAMPLES, np.int16)
        cleaned = out.ctypes.data_as(i16p)
        self._lib.speex_echo_cancellation(
            self._echo, rec.ctypes.data_as(i16p), play.ctypes.data_as(i16p), cleaned
        )
        if self._pre is not None:
            self._lib.speex_preprocess_run(self._pre, cleaned)  # in place
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


# -- live: the player's output as the reference, aligned with the microphone ----------------

AHEAD_S = 0.06  # the reference is what sounds this much after the capture's time (PortAudio's
# clocks): the echo then comes after its reference (the canceller's filter looks back, 300 ms),
# even when the clocks' estimates are off (they wander by 10 ms and more on a loaded machine)
JUMP_S = 0.04  # a stamp this far from the samples' count is a real step (an underrun, a reopen)
NUDGE_S = 0.01  # ... a smoothed difference this large is drift, followed in a step of its size
SMOOTH_S = 20.0  # the smoothing of the difference between stamps and counts (a time constant)
KEEP_S = 2.0  # reference audio kept behind the newest sample asked for
CONVERGENCE_S = 1.0  # the echo removed is judged over the last this much of the coach's voice:
LEARNT_DB = 20.0  # ... this much and the cleaned microphone is heard (the user 20 dB under the
LOST_DB = 12.0  # coach is then over its residue); under this, the microphone as it is
REPORT_S = 10.0  # how much of the coach's voice each log of the echo removed covers
SPEAKING_PEAK = 1000  # a reference chunk peaking above this (int16) is the coach speaking
TRACK_S = 1.0  # the echo's delay is measured over this much capture ...
TRACK_EVERY_S = 0.5  # ... this often, while the coach speaks
EARLY_S, LATE_S = 0.05, 0.4  # ... looking for it this much before and after its reference
TARGET_LAG_S = 0.02  # ... and kept this long after it (the filter then holds the room's tail)
MIN_COEFFICIENT = 0.3  # the correlation coefficient of an echo (the user's voice alone: under 0.1)
AGREE = 16  # samples (1 ms): two measurements this close agree; a move smaller is not made
MAX_GAP_S = 10.0  # a longer jump of the player's frames starts the reference afresh
PLAYED_BLOCKS = 1000  # blocks of output kept for the listening thread (1024 frames: 46 s at 22 kHz)


class EchoJudge:
    """Has the canceller learnt the echo? Judged on the last CONVERGENCE_S of the coach's
    voice (the reference loud): the capture's power over the cleaned output's, learnt from
    LEARNT_DB, lost under LOST_DB. Until it has (and when it loses it: an underrun moved
    the echo, the echo clips), the listener hears the microphone as it is: a half-learnt
    residue is garbled speech, in which the barge-in grammar once heard "hang on" (the
    PulseAudio test, 10 dB down), and vosk heard "wait" through speexdsp at +30 dB (14 dB
    down; bench section 9, a whole session); the coach's clear voice it decodes as nothing
    (bench section 9: 0 in 840 s). Also logs what it removes every REPORT_S of the voice."""

    def __init__(self) -> None:
        self._recent: deque[tuple[float, float, int]] = deque()  # energies in, out; samples
        self._report = [0.0, 0.0, 0]  # the same since the last report
        self.erle_db = 0.0
        self.learnt = False
        self.removed_db: float | None = None  # the last report's

    def update(self, capture: Samples, cleaned: Samples, reference: Samples) -> None:
        if not len(cleaned) or np.abs(reference).max(initial=0) < SPEAKING_PEAK:
            return
        n = len(cleaned)
        energy_in = float(np.sum(np.square(capture[:n].astype(np.float64))))
        energy_out = float(np.sum(np.square(cleaned.astype(np.float64))))
        self._recent.append((energy_in, energy_out, n))
        while sum(k for _, _, k in self._recent) > CONVERGENCE_S * RATE_HZ:
            self._recent.popleft()
        total_in = sum(e for e, _, _ in self._recent)
        total_out = sum(e for _, e, _ in self._recent)
        self.erle_db = 10 * float(np.log10((total_in + 1.0) / (total_out + 1.0)))
        if self.learnt != (self.erle_db >= (LOST_DB if self.learnt else LEARNT_DB)):
            self.learnt = not self.learnt
            if self.learnt:
                log.info(
                    "echo canceller: the coach's voice is %.0f dB down; it can be interrupted", self.erle_db
                )
            else:
                log.info("echo canceller: only %.0f dB down; the microphone is heard as it is until "
                         "the canceller has learnt the echo again", self.erle_db)  # fmt: skip
        self._report[0] += energy_in
        self._report[1] += energy_out
        self._report[2] += n
        if self._report[2] >= REPORT_S * RATE_HZ:
            self.removed_db = 10 * float(np.log10((self._report[0] + 1.0) / (self._report[1] + 1.0)))
            log.info("echo cancelled: %.1f dB less while the coach spoke (last %.0f s of its voice)",
                     self.removed_db, REPORT_S)  # fmt: skip
            self._report = [0.0, 0.0, 0]


class Clock:
    """A stream of samples at `rate_hz` and the times its stamps give them: sample i sounds
    (or was captured) at `anchor_s + (i - anchor_i) / rate_hz`. The stamps jitter, the
    count does not, so the count is believed until the stamps disagree: at once by JUMP_S
    (the device inserted or dropped audio, or was opened again), or on average by NUDGE_S
    (the device's clock runs at another rate than the system's: drift)."""

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.anchor_i = 0.0
        self.anchor_s: float | None = None
        self._error_s = 0.0  # smoothed: stamp less count
        self._last_s: float | None = None
        self.steps = 0  # re-anchorings (jumps and nudges)

    def time_of(self, i: float) -> float:
        assert self.anchor_s is not None
        return self.anchor_s + (i - self.anchor_i) / self.rate_hz

    def stamp(self, i: float, t: float) -> bool:
        """Sample `i` is stamped `t`; True when the clock moved (its samples' times changed)."""
        if self.anchor_s is None:
            self.anchor_i, self.anchor_s, self._last_s = i, t, t
            return True
        error = t - self.time_of(i)
        since = max(0.0, t - (self._last_s if self._last_s is not None else t))
        self._last_s = t
        if abs(error) > JUMP_S:
            self.anchor_i, self.anchor_s, self._error_s = i, t, 0.0
            self.steps += 1
            return True
        self._error_s += (error - self._error_s) * min(1.0, since / SMOOTH_S)
        if abs(self._error_s) > NUDGE_S:
            self.anchor_i, self.anchor_s = i, self.time_of(i) + self._error_s
            self._error_s = 0.0
            self.steps += 1
            return True
        return False


class LiveEcho:
    """Echo cancellation live: the samples the player hands the output device, stamped with
    PortAudio's DAC time (when they will sound), are the reference for the microphone's
    samples, stamped with its ADC time (when they were heard). Both times are on one clock,
    so the reference for a capture sample is what sounds AHEAD_S after it (the player hands
    its blocks to the device well before they sound); the canceller finds the rest of the
    delay (AHEAD_S, the room, what the clocks do not see) itself, within its filter.

    The output and input may be different devices with their own clocks (a DAC and a USB
    microphone): each stream's samples are counted, and their stamps only move the count's
    times when they disagree with it (`Clock`). A step (an underrun, a device reopened)
    moves the alignment at once; drift, a little at a time.

    `played` runs in the output callback and only appends; the listening thread does the
    rest in `clean`. A host API that gives no DAC or ADC time (0) falls back, for both
    streams at once, to the times of the callbacks plus each stream's latency."""

    def __init__(self, canceller: Canceller) -> None:
        self.canceller = canceller
        self.stage = EchoStage(canceller)
        # (dac, clock, block, rate); bounded: while no microphone takes them, the oldest go
        self._played: deque[tuple[float, float, Samples, int, int]] = deque(maxlen=PLAYED_BLOCKS)
        self._portaudio = True  # both streams give PortAudio times
        self._resampler: Any = None  # the output's rate to 16 kHz, for the stream now open
        self._rate_hz: int | None = None  # the output's rate now
        self._segment = 0  # the 16 kHz reference index where the output's samples last began anew
        self._segment_frame = 0  # ... and the player's frame there
        self._next_frame = 0  # the player's frame after the last block
        self._out = Clock(RATE_HZ)  # the reference's 16 kHz samples
        self._in = Clock(RATE_HZ)  # the capture's
        self._ref = np.zeros(0, np.int16)  # 16 kHz reference from index `_ref_base` on
        self._ref_base = 0
        self._captured = 0  # capture samples so far
        self._shift: int | None = None  # reference index = capture index + shift
        self.realigned = 0
        self._fine = 0  # samples added to the shift where the echo itself showed its delay
        self._recent = np.zeros(0, np.int16)  # the last TRACK_S of capture
        self._since_tracked = 0  # capture samples since the delay was last measured
        self._last_lag: int | None = None
        self.delay_s: float | None = None  # the echo's delay after its reference, last measured
        # What it removes while the coach speaks (logged every REPORT_S of the coach's voice)
        self.judge = EchoJudge()

    # -- the output callback's side -------------------------------------------------

    def played(self, dac_s: float, clock_s: float, block: Samples, rate_hz: int, frame: int) -> None:
        """`block` goes to the output device now; its first sample sounds at `dac_s`
        (PortAudio's DAC time, 0 when unknown) or, by the callback's clock, `clock_s`, and is
        the player's `frame` (where a frame is skipped, the device played silence)."""
        self._played.append((dac_s, clock_s, block, rate_hz, frame))

    # -- the listening thread's side --------------------------------------------------

    def clean(self, chunk: Chunk) -> Chunk:
        """`chunk` with the coach's voice removed: its whole 10 ms frames (the rest goes out
        with the next chunk), stamped with the audio time of its last cleaned sample."""
        self._take_played()
        n = len(chunk.samples)
        if self._portaudio and not chunk.adc_s:
            self._fall_back()
        moved = self._in.stamp(self._captured, chunk.adc_s if self._portaudio else chunk.clock_s)
        if moved or self._shift is None:
            self._align()
        reference = self._reference(self._captured + (self._shift or 0) + self._fine, n)
        self._captured += n
        self._follow_delay(chunk.samples)
        cleaned = self.stage.feed(chunk.samples, reference)
        raw = self.stage.fed
        self.judge.update(raw, cleaned, reference)
        heard = cleaned if self.judge.learnt else raw
        return Chunk(heard, chunk.end_s - self.stage.pending / RATE_HZ)

    def _fall_back(self) -> None:
        log.info("the audio devices give no DAC/ADC times: echo aligned by the callbacks' clock")
        self._portaudio = False
        self._out, self._in = Clock(RATE_HZ), Clock(RATE_HZ)
        self._shift = None

    def _take_played(self) -> None:
        while self._played:
            dac_s, clock_s, block, rate, frame = self._played.popleft()
            if self._portaudio and not dac_s:
                self._fall_back()
            gap = frame - self._next_frame
            if rate != self._rate_hz or not 0 <= gap <= MAX_GAP_S * rate:  # a new stream of samples
                self._start_segment(rate, frame)
            elif gap:  # the device played silence we never gave it (the player stepped over it)
                self._append(np.zeros(gap, np.int16))
            first = self._segment + (frame - self._segment_frame) * RATE_HZ / rate  # its 16 kHz index
            if self._out.stamp(first, dac_s if self._portaudio else clock_s):
                self._shift = None
            self._append(block)
            self._next_frame = frame + len(block)

    def _append(self, block: Samples) -> None:
        # (The resampler hands out its output a little after its input: placed by count.)
        resampled = block if self._resampler is None else self._resampler.resample_chunk(block)
        self._ref = np.concatenate([self._ref, np.asarray(resampled, dtype=np.int16)])

    def _start_segment(self, rate: int, frame: int) -> None:
        self._rate_hz, self._segment_frame, self._next_frame = rate, frame, frame
        self._segment = self._ref_base + len(self._ref)
        self._resampler = None
        if rate != RATE_HZ:
            import soxr

            self._resampler = soxr.ResampleStream(rate, RATE_HZ, 1, dtype="int16")

    def _align(self) -> None:
        """The reference index for the capture index now, from both clocks."""
        if self._out.anchor_s is None or self._in.anchor_s is None:
            self._shift = None
            return
        t = self._in.time_of(self._captured) + AHEAD_S
        index = self._out.anchor_i + (t - self._out.anchor_s) * RATE_HZ
        shift = round(index) - self._captured
        if self._shift is not None and shift != self._shift:
            self.realigned += 1
            log.info("echo reference realigned by %+.1f ms", (shift - self._shift) * 1000 / RATE_HZ)
        self._shift = shift

    def _follow_delay(self, samples: Samples) -> None:
        """Measure where the echo is against its reference (cross-correlation over the last
        TRACK_S while the coach spoke) and, when two measurements agree that it is off
        TARGET_LAG_S, move the reference by as much. The clocks place it within tens of ms;
        the echo path still moves: the device's own latency changes (a PulseAudio loopback
        adjusts its rate; an underrun the player measured to a few ms), and an adaptive
        filter must then learn the room again. Kept where it is, the filter stays right."""
        window = round(TRACK_S * RATE_HZ)
        self._recent = np.concatenate([self._recent, samples])[-window:]
        self._since_tracked += len(samples)
        due = self._since_tracked >= TRACK_EVERY_S * RATE_HZ and len(self._recent) == window
        if not due or self._shift is None:
            return
        self._since_tracked = 0
        early, late = round(EARLY_S * RATE_HZ), round(LATE_S * RATE_HZ)
        first = self._captured - window + self._shift + self._fine  # the reference of the window's start
        reference = self._reference(first - late, window + late + early, forget=False).astype(np.float64)
        if np.abs(reference).max(initial=0) < SPEAKING_PEAK:
            self._last_lag = None
            return
        size = 1 << (len(reference) + window).bit_length()
        recent = np.fft.rfft(self._recent.astype(np.float64), size)
        corr = np.fft.irfft(np.conj(recent) * np.fft.rfft(reference, size), size)
        # The correlation coefficient at each lag: the echo stands out of the user's voice
        # and of the coach's own rhythm (its words correlate with themselves at other lags).
        energy = np.concatenate(([0.0], np.cumsum(reference**2)))
        windows = energy[window : window + late + early + 1] - energy[: late + early + 1]
        norm = np.sqrt(
            np.maximum(windows, 1.0) * max(float(np.sum(self._recent.astype(np.float64) ** 2)), 1.0)
        )
        coefficient = np.abs(corr[: late + early + 1]) / norm  # index k: the echo `late - k` samples late
        k = int(np.argmax(coefficient))
        if coefficient[k] < MIN_COEFFICIENT or k in (0, late + early):  # (at an end: beyond the range)
            self._last_lag = None
            return
        lag = late - k
        self.delay_s = lag / RATE_HZ
        target = round(TARGET_LAG_S * RATE_HZ)
        if self._last_lag is not None and abs(lag - self._last_lag) <= AGREE and abs(lag - target) > AGREE:
            self._fine += target - lag
            log.info("echo %.1f ms after its reference: the reference moved by %+.1f ms",
                     lag * 1000 / RATE_HZ, (target - lag) * 1000 / RATE_HZ)  # fmt: skip
            self._last_lag = None
            return
        self._last_lag = lag

    def _reference(self, start: int, n: int, forget: bool = True) -> Samples:
        """Reference samples `start` to `start + n` (silence where nothing was played)."""
        out = np.zeros(n, np.int16)
        lo, hi = max(start, self._ref_base), min(start + n, self._ref_base + len(self._ref))
        if lo < hi:
            out[lo - start : hi - start] = self._ref[lo - self._ref_base : hi - self._ref_base]
        behind = start - round(KEEP_S * RATE_HZ) - self._ref_base
        drop = min(len(self._ref), max(0, behind)) if forget else 0
        if drop:
            self._ref, self._ref_base = self._ref[drop:], self._ref_base + drop
        return out
