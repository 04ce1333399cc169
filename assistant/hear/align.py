"""Live echo cancellation: the coach's output as the canceller's reference, aligned with the
microphone (README, "Echo cancellation").

The player's audio callback hands `LiveEcho` every block it gives the device, stamped with
PortAudio's DAC time and the player's session frame; the listening thread hands it every
microphone chunk, stamped with its ADC time, and gets it back with the coach's voice
removed (assistant/hear/echo.py's canceller), once `EchoJudge` says the canceller has
learnt the echo. `Clock` keeps each stream's count and its stamps in step.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.hear.capture import Chunk
from assistant.hear.echo import SPEAKING_PEAK, Canceller, EchoJudge, EchoStage
from assistant.pcm import RATE_HZ, Samples

log = logging.getLogger(__name__)

AHEAD_S = 0.06  # the reference is what sounds this much after the capture's time (PortAudio's
# clocks): the echo then comes after its reference (the canceller's filter looks back, echo.FILTER_MS),
# even when the clocks' estimates are off (they wander by 10 ms and more on a loaded machine)
JUMP_S = 0.04  # a stamp this far from the samples' count is a real step (an underrun, a reopen)
NUDGE_S = 0.01  # ... a smoothed difference this large is drift, followed in a step of its size
SMOOTH_S = 20.0  # the smoothing of the difference between stamps and counts (a time constant)
KEEP_S = 2.0  # reference audio kept behind the newest sample asked for
TRACK_S = 1.0  # the echo's delay is measured over this much capture ...
TRACK_EVERY_S = 0.5  # ... this often, while the coach speaks
EARLY_S, LATE_S = 0.05, 0.4  # ... looking for it this much before and after its reference
TARGET_LAG_S = 0.02  # ... and kept this long after it (the filter then holds the room's tail)
MIN_COEFFICIENT = 0.3  # the correlation coefficient of an echo (the user's voice alone: under 0.1)
DECIMATE = 4  # ... at a quarter of the rate (the delay to 0.25 ms: well within AGREE)
AGREE = 16  # samples (1 ms): two measurements this close agree; a move smaller is not made
DRIFT_SPAN_S = 60.0  # the drift is the slope of the echo's place against the capture's count over this long
DRIFT_MIN_S = 10.0  # ... once its measurements span this much
DRIFT_SIGMAS = 3.0  # ... and it stands this many standard errors away from none
STEP_SAMPLES = 32  # a measurement this far (2 ms) off that line: the echo moved at once (a device opened
# again), and the line starts afresh (the drift found so far stays: it is the clocks')
HALF_TAPS = 8  # the reference at a fraction of a sample: a windowed sinc this many samples either side
MAX_GAP_S = 10.0  # a longer jump of the player's frames starts the reference afresh
PLAYED_BLOCKS = 1000  # blocks of output kept for the listening thread (1024 frames: 46 s at 22 kHz)


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
        self.jumped = False  # the last re-anchoring was a jump (not a nudge)

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
            self.jumped = True
            return True
        self._error_s += (error - self._error_s) * min(1.0, since / SMOOTH_S)
        if abs(self._error_s) > NUDGE_S:
            self.anchor_i, self.anchor_s = i, self.time_of(i) + self._error_s
            self._error_s = 0.0
            self.steps += 1
            self.jumped = False
            return True
        return False


def _decimated(samples: Samples) -> npt.NDArray[np.float32]:
    """`samples` averaged over each DECIMATE of them (the rest dropped), in single precision."""
    whole = len(samples) - len(samples) % DECIMATE
    mean: npt.NDArray[np.float32] = samples[:whole].astype(np.float32).reshape(-1, DECIMATE).mean(axis=1)
    return mean


def fast_length(n: int) -> int:
    """The least length >= `n` whose only prime factors are 2, 3 and 5 (a fast FFT)."""
    best = 1 << max(0, (n - 1).bit_length())
    five = 1
    while five < best:
        three = five
        while three < best:
            length = three << max(0, (-(-n // three) - 1).bit_length())  # times a power of two >= n
            best = min(best, length)
            three *= 3
        five *= 5
    return best


def _line(points: deque[tuple[int, float]]) -> tuple[float, float, float]:
    """The least-squares line through `points`: slope, intercept and the slope's standard
    error (from the scatter about the line)."""
    xs, ys = np.array(points, np.float64).T
    mean_x, mean_y = float(xs.mean()), float(ys.mean())
    spread = float(np.sum((xs - mean_x) ** 2))
    slope = float(np.sum((xs - mean_x) * (ys - mean_y)) / spread)
    residual = ys - mean_y - slope * (xs - mean_x)
    error = float(np.sqrt(np.sum(residual**2) / max(len(xs) - 2, 1) / spread))
    return slope, mean_y - slope * mean_x, error


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

    def __init__(self, canceller: Canceller, ahead_s: float = AHEAD_S, offline: bool = False) -> None:
        """`ahead_s`: the reference for a capture sample is what sounds this long after it,
        by the clocks. `offline` (`run --in`, assistant/app/offline.py): the session has
        decided its output only up to the capture less `-ahead_s`, so the reference is never
        read later than that: the echo's delay moves it earlier only, and a drift that brings
        the echo closer than that is followed no further."""
        self.stage = EchoStage(canceller)
        self._ahead_s = ahead_s
        self._latest = round(ahead_s * RATE_HZ) if offline else None
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
        self._moved = False  # a clock moved since the shift was worked out ...
        self._jumped = False  # ... at once (not a nudge)
        self.realigned = 0
        self._fine = 0  # samples added to the shift where the echo itself showed its delay
        self._recent = np.zeros(0, np.int16)  # the last TRACK_S of capture
        self._since_tracked = 0  # capture samples since the delay was last measured
        self._last_lag: int | None = None
        self.delay_s: float | None = None  # the echo's delay after its reference, last measured
        # Drift: the echo's place (its reference index less the capture's) measured over time
        self._places: deque[tuple[int, float]] = deque()  # (capture index, place)
        self._off: float | None = None  # the last place off their line, if the last was
        self.drift = 0.0  # reference samples per capture sample, less 1, followed now
        self._slide = 0.0  # samples the reference has moved by the drift so far
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
        if self._in.stamp(self._captured, chunk.adc_s if self._portaudio else chunk.clock_s):
            self._moved = True
            self._jumped |= self._in.jumped
        if self._moved or self._shift is None:
            self._align()
        start = self._captured + (self._shift or 0) + self._fine + self._slide
        if self._latest is not None:
            start = min(start, self._captured + self._latest)
        if self.drift or self._slide:
            reference = self._drifting(start, n)
            self._slide += n * self.drift
        else:
            reference = self._reference(round(start), n)
        self._captured += n
        self._follow_delay(chunk.samples)
        cleaned = self.stage.feed(chunk.samples, reference)
        raw = self.stage.fed
        self.judge.update(raw, cleaned, reference)
        heard = cleaned if self.judge.learnt else raw
        return Chunk(heard, chunk.end_s - self.stage.pending / RATE_HZ, cancelled=self.judge.learnt)

    @property
    def canceller(self) -> Canceller:
        return self.stage.canceller

    @canceller.setter
    def canceller(self, canceller: Canceller) -> None:
        self.stage.canceller = canceller

    def _fall_back(self) -> None:
        log.info("the audio devices give no DAC/ADC times: echo aligned by the callbacks' clock")
        self._portaudio = False
        self._out, self._in = Clock(RATE_HZ), Clock(RATE_HZ)
        self._shift = None
        self._places.clear()

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
                self._moved = True
                self._jumped |= self._out.jumped
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
        t = self._in.time_of(self._captured) + self._ahead_s
        index = self._out.anchor_i + (t - self._out.anchor_s) * RATE_HZ
        shift = round(index) - self._captured
        jumped, self._moved, self._jumped = self._jumped, False, False
        if self._shift is not None and shift != self._shift:
            if self._places and not jumped:
                # A nudge is the clocks' drift, which the echo's measured place already
                # follows (`_follow_drift`): moving the reference by it would make the filter
                # learn the room again (10 ms at a time, every 50 s at 200 ppm).
                self._fine -= shift - self._shift
            else:
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
        slid = round(self._slide - window * self.drift)  # the drift's slide at the window's start
        first = self._captured - window + self._shift + self._fine + slid  # the reference of its start
        reference = self._reference(first - late, window + late + early, forget=False)
        if np.abs(reference).max(initial=0) < SPEAKING_PEAK:
            self._last_lag = None
            return
        # Looked for at RATE_HZ / DECIMATE (both signals averaged over DECIMATE samples: the
        # same filter on both, so the peak stays where it is; speech's energy is low), in
        # single precision at a length of small factors: bench section 10 counted the search
        # at 16 kHz as a fifth of the hear path's instructions while the coach speaks.
        ref, recent = _decimated(reference), _decimated(self._recent)
        late_d, early_d, n = late // DECIMATE, early // DECIMATE, len(recent)
        size = fast_length(len(ref) + n)
        spectrum = np.conj(np.fft.rfft(recent, size))
        corr = np.fft.irfft(spectrum * np.fft.rfft(ref, size), size)
        # The correlation coefficient at each lag: the echo stands out of the user's voice
        # and of the coach's own rhythm (its words correlate with themselves at other lags).
        energy = np.concatenate(([0.0], np.cumsum(ref.astype(np.float64) ** 2)))
        windows = energy[n : n + late_d + early_d + 1] - energy[: late_d + early_d + 1]
        norm = np.sqrt(np.maximum(windows, 1.0) * max(float(np.sum(recent.astype(np.float64) ** 2)), 1.0))
        coefficient = np.abs(corr[: late_d + early_d + 1]) / norm  # index k: the echo `late_d - k` late
        k = int(np.argmax(coefficient))
        if coefficient[k] < MIN_COEFFICIENT or k in (0, late_d + early_d):  # (at an end: beyond the range)
            self._last_lag = None
            return
        lag = (late_d - k) * DECIMATE
        self.delay_s = lag / RATE_HZ
        before, at, after = coefficient[k - 1 : k + 2]  # the peak between samples (a parabola)
        curve = before - 2 * at + after
        between = 0.5 * (before - after) / curve if curve < 0 else 0.0
        place = first - (self._captured - window) - (late_d - k - between) * DECIMATE
        self._follow_drift(self._captured - window // 2, place)
        target = round(TARGET_LAG_S * RATE_HZ)
        if self._latest is not None:  # never read later than `_latest`: the echo may stay later
            target = min(target, lag + self._latest - (self._shift + self._fine + round(self._slide)))
        if self._last_lag is not None and abs(lag - self._last_lag) <= AGREE and abs(lag - target) > AGREE:
            self._fine += target - lag
            log.info("echo %.1f ms after its reference: the reference moved by %+.1f ms",
                     lag * 1000 / RATE_HZ, (target - lag) * 1000 / RATE_HZ)  # fmt: skip
            self._last_lag = None
            return
        self._last_lag = lag

    def _follow_drift(self, captured: int, place: float) -> None:
        """The echo's `place` (the reference index it comes from, less the capture index
        `captured`) measured: the drift between the output's and the input's clocks is the
        slope of the places over the last DRIFT_SPAN_S, followed once it is clear of the
        measurements' scatter. A speaker and a microphone on two clocks (a DAC and a USB
        microphone) slide apart by up to 0.2 ms a second; an adaptive filter does not follow
        an echo that slides, and moved a sample at a time it learns the room again at each
        move, so the reference is read at the drift's rate instead, between samples
        (`_drifting`)."""
        places = self._places
        if len(places) >= 5:
            slope, intercept, _ = _line(places)
            if abs(slope * captured + intercept - place) > STEP_SAMPLES:
                # Off the line: a step when the next measurement agrees (one stray peak is not)
                off, self._off = self._off, place
                if off is None or abs(place - off) > AGREE:
                    return
                log.info("the echo moved at once by %+.1f ms: its drift is measured afresh",
                         (place - slope * captured - intercept) * 1000 / RATE_HZ)  # fmt: skip
                places.clear()
        self._off = None
        places.append((captured, place))
        while captured - places[0][0] > DRIFT_SPAN_S * RATE_HZ:
            places.popleft()
        if len(places) < 5 or captured - places[0][0] < DRIFT_MIN_S * RATE_HZ:
            return
        slope, _, error = _line(places)
        drift = slope if abs(slope) > DRIFT_SIGMAS * error else 0.0
        if (drift == 0.0) != (self.drift == 0.0):
            state = "followed" if drift else "not clear, not followed"
            log.info("clock drift %+.0f ppm (+-%.0f) between the speaker and the microphone: %s",
                     slope * 1e6, error * 1e6, state)  # fmt: skip
        self.drift = drift

    def _drifting(self, start: float, n: int) -> Samples:
        """Reference samples at `start`, `start + 1 + drift`, ... (`n` of them): between
        samples, by a windowed sinc (HALF_TAPS either side; speech is band-limited well
        below 8 kHz)."""
        at = start + np.arange(n) * (1.0 + self.drift)
        whole = np.floor(at)
        first = int(whole[0]) - HALF_TAPS + 1
        source = self._reference(first, int(whole[-1]) - first + HALF_TAPS + 1).astype(np.float32)
        taps = np.arange(-HALF_TAPS + 1, HALF_TAPS + 1)
        offset = taps[None, :] - (at - whole)[:, None]  # each tap's distance from the wanted point
        weights = (np.sinc(offset) * (0.5 + 0.5 * np.cos(np.pi * offset / HALF_TAPS))).astype(np.float32)
        values = np.sum(source[(whole - first).astype(np.intp)[:, None] + taps[None, :]] * weights, axis=1)
        out: Samples = np.clip(np.round(values), -32768, 32767).astype(np.int16)
        return out

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
