"""Shared audio types: the sample format every stage speaks, and two pure helpers.

Audio is mono int16 samples plus their rate. The recognisers take `RATE_HZ`
(16 kHz); the voice speaks at its own rate; `resample` converts (soxr: fast,
high quality, wheels for aarch64). This module imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RATE_HZ = 16_000  # what every recogniser hears, and what the microphone is converted to

Samples = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Audio:
    """Mono 16-bit PCM at `rate_hz`."""

    samples: Samples
    rate_hz: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate_hz


def resample(audio: Audio, rate_hz: int) -> Audio:
    """`audio` at `rate_hz` (the same object when the rate already matches)."""
    if audio.rate_hz == rate_hz:
        return audio
    import soxr

    # In float, rounded here: soxr's own int16 output is dithered at random, so the same
    # clip would come out a sample or two apart from one call to the next.
    out = soxr.resample(audio.samples.astype(np.float32), audio.rate_hz, rate_hz, quality="HQ")
    return Audio(np.clip(np.rint(out), -32768, 32767).astype(np.int16), rate_hz)


def gain(samples: Samples, volume: float) -> Samples:
    """`samples` scaled by `volume` (0 to 1), rounded and clipped to int16."""
    if volume == 1.0:
        return samples
    scaled = np.rint(samples.astype(np.float32) * np.float32(volume))
    out: Samples = np.clip(scaled, -32768, 32767).astype(np.int16)
    return out
