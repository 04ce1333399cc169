"""Endpointing: where each utterance starts and ends in a stream of 16 kHz audio.

Pure numpy, engine-neutral: any recogniser that decodes whole utterances (or
wants to gate its input) feeds chunks to an `Endpointer` and gets `Segment`s.

Why not pocketsphinx's own Endpointer: it decides on absolute level, so in
continuous noise (a fan, 10 dB white noise in the tests) it never leaves the
speech state and no utterance ever ends. Here each 20 ms frame is split into
mel-spaced bands between 250 and 4000 Hz, a noise spectrum is tracked per band,
and a frame is speech when its mean per-band SNR (negative SNRs count as 0)
passes a threshold. Speech concentrates in a few bands far above white or
fan-like noise, so this works at 10 dB SNR, where a broadband level does not.

The noise spectrum follows non-speech frames with a short time constant, and is
never allowed below the minimum of the smoothed band power over the last
`noise_window_s` (minimum statistics, with a bias factor for the minimum's
underestimate): if noise rises while the detector believes it hears speech, the
floor catches up within that window and the segment ends.

Ending early: 0.36 s of non-speech is what it takes not to cut a command at a
pause between its words ("i need ... a break"), and most of the time a command
is waiting to be answered. So an `Endpointer` may be given `complete`: after
`early_s` of non-speech the utterance so far (the same audio the full hangover
would give when the post-roll is shorter than `early_s`, as by default; vosk's is
longer, so its early offer has less quiet after the speech) is offered to it, and when it says the
utterance is a whole command, the utterance ends there.

Over the coach's own voice (`echo`, when given: was the coach speaking, or within the
Listener's tail, at this frame?) a frame is speech only when its score passes
`echo_threshold_db`. The echo canceller leaves a residual of the coach's words and of the
room's reverberation after them, some 20 dB under a quiet user yet above the noise
estimate: taken for speech, it started an utterance at the cue's end that the hangover
carried on into a command said 0.5 s later, and the whole was then "over the coach"
(barge-in phrases only) or decoded as nothing (issue 13; bench/echo.py, "commands
between cues").
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from assistant.pcm import RATE_HZ

log = logging.getLogger(__name__)

N_FFT = 512  # 31 Hz bins, for 20 ms frames zero-padded
PSD_BINS = N_FFT // 2 + 1
Samples = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VadSettings:
    """How frames are classified and grouped into utterances."""

    frame_s: float = 0.02  # decision resolution
    low_hz: float = 250.0  # the band analysed: where voiced speech has its energy
    high_hz: float = 4000.0
    bands: int = 16  # mel-spaced sub-bands between low_hz and high_hz
    threshold_db: float = 2.2  # mean per-band SNR (negative counts as 0) of a speech frame
    # The same while the coach speaks, when the caller says when (see the module's
    # docstring); None: `threshold_db`. vosk's is set in vosk_engine.VOSK_VAD.
    echo_threshold_db: float | None = None
    onset_s: float = 0.08  # this much speech within onset_window_s starts an utterance
    onset_window_s: float = 0.12
    hangover_s: float = 0.36  # this much continuous non-speech ends it
    early_s: float = 0.2  # or this much, when the decoder finds a whole command in it (`complete`)
    pre_roll_s: float = 0.2  # audio kept before the first speech frame (weak onsets like /s/)
    post_roll_s: float = 0.15  # audio kept after the last speech frame (at most hangover_s; an early
    # decision has only early_s of it)
    min_speech_s: float = 0.1  # shorter bursts (clicks, a cough) are dropped
    max_segment_s: float = 8.0  # a longer utterance is cut: nobody's command is this long
    noise_window_s: float = 2.0  # minimum-statistics window
    noise_bias: float = 1.6  # mean over minimum of the smoothed band power in stationary noise
    noise_adapt_s: float = 0.2  # time constant of the floor on non-speech frames
    floor_dbfs: float = -70.0  # the noise floor never goes below this (digital silence)


@dataclass(frozen=True)
class Segment:
    """One utterance: its audio (with pre- and post-roll) and per-frame decisions."""

    samples: Samples
    start_s: float  # audio time of samples[0]
    speech_start_s: float  # start of the first speech frame
    speech_end_s: float  # end of the last speech frame
    ended_s: float  # audio time at which the endpointer decided the utterance was over
    speech: npt.NDArray[np.bool_]  # per frame of `samples`: did it sound like speech
    frame_s: float
    noise_psd: Floats  # the noise spectrum when the utterance began (see FrameClassifier.noise_psd)

    @property
    def speech_s(self) -> float:
        return float(np.count_nonzero(self.speech)) * self.frame_s


def _mel(hz: Floats | float) -> Floats:
    return np.asarray(2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0), dtype=np.float64)


def _band_matrix(settings: VadSettings, n_fft: int) -> Floats:
    """(bands, bins) averaging matrix: each band's mean bin power."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / RATE_HZ)
    edges_mel = np.linspace(_mel(settings.low_hz), _mel(settings.high_hz), settings.bands + 1)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    matrix = np.zeros((settings.bands, len(freqs)))
    for b in range(settings.bands):
        inside = (freqs >= edges[b]) & (freqs < edges[b + 1])
        if not inside.any():  # a band narrower than a bin: take the nearest bin
            inside = np.abs(freqs - (edges[b] + edges[b + 1]) / 2) == np.min(
                np.abs(freqs - (edges[b] + edges[b + 1]) / 2)
            )
        matrix[b, inside] = 1.0 / np.count_nonzero(inside)
    return matrix


class FrameClassifier:
    """Per-frame speech decisions against a tracked per-band noise spectrum."""

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = s = settings or VadSettings()
        self.frame_len = round(s.frame_s * RATE_HZ)
        n_fft = max(N_FFT, 1 << (self.frame_len - 1).bit_length())
        if n_fft != N_FFT:
            raise ValueError(f"frame_s {s.frame_s} is too long for a {N_FFT}-point spectrum")
        self._n_fft = n_fft
        self._window = np.hanning(self.frame_len)
        self._bands = _band_matrix(s, n_fft)
        # A full-scale-relative floor: the band power white noise at floor_dbfs would give.
        sigma = 32768.0 * 10.0 ** (s.floor_dbfs / 20.0)
        self._floor = sigma**2 * float(np.sum(self._window**2))
        self._adapt = float(np.exp(-s.frame_s / s.noise_adapt_s))
        self._history = max(1, round(s.noise_window_s / s.frame_s))
        self.reset()

    def reset(self) -> None:
        """Forget the noise estimate (a new stream)."""
        self._psd: Floats | None = None
        self._noise: Floats | None = None
        self._smoothed: Floats | None = None
        # The last `_history` smoothed band powers, a ring (rows), for the minimum statistics.
        self._recent = np.zeros((self._history, self._bands.shape[0]))
        self._recent_n = 0  # rows filled so far, up to `_history`

    @property
    def noise_dbfs(self) -> float:
        """The tracked noise level, as the dBFS of white noise with the same mean band power."""
        if self._noise is None:
            return self.settings.floor_dbfs
        return self.settings.floor_dbfs + 10.0 * float(np.log10(np.mean(self._noise) / self._floor))

    @property
    def noise_psd(self) -> Floats:
        """The noise spectrum (`PSD_BINS` bins, 0 to 8 kHz) as variance per sample and bin,
        so that white noise of variance v reads v everywhere; for `denoise`."""
        if self._psd is None:
            return np.full(PSD_BINS, self._floor / float(np.sum(self._window**2)))
        return self._psd.copy()

    def classify(self, frames: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.bool_], Floats]:
        """Speech decision and mean band SNR (dB) per frame, updating the noise estimate."""
        s = self.settings
        spectrum = np.fft.rfft(frames * self._window, n=self._n_fft, axis=1)
        bins = (spectrum.real**2 + spectrum.imag**2) / float(np.sum(self._window**2))
        powers = bins @ self._bands.T * float(np.sum(self._window**2))
        speech = np.zeros(len(frames), dtype=bool)
        scores = np.zeros(len(frames))
        for i, power in enumerate(powers):
            if self._noise is None or self._smoothed is None:
                self._noise = np.maximum(power, self._floor)
                self._smoothed = power.copy()
            snr = 10.0 * np.log10(np.maximum(power, 1e-3) / self._noise)
            scores[i] = float(np.mean(np.clip(snr, 0.0, 40.0)))
            speech[i] = scores[i] > s.threshold_db
            if self._psd is None:
                self._psd = bins[i].copy()
            if not speech[i]:
                self._noise = self._adapt * self._noise + (1.0 - self._adapt) * power
                self._psd = self._adapt * self._psd + (1.0 - self._adapt) * bins[i]
            self._smoothed = 0.7 * self._smoothed + 0.3 * power
            self._recent[self._recent_n % self._history] = self._smoothed
            self._recent_n += 1
            minimum = self._recent[: min(self._recent_n, self._history)].min(axis=0)
            self._noise = np.maximum(np.maximum(self._noise, s.noise_bias * minimum), self._floor)
        return speech, scores


class Endpointer:
    """Streaming utterance detection: feed chunks, get the `Segment`s that ended in them.

    `complete`, when given, is asked after `early_s` of non-speech whether the utterance
    so far is a whole command; if it says yes, that segment is the utterance. `echo(start,
    end)` (audio seconds), when given, says whether the coach was speaking then (see the
    module's docstring)."""

    def __init__(
        self,
        settings: VadSettings | None = None,
        complete: Callable[[Segment], bool] | None = None,
        echo: Callable[[float, float], bool] | None = None,
    ) -> None:
        self.settings = s = settings or VadSettings()
        self.complete = complete
        self.echo = echo
        self.ended_early = 0  # utterances `complete` ended before the hangover
        self.classifier = FrameClassifier(s)
        self.frame_len = self.classifier.frame_len
        self._onset_frames = max(1, round(s.onset_s / s.frame_s))
        self._hangover = max(1, round(s.hangover_s / s.frame_s))
        self._post_roll = min(self._hangover, round(s.post_roll_s / s.frame_s))
        # An early decision offers the utterance with the quiet it has so far (`early_s`),
        # which may be less than the post-roll the full hangover gives.
        self._early = max(1, round(s.early_s / s.frame_s))
        self._pre_roll = round(s.pre_roll_s / s.frame_s)
        self._max_frames = round(s.max_segment_s / s.frame_s)
        self._min_speech = max(1, round(s.min_speech_s / s.frame_s))
        onset_window = max(self._onset_frames, round(s.onset_window_s / s.frame_s))
        self._onset: deque[bool] = deque(maxlen=onset_window)
        # Frames before an onset: pre-roll plus the onset window itself.
        self._before: deque[tuple[Samples, bool]] = deque(maxlen=self._pre_roll + onset_window)
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames: list[tuple[Samples, bool]] = []  # the utterance under way
        self._start_s = 0.0  # audio time of the first frame in _frames
        self._noise_psd = self.classifier.noise_psd
        self._silent = 0  # non-speech frames since the last speech frame

    @property
    def in_speech(self) -> bool:
        return bool(self._frames)

    @property
    def noise_dbfs(self) -> float:
        return self.classifier.noise_dbfs

    def reset(self) -> None:
        """Drop the utterance in progress and buffered audio; the noise estimate stays."""
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames = []
        self._before.clear()
        self._onset.clear()
        self._silent = 0

    def feed(self, samples: Samples, end_s: float) -> list[Segment]:
        """Take the next chunk (16 kHz mono) ending at audio time `end_s`."""
        buffered = np.concatenate([self._pending, np.asarray(samples, dtype=np.int16)])
        n = len(buffered) // self.frame_len
        self._pending = buffered[n * self.frame_len :]
        if n == 0:
            return []
        frames = buffered[: n * self.frame_len].reshape(n, self.frame_len)
        decisions, scores = self.classifier.classify(frames.astype(np.float64))
        # The end of frame i, counting back from the chunk's stamped end.
        step = self.settings.frame_s
        first_end = end_s - (len(self._pending) + (n - 1) * self.frame_len) / RATE_HZ
        out: list[Segment] = []
        for i in range(n):
            end = first_end + i * step
            speech = bool(decisions[i])
            echo_db = self.settings.echo_threshold_db
            if speech and echo_db is not None and self.echo is not None and scores[i] <= echo_db:
                speech = not self.echo(end - step, end)
            segment = self._step(frames[i], speech, end)
            if segment is not None:
                out.append(segment)
        return out

    def flush(self, end_s: float) -> list[Segment]:
        """End of input: close the utterance in progress, if it has enough speech."""
        self._pending = np.zeros(0, dtype=np.int16)
        segment = self._close(end_s) if self._frames else None
        self.reset()
        return [segment] if segment is not None else []

    def _step(self, frame: Samples, speech: bool, frame_end_s: float) -> Segment | None:
        if not self._frames:
            self._before.append((frame, speech))
            self._onset.append(speech)
            if sum(self._onset) >= self._onset_frames:
                # Start at the onset window's first speech frame, less the pre-roll.
                flags = [f for _, f in self._before]
                first = len(flags) - len(self._onset) + list(self._onset).index(True)
                keep = list(self._before)[max(0, first - self._pre_roll) :]
                self._frames = keep
                self._noise_psd = self.classifier.noise_psd
                self._start_s = frame_end_s - len(keep) * self.settings.frame_s
                self._silent = 0
                self._before.clear()
                self._onset.clear()
            return None
        self._frames.append((frame, speech))
        self._silent = 0 if speech else self._silent + 1
        if self._silent >= self._hangover or len(self._frames) >= self._max_frames:
            return self._close(frame_end_s)
        if self.complete is not None and self._silent == self._early < self._hangover:
            segment = self._segment(self._frames, frame_end_s)
            if segment is not None and self.complete(segment):
                self._frames, self._silent = [], 0
                self.ended_early += 1
                return segment
        return None

    def _close(self, decided_s: float) -> Segment | None:
        frames, self._frames = self._frames, []
        self._silent = 0
        return self._segment(frames, decided_s)

    def _segment(self, frames: list[tuple[Samples, bool]], decided_s: float) -> Segment | None:
        """The utterance in `frames`, trimmed to its post-roll; None if too short."""
        flags = np.array([f for _, f in frames], dtype=bool)
        if not flags.any():
            return None
        last = int(np.flatnonzero(flags)[-1])
        first = int(np.flatnonzero(flags)[0])
        frames = frames[: last + 1 + self._post_roll]
        flags = flags[: len(frames)]
        if np.count_nonzero(flags) < self._min_speech:
            log.debug(
                "dropped %.2f s of speech as too short", np.count_nonzero(flags) * self.settings.frame_s
            )
            return None
        step = self.settings.frame_s
        return Segment(
            samples=np.concatenate([f for f, _ in frames]),
            start_s=self._start_s,
            speech_start_s=self._start_s + first * step,
            speech_end_s=self._start_s + (last + 1) * step,
            ended_s=decided_s,
            speech=flags,
            frame_s=step,
            noise_psd=self._noise_psd,
        )


def denoise(samples: Samples, noise_psd: Floats, floor_db: float = -20.0, smoothing: float = 0.98) -> Samples:
    """`samples` with stationary noise of spectrum `noise_psd` suppressed.

    A Wiener gain per bin with the decision-directed a priori SNR (Ephraim and
    Malah), limited to `floor_db`, on 20 ms frames with 50 % overlap. The floor
    keeps some noise on purpose: a recogniser's silence model wants a low, even
    background, and a deeper cut leaves "musical" tones it takes for speech.
    """
    frame = round(0.02 * RATE_HZ)
    hop = frame // 2
    window = np.sqrt(np.hanning(frame + 1)[:frame])  # sqrt-Hann twice, 50 % overlap: sums to 1
    x = samples.astype(np.float64)
    n = max(1, int(np.ceil((len(x) - frame) / hop)) + 1)
    padded = np.zeros((n - 1) * hop + frame)
    padded[: len(x)] = x
    index = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    spectra = np.fft.rfft(padded[index] * window, n=N_FFT, axis=1)
    noise = np.maximum(noise_psd * float(np.sum(window**2)), 1e-6)
    gain_min = 10.0 ** (floor_db / 20.0)
    previous = np.zeros(PSD_BINS)  # |clean estimate|^2 / noise of the previous frame
    for i in range(n):
        posterior = (spectra[i].real ** 2 + spectra[i].imag ** 2) / noise
        prior = smoothing * previous + (1.0 - smoothing) * np.maximum(posterior - 1.0, 0.0)
        gain = np.maximum(prior / (1.0 + prior), gain_min)
        spectra[i] *= gain
        previous = gain**2 * posterior
    frames = np.fft.irfft(spectra, n=N_FFT, axis=1)[:, :frame] * window
    out = np.zeros_like(padded)
    np.add.at(out, index, frames)
    return np.clip(np.rint(out[: len(x)]), -32768, 32767).astype(np.int16)
