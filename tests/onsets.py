"""Finding where known clips start in a recording, by cross-correlation."""

from __future__ import annotations

import numpy as np

from assistant.audio import Audio, resample


def find_clip(recording: Audio, clip: Audio, around_s: float, window_s: float = 1.0) -> tuple[float, float]:
    """Where `clip` starts in `recording` near `around_s`: (seconds, normalised correlation)."""
    clip = resample(clip, recording.rate_hz)
    rate = recording.rate_hz
    probe = clip.samples[: min(len(clip.samples), rate)].astype(np.float64)  # its first second
    lo = max(0, round((around_s - window_s) * rate))
    hi = min(len(recording.samples), round((around_s + window_s) * rate) + len(probe))
    segment = recording.samples[lo:hi].astype(np.float64)
    if len(segment) < len(probe):
        return (float("nan"), 0.0)
    n = len(segment) + len(probe)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(segment, size) * np.conj(np.fft.rfft(probe, size)), size)[
        : len(segment) - len(probe) + 1
    ]
    window = np.sqrt(np.convolve(segment**2, np.ones(len(probe)), "valid"))
    probe_norm = np.linalg.norm(probe)
    # A window with next to no energy (digital silence) matches nothing.
    score = np.where(window > 0.01 * probe_norm, corr / np.maximum(window * probe_norm, 1e-9), 0.0)
    best = int(np.argmax(score))
    return ((lo + best) / rate, float(score[best]))
