"""Finding where known clips start in a recording, by cross-correlation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from assistant.pcm import Audio, resample


def find_samples(
    samples: npt.NDArray[np.int16], probe: npt.NDArray[np.int16], around: int, window: int
) -> tuple[int, float]:
    """Where `probe` starts in `samples`, within `window` samples of `around`: (sample,
    normalised correlation; 0.0 when the recording is too short there)."""
    lo, hi = max(0, around - window), min(len(samples), around + window + len(probe))
    segment, wanted = samples[lo:hi].astype(np.float64), probe.astype(np.float64)
    if len(segment) < len(wanted) or not len(wanted):
        return around, 0.0
    size = 1 << (len(segment) + len(wanted) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(segment, size) * np.conj(np.fft.rfft(wanted, size)), size)
    # Each window's energy from a running sum (a convolution would be quadratic in its length).
    energy = np.concatenate(([0.0], np.cumsum(segment**2)))
    norms = np.sqrt(np.maximum(energy[len(wanted) :] - energy[: -len(wanted)], 0.0))
    wanted_norm = float(np.linalg.norm(wanted))
    # A window with next to no energy (digital silence) matches nothing.
    score = np.where(
        norms > 0.01 * wanted_norm, corr[: len(norms)] / np.maximum(norms * wanted_norm, 1e-9), 0.0
    )
    best = int(np.argmax(score))
    return lo + best, float(score[best])


def find_clip(recording: Audio, clip: Audio, around_s: float, window_s: float = 1.0) -> tuple[float, float]:
    """Where `clip` starts in `recording` near `around_s`: (seconds, normalised correlation)."""
    clip = resample(clip, recording.rate_hz)
    rate = recording.rate_hz
    probe = clip.samples[: min(len(clip.samples), rate)]  # its first second
    at, score = find_samples(recording.samples, probe, round(around_s * rate), round(window_s * rate))
    return (at / rate, score) if score > 0.0 else (float("nan"), 0.0)
