"""Where the recogniser's audio comes from (hear/capture.py): a WAV standing in for the
microphone, and the microphone itself with its callback called as PortAudio would."""

from __future__ import annotations

import time
import tracemalloc
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from assistant.hear.capture import CHUNK_FRAMES, Chunk, Microphone, wav_chunks
from assistant.pcm import RATE_HZ, Audio, resample
from assistant.speak import devices
from assistant.speak.wav import write_wav
from tests.kit.fake_audio import FakeSounddevice


def tone(rate: int, seconds: float, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(10000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def test_a_16k_wav_passes_through_in_stamped_30_ms_chunks(tmp_path: Path) -> None:
    samples = tone(RATE_HZ, 1.0)
    write_wav(tmp_path / "a.wav", Audio(samples, RATE_HZ))
    chunks = list(wav_chunks(tmp_path / "a.wav"))
    assert all(len(c.samples) == CHUNK_FRAMES for c in chunks[:-1])
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), samples)
    assert [c.end_s for c in chunks[:3]] == pytest.approx([0.03, 0.06, 0.09])
    assert chunks[-1].end_s == pytest.approx(1.0)


def test_a_wav_at_another_rate_is_resampled(tmp_path: Path) -> None:
    write_wav(tmp_path / "b.wav", Audio(tone(44100, 1.0), 44100))
    chunks = list(wav_chunks(tmp_path / "b.wav"))
    heard = np.concatenate([c.samples for c in chunks])
    assert abs(len(heard) - RATE_HZ) <= 1 and chunks[-1].end_s == pytest.approx(1.0, abs=1e-3)
    spectrum = np.abs(np.fft.rfft(heard.astype(float)))
    assert abs(np.argmax(spectrum) * RATE_HZ / len(heard) - 1000) < 2  # the same pitch


def test_an_empty_wav_gives_no_chunk(tmp_path: Path) -> None:
    write_wav(tmp_path / "e.wav", Audio(np.zeros(0, np.int16), RATE_HZ))
    assert list(wav_chunks(tmp_path / "e.wav")) == []


def _block(samples: np.ndarray, mic: Microphone, overflow: bool = False, adc_s: float = 0.0) -> None:
    """PortAudio's side: one block into the microphone's callback, heard at `adc_s`."""
    status = SimpleNamespace(input_overflow=overflow)
    when = SimpleNamespace(inputBufferAdcTime=adc_s)
    mic.take(samples.reshape(-1, 1).copy(), len(samples), when, status)


def _take(mic: Microphone, n: int) -> list[Chunk | None]:
    chunks = mic.chunks(timeout_s=0.01)
    return [next(chunks) for _ in range(n)]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeSounddevice:
    sd = FakeSounddevice(rates=(16000,), default_rate=48000)
    monkeypatch.setattr(devices, "import_sounddevice", lambda: sd)
    return sd


def test_the_microphone_clock_counts_what_it_delivered(fake: FakeSounddevice) -> None:
    mic = Microphone(None)
    mic.open()
    samples = tone(RATE_HZ, 0.09)
    for i in range(3):
        _block(samples[i * CHUNK_FRAMES : (i + 1) * CHUNK_FRAMES], mic, overflow=i == 1, adc_s=50.0 + i)
    chunks = _take(mic, 4)
    assert [c.end_s for c in chunks[:3] if c is not None] == pytest.approx([0.03, 0.06, 0.09])
    # Each chunk keeps when it was heard, for the echo canceller: PortAudio's ADC time, and
    # by the callback's clock (less the stream's latency and the block's length).
    assert [c.adc_s for c in chunks[:3] if c is not None] == [50.0, 51.0, 52.0]
    assert all(c is not None and c.clock_s < time.monotonic() - 0.05 for c in chunks[:3])
    assert np.array_equal(np.concatenate([c.samples for c in chunks[:3] if c is not None]), samples)
    assert chunks[3] is None  # nothing came within the timeout: the caller may check on things
    assert mic.now_s() == pytest.approx(0.09) and mic.overflows == 1


def test_a_microphone_at_48k_is_resampled_on_the_listening_thread(fake: FakeSounddevice) -> None:
    fake.rates = (44100, 48000)  # no 16 kHz: the device's own rate
    mic = Microphone(None)
    mic.open()
    assert fake.opened[-1].kwargs["samplerate"] == 48000
    assert fake.opened[-1].kwargs["blocksize"] == 3 * CHUNK_FRAMES  # 30 ms at the device's rate
    samples = tone(48000, 1.0)
    for start in range(0, len(samples), 3 * CHUNK_FRAMES):
        _block(samples[start : start + 3 * CHUNK_FRAMES], mic)
    chunks = [c for c in _take(mic, 34) if c is not None]
    heard = np.concatenate([c.samples for c in chunks])
    assert abs(len(heard) - RATE_HZ) < 2 * CHUNK_FRAMES  # the resampler holds back a little
    assert chunks[-1].end_s == pytest.approx(len(heard) / RATE_HZ)
    reference = resample(Audio(samples, 48000), RATE_HZ).samples
    middle = slice(2000, 10000)
    assert np.max(np.abs(heard[middle].astype(int) - reference[middle])) < 200


def test_a_vanished_microphone_is_reopened_and_its_clock_goes_on(fake: FakeSounddevice) -> None:
    mic = Microphone(None)
    mic.open()
    first = fake.opened[-1]
    _block(tone(RATE_HZ, 0.03), mic)
    first.kwargs["finished_callback"]()  # PortAudio: the stream ended (the device went away)
    first.active = False
    chunk, gone = _take(mic, 2)
    assert chunk is not None and gone is None and not mic.active()
    mic.reopen()
    assert first.closed and mic.active() and mic.now_s() == pytest.approx(0.03)
    _block(tone(RATE_HZ, 0.03), mic)
    (chunk,) = _take(mic, 1)
    assert chunk is not None and chunk.end_s == pytest.approx(0.06)


def test_closing_ends_the_chunks_and_nothing_reopens_it(fake: FakeSounddevice) -> None:
    mic = Microphone(None)
    mic.open()
    stream = fake.opened[-1]
    chunks = mic.chunks(timeout_s=0.01)
    mic.close()
    assert stream.closed and list(chunks) == []
    mic.reopen()
    assert len(fake.opened) == 1 and mic.active()  # closed on purpose counts as fine


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


def test_a_48k_stereo_recording_streams_as_the_whole_file_would(tmp_path: Path) -> None:
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
