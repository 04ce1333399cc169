"""The shared audio types: resampling and gain."""

from __future__ import annotations

import numpy as np

from assistant.pcm import Audio, gain, resample


def _tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(round(rate * seconds)) / rate)


def test_resample_keeps_duration_and_pitch() -> None:
    tone = Audio(np.rint(_tone(22050, 1.0) * 20000).astype(np.int16), 22050)
    up = resample(tone, 48000)
    assert up.rate_hz == 48000 and abs(len(up.samples) - 48000) <= 1
    spectrum = np.abs(np.fft.rfft(up.samples.astype(float)))
    assert abs(np.argmax(spectrum) * 48000 / len(up.samples) - 440) < 2
    assert resample(tone, 22050) is tone


def test_gain_rounds_and_clips() -> None:
    samples = np.array([0, 100, -100, 32767, -32768], dtype=np.int16)
    assert gain(samples, 0.5).tolist() == [0, 50, -50, 16384, -16384]
    assert gain(samples, 1.0) is samples


def test_resample_is_the_same_every_time() -> None:
    """soxr's int16 output is dithered at random; a clip must resample the same twice (the
    renderer and its tests, and the cue cache, rely on it)."""
    noise = Audio(np.random.default_rng(0).normal(0, 3000, 22050).astype(np.int16), 22050)
    first = resample(noise, 16000).samples
    assert all(np.array_equal(first, resample(noise, 16000).samples) for _ in range(30))
