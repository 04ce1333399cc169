"""A WAV file standing in for the microphone: 30 ms chunks at 16 kHz, read a block at a time."""

from __future__ import annotations

import tracemalloc
import wave
from pathlib import Path

import numpy as np

from assistant.hear.capture import CHUNK_FRAMES, wav_chunks
from assistant.pcm import RATE_HZ, Audio, resample
from assistant.speak.wav import read_wav


def _stereo_48k(path: Path, seconds: float) -> np.ndarray:
    """A 48 kHz stereo recording of a sweep, written a second at a time; returns its mono mix."""
    rate = 48_000
    t = np.arange(round(seconds * rate)) / rate
    mono = (8000 * np.sin(2 * np.pi * (200 + 40 * t) * t)).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        for start in range(0, len(mono), rate):
            block = mono[start : start + rate]
            out.writeframes(np.column_stack([block, block]).astype("<i2").tobytes())
    return mono


def test_chunks_are_the_recording_at_16_khz(tmp_path: Path) -> None:
    mono = _stereo_48k(tmp_path / "r.wav", 5.0)
    chunks = list(wav_chunks(tmp_path / "r.wav"))
    assert (
        all(len(c.samples) == CHUNK_FRAMES for c in chunks[:-1])
        and 0 < len(chunks[-1].samples) <= CHUNK_FRAMES
    )
    fed = np.concatenate([c.samples for c in chunks])
    assert [c.end_s for c in chunks] == [round(sum(len(d.samples) for d in chunks[: i + 1])) / RATE_HZ
                                         for i in range(len(chunks))]  # fmt: skip
    whole = resample(Audio(mono, 48_000), RATE_HZ).samples
    assert abs(len(fed) - len(whole)) <= 1
    n = min(len(fed), len(whole))
    assert np.abs(fed[:n].astype(int) - whole[:n]).max() <= 2  # streaming resampling agrees with whole-file


def test_a_16_khz_mono_file_is_fed_as_it_is(tmp_path: Path) -> None:
    samples = np.random.default_rng(1).normal(0, 3000, RATE_HZ * 2 + 100).astype(np.int16)
    with wave.open(str(tmp_path / "m.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        out.writeframes(samples.tobytes())
    fed = np.concatenate([c.samples for c in wav_chunks(tmp_path / "m.wav")])
    assert np.array_equal(fed, samples) and np.array_equal(read_wav(tmp_path / "m.wav").samples, samples)


def test_memory_stays_flat_in_the_length_of_the_file(tmp_path: Path) -> None:
    """A 2-hour 48 kHz stereo recording took 15.9 GB: the whole file was read, converted
    and resampled at once. Here 3 minutes (35 MB on disk) pass through a few MB."""
    _stereo_48k(tmp_path / "long.wav", 180.0)
    tracemalloc.start()
    try:
        total = sum(len(chunk.samples) for chunk in wav_chunks(tmp_path / "long.wav"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert abs(total - 180 * RATE_HZ) <= 1
    assert peak < 4_000_000
