"""The cue cache on disk: every cached cue is checked when loaded, and a damaged one is
synthesised again; a write that fails leaves nothing behind."""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assistant.speak import voices
from assistant.speak.cache import CueCache
from assistant.speak.tts import SpeechSettings, Synthesizer
from assistant.speak.wav import read_wav

TEXT = "Breathe in, and relax."


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    # Fixed renderings: a cue synthesised again is the very same samples.
    return Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings(varied=False))


def _cut_to_header(blob: bytes) -> bytes:
    return blob[:44]


def _cut_in_half(blob: bytes) -> bytes:
    return blob[: len(blob) // 2]


def _rate_1000(blob: bytes) -> bytes:
    return blob[:24] + struct.pack("<II", 1000, 2000) + blob[32:]


def _one_sample_changed(blob: bytes) -> bytes:
    return blob[:-2] + bytes([blob[-2] ^ 1, blob[-1]])


def _garbage(blob: bytes) -> bytes:
    return b"garbage"


@pytest.mark.parametrize("damage", [_cut_to_header, _cut_in_half, _rate_1000, _one_sample_changed, _garbage])
def test_a_damaged_cue_is_synthesised_again(
    tmp_path: Path, synth: Synthesizer, caplog: pytest.LogCaptureFixture, damage: Callable[[bytes], bytes]
) -> None:
    original = CueCache(synth, tmp_path).get(TEXT)
    [path] = CueCache(synth, tmp_path).files_for(TEXT)
    path.write_bytes(damage(path.read_bytes()))

    cache = CueCache(synth, tmp_path)
    with caplog.at_level(logging.WARNING, logger="assistant.speak.cache"):
        assert not cache.has(TEXT)  # so warming the cache before a session synthesises it
        audio = cache.get(TEXT)
    assert (cache.misses, cache.hits) == (1, 0)
    assert audio.rate_hz == original.rate_hz and np.array_equal(audio.samples, original.samples)
    assert [r.levelname for r in caplog.records].count("WARNING") >= 1
    assert "damaged cached cue" in caplog.text

    [replaced] = cache.files_for(TEXT)  # the damaged file is gone, the new one is whole
    assert np.array_equal(read_wav(replaced).samples, original.samples)
    later = CueCache(synth, tmp_path)
    assert np.array_equal(later.get(TEXT).samples, original.samples) and (later.misses, later.hits) == (0, 1)


def test_a_file_from_before_sums_is_replaced(tmp_path: Path, synth: Synthesizer) -> None:
    cache = CueCache(synth, tmp_path)
    original = cache.get(TEXT)
    [path] = cache.files_for(TEXT)
    stem = path.name.split(".")[0]
    path.rename(path.with_name(stem + ".wav"))  # the old layout: no sum, nothing to check
    again = CueCache(synth, tmp_path)
    assert np.array_equal(again.get(TEXT).samples, original.samples) and again.misses == 1
    assert [p.name for p in again.dir.iterdir()] == [again.files_for(TEXT)[0].name]


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
import numpy as np
from assistant.errors import AudioFileError
from assistant.pcm import Audio
from assistant.speak.wav import write_wav
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_wav(Path(sys.argv[1]), Audio(np.zeros(22050, np.int16), 22050))
except AudioFileError as exc:
    print(exc)
"""


def test_a_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    folder = tmp_path / "cues"
    for _ in range(3):  # as many failed cues as a run has: none leaves a file
        done = subprocess.run(
            [sys.executable, "-c", _FULL_DISK, str(folder / "a.wav")],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert "a.wav: cannot write the WAV file (File too large)" in done.stdout, done.stderr
    assert list(folder.iterdir()) == []
