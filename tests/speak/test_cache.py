"""The cue cache (speak/cache.py): each cue synthesised once per voice and speech settings,
and every cached cue checked when loaded: a damaged one is synthesised again; a write that
fails leaves nothing behind."""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assistant.app.cli import main
from assistant.speak import voices
from assistant.speak.cache import CueCache
from assistant.speak.tts import SpeechSettings, Synthesizer
from assistant.speak.wav import read_wav
from tests.kit.spy import Spy, until


@pytest.fixture(scope="module")
def joe() -> voices.VoiceInfo:
    return voices.resolve(voices.DEFAULT_VOICE)


@pytest.fixture(scope="module")
def synth(joe: voices.VoiceInfo) -> Synthesizer:
    return Synthesizer(joe, SpeechSettings())


def test_hits_misses_and_disk(tmp_path: Path, synth: Synthesizer) -> None:
    cache = CueCache(synth, tmp_path)
    first = cache.get("Breathe in.")
    assert (cache.hits, cache.misses) == (0, 1)
    assert np.array_equal(cache.get("Breathe in.").samples, first.samples) and cache.hits == 1
    again = CueCache(synth, tmp_path)  # a later run: from disk, no synthesis
    assert np.array_equal(again.get("Breathe in.").samples, first.samples)
    assert (again.hits, again.misses) == (1, 0)
    assert again.warm(["Breathe in.", "Breathe out."]) == 1 and again.misses == 1
    assert again.missing(["Breathe out.", "Stay.", "Stay."]) == ["Stay."]
    assert sorted(p.name for p in again.dir.iterdir()) == sorted(
        f.name for t in ("Breathe in.", "Breathe out.") for f in again.files_for(t)
    )


def test_invalidation_is_exact(tmp_path: Path, joe: voices.VoiceInfo) -> None:
    base = CueCache(Synthesizer(joe, SpeechSettings()), tmp_path)
    same = CueCache(Synthesizer(joe, SpeechSettings()), tmp_path)
    faster = CueCache(Synthesizer(joe, SpeechSettings(speech_rate=1.2)), tmp_path)
    pause = CueCache(Synthesizer(joe, SpeechSettings(sentence_pause_s=0.5)), tmp_path)
    assert base.dir == same.dir
    assert len({base.dir, faster.dir, pause.dir}) == 3
    base.warm(["Stay."])
    assert same.has("Stay.") and not faster.has("Stay.") and not pause.has("Stay.")


def test_a_changed_voice_file_starts_a_new_folder(tmp_path: Path, joe: voices.VoiceInfo) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "x.onnx").symlink_to(joe.model)
    config = json.loads(joe.config.read_text())
    (folder / "x.onnx.json").write_text(json.dumps(config))
    before = CueCache(Synthesizer(voices.resolve(str(folder / "x.onnx")), SpeechSettings()), tmp_path).dir
    config["inference"]["noise_scale"] = 0.5
    (folder / "x.onnx.json").write_text(json.dumps(config, indent=1))
    after = CueCache(Synthesizer(voices.resolve(str(folder / "x.onnx")), SpeechSettings()), tmp_path).dir
    assert before != after


def test_a_cache_that_cannot_be_written_still_speaks(
    tmp_path: Path, synth: Synthesizer, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("not a folder")
    cache = CueCache(synth, tmp_path / "file")
    assert cache.get("Stay.").duration_s > 0.2
    assert "cannot keep a cue in the cache" in caplog.text


def test_volume_is_applied_to_the_cached_cue_not_kept_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A louder or quieter session uses the same cached cue: nothing is synthesised again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    outs = []
    for volume in (1.0, 0.5):
        config = tmp_path / f"{volume}.yaml"
        config.write_text(f"volume: {volume}\n")
        out = tmp_path / f"{volume}.wav"
        assert main(["--config", str(config), "say", "Raising my voice.", "--out", str(out)]) == 0
        outs.append(read_wav(out).samples)
        (cached,) = (tmp_path / "cache").rglob("*.wav")
        if volume == 1.0:
            made = cached.stat().st_mtime_ns
    assert cached.stat().st_mtime_ns == made  # the second run synthesised nothing
    loud, soft = outs
    assert np.array_equal(loud, read_wav(cached).samples)
    assert np.array_equal(soft, np.rint(loud / 2).astype(np.int16))


def test_prefetch_synthesises_in_the_background(tmp_path: Path, synth: Synthesizer) -> None:
    cache = CueCache(synth, tmp_path)
    cache.prefetch(["Resuming: set two, right leg, rep seven."])
    deadline = time.monotonic() + 30
    while not cache.has("Resuming: set two, right leg, rep seven."):
        assert time.monotonic() < deadline, "prefetch never finished"
        time.sleep(0.05)  # waiting on a real background thread
    cache.get("Resuming: set two, right leg, rep seven.")
    assert cache.misses == 1 and cache.hits == 1
    cache.close()
    assert not any(t.name == "cues" and t.is_alive() for t in threading.enumerate())


LONG = "Lie flat on the bed. Bend your left knee. Hold it with both hands."  # three sentences


@pytest.mark.parametrize("first", [LONG, "Stay."], ids=["mid-cue", "between-cues"])
def test_get_goes_ahead_of_the_worker_and_nothing_is_made_twice(
    tmp_path: Path, synth: Synthesizer, first: str
) -> None:
    spy = Spy(synth, hold_at=1)
    cache = CueCache(spy, tmp_path)
    batch = [first, "Breathe in.", "Breathe out.", "Breathe out, pull. Four."]
    asked = batch[-1]  # the worker's last
    left: list[int] = []
    cache.prepare(batch, left.append)
    assert spy.holding.wait(60)  # the worker has begun its first cue
    asker = threading.Thread(target=cache.get, args=(asked,), name="asker")
    asker.start()
    until(lambda: cache._wanted == 1)  # the asker waits for its turn (private: no event says so)
    spy.release.set()
    asker.join(60)
    until(lambda: cache.pending() == 0)
    cache.close()
    # The asker went next: between two sentences of a long cue, or after a short one,
    # before the worker's next; the worker found the asker's cue made and left it.
    if first == LONG:
        expected = [
            ("start", LONG, "cues"),
            ("start", asked, "asker"),
            ("end", asked, "asker"),
            ("end", LONG, "cues"),
        ]
    else:
        expected = [
            ("start", first, "cues"),
            ("end", first, "cues"),
            ("start", asked, "asker"),
            ("end", asked, "asker"),
        ]
    assert spy.log[:4] == expected
    assert sorted(spy.made()) == sorted(batch)
    assert left == [3, 2, 1, 0]  # progress, whoever made each cue
    assert cache.misses == 4 and not list(cache.dir.glob(".*"))  # no temp file left


def test_close_stops_the_worker_at_the_next_sentence_and_leaves_no_partial_file(
    tmp_path: Path, synth: Synthesizer
) -> None:
    spy = Spy(synth, hold_at=2)
    cache = CueCache(spy, tmp_path)
    batch = ["Stay.", LONG, "Breathe in.", "Breathe out."]
    cache.prepare(batch)
    assert spy.holding.wait(60)  # the first cue is made; the worker has begun the long one
    closer = threading.Thread(target=cache.close, name="closer")
    closer.start()
    until(lambda: cache._closed)  # close has begun (private: it is waiting on the worker)
    spy.release.set()
    closer.join(60)
    assert not closer.is_alive()
    assert not any(t.name == "cues" and t.is_alive() for t in threading.enumerate())
    assert spy.made() == ["Stay."] and cache.pending() == 3  # given up after its first sentence
    assert [p.name for p in cache.dir.iterdir()] == [cache.files_for("Stay.")[0].name]  # no .tmp
    assert cache.get(LONG).duration_s > 3.0  # on demand, after the worker stopped: whole
    cache.prefetch(["Breathe in."])  # a closed cache starts no worker again
    assert not any(t.name == "cues" and t.is_alive() for t in threading.enumerate())


def test_the_default_folder_follows_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synth: Synthesizer
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = CueCache(synth)
    assert cache.dir.parent == tmp_path / "backstretch" / "cues"
    assert cache.dir.name.startswith("en_US-joe-medium-")
    assert os.path.commonpath([cache.dir, tmp_path]) == str(tmp_path)


TEXT = "Breathe in, and relax."


@pytest.fixture(scope="module")
def fixed() -> Synthesizer:
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
    tmp_path: Path, fixed: Synthesizer, caplog: pytest.LogCaptureFixture, damage: Callable[[bytes], bytes]
) -> None:
    original = CueCache(fixed, tmp_path).get(TEXT)
    [path] = CueCache(fixed, tmp_path).files_for(TEXT)
    path.write_bytes(damage(path.read_bytes()))

    cache = CueCache(fixed, tmp_path)
    with caplog.at_level(logging.WARNING, logger="assistant.speak.cache"):
        assert not cache.has(TEXT)  # so warming the cache before a session synthesises it
        audio = cache.get(TEXT)
    assert (cache.misses, cache.hits) == (1, 0)
    assert audio.rate_hz == original.rate_hz and np.array_equal(audio.samples, original.samples)
    assert [r.levelname for r in caplog.records].count("WARNING") >= 1
    assert "damaged cached cue" in caplog.text

    [replaced] = cache.files_for(TEXT)  # the damaged file is gone, the new one is whole
    assert np.array_equal(read_wav(replaced).samples, original.samples)
    later = CueCache(fixed, tmp_path)
    assert np.array_equal(later.get(TEXT).samples, original.samples) and (later.misses, later.hits) == (0, 1)


def test_a_file_from_before_sums_is_replaced(tmp_path: Path, fixed: Synthesizer) -> None:
    cache = CueCache(fixed, tmp_path)
    original = cache.get(TEXT)
    [path] = cache.files_for(TEXT)
    stem = path.name.split(".")[0]
    path.rename(path.with_name(stem + ".wav"))  # the old layout: no sum, nothing to check
    again = CueCache(fixed, tmp_path)
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
