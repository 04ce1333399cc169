"""WAV in and out in every supported format, resampling and gain."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import AudioFileError
from assistant.pcm import Audio
from assistant.speak.wav import read_wav, write_wav


def _tone(rate: int, seconds: float, hz: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * hz * t)


def test_roundtrip_16_bit(tmp_path: Path) -> None:
    samples = (np.arange(-1000, 1000, 3) * 16).astype(np.int16)
    write_wav(tmp_path / "a.wav", Audio(samples, 16000))
    back = read_wav(tmp_path / "a.wav")
    assert back.rate_hz == 16000 and np.array_equal(back.samples, samples)
    with wave.open(str(tmp_path / "a.wav")) as w:  # a standard reader agrees
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
    assert (tmp_path / "a.wav").stat().st_mode & 0o777 == 0o644  # not private: the user's audio


def _write_raw(path: Path, tag: int, channels: int, rate: int, bits: int, data: bytes) -> None:
    byte_rate = rate * channels * bits // 8 & 0xFFFFFFFF  # as a 32-bit header field holds it
    fmt = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, channels * bits // 8, bits)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize(("tag", "bits", "dtype", "scale"), [(1, 32, "<i4", 2**31 - 1), (3, 32, "<f4", 1.0)])
def test_32_bit_stereo_is_mixed_to_mono(
    tmp_path: Path, tag: int, bits: int, dtype: str, scale: float
) -> None:
    left, right = _tone(44100, 0.1), _tone(44100, 0.1, amp=0.25)
    frames = np.stack([left, right], axis=1) * scale
    _write_raw(tmp_path / "s.wav", tag, 2, 44100, bits, frames.astype(dtype).tobytes())
    audio = read_wav(tmp_path / "s.wav")
    assert audio.rate_hz == 44100 and len(audio.samples) == len(left)
    expected = np.rint((left + right) / 2 * 32768)
    assert np.max(np.abs(audio.samples - expected)) <= 1


def test_24_bit(tmp_path: Path) -> None:
    values = np.array([0, 1 << 8, -(1 << 8), 8388607, -8388608], dtype=np.int32)
    data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
    _write_raw(tmp_path / "t.wav", 1, 1, 8000, 24, data)
    assert read_wav(tmp_path / "t.wav").samples.tolist() == [0, 1, -1, 32767, -32768]


@pytest.mark.parametrize("blob", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b"hello world, not audio"])
def test_unreadable_wav(tmp_path: Path, blob: bytes) -> None:
    (tmp_path / "bad.wav").write_bytes(blob)
    with pytest.raises(AudioFileError, match=r"bad\.wav: not a readable WAV file"):
        read_wav(tmp_path / "bad.wav")


def test_8_bit_is_refused(tmp_path: Path) -> None:
    _write_raw(tmp_path / "u8.wav", 1, 1, 8000, 8, bytes(100))
    with pytest.raises(AudioFileError, match="unsupported format"):
        read_wav(tmp_path / "u8.wav")


@pytest.mark.parametrize("rate", [4_294_967_295, 384_001, 999])
def test_absurd_rates_are_refused(tmp_path: Path, rate: int) -> None:
    _write_raw(tmp_path / "r.wav", 1, 1, rate, 16, bytes(100))
    with pytest.raises(
        AudioFileError, match=rf"r\.wav: not a readable WAV file \(unsupported .* {rate} Hz\)"
    ):
        read_wav(tmp_path / "r.wav")


@pytest.mark.parametrize("rate", [1000, 384_000])
def test_rates_at_the_bounds_are_read(tmp_path: Path, rate: int) -> None:
    _write_raw(tmp_path / "r.wav", 1, 1, rate, 16, bytes(100))
    assert read_wav(tmp_path / "r.wav").rate_hz == rate


def test_nan_and_infinity_in_a_float_wav(tmp_path: Path) -> None:
    """Warnings are errors in the tests: a numpy cast warning fails this."""
    values = np.array([np.nan, np.inf, -np.inf, 0.5, np.nan, 0.25], dtype="<f4")
    _write_raw(tmp_path / "n.wav", 3, 2, 16000, 32, values.tobytes())
    # NaN is silence, infinity full scale: (0 + 1) / 2, (-1 + 0.5) / 2, (0 + 0.25) / 2
    assert read_wav(tmp_path / "n.wav").samples.tolist() == [16384, -8192, 4096]
