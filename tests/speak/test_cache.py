"""The cue cache (speak/cache.py): each cue synthesised once per voice and speech settings."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.app.cli import main
from assistant.speak import voices
from assistant.speak.cache import CueCache
from assistant.speak.tts import SpeechSettings, Synthesizer
from assistant.speak.wav import read_wav


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
        again.path_for(t).name for t in ("Breathe in.", "Breathe out.")
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


def test_a_damaged_file_is_synthesised_again(tmp_path: Path, synth: Synthesizer) -> None:
    CueCache(synth, tmp_path).get("Stay.")
    cache = CueCache(synth, tmp_path)
    cache.path_for("Stay.").write_bytes(b"garbage")
    audio = cache.get("Stay.")
    assert audio.duration_s > 0.2 and cache.misses == 1
    assert read_wav(cache.path_for("Stay.")).duration_s == audio.duration_s


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
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())


def test_the_default_folder_follows_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synth: Synthesizer
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = CueCache(synth)
    assert cache.dir.parent == tmp_path / "backstretch" / "cues"
    assert cache.dir.name.startswith("en_US-joe-medium-")
    assert os.path.commonpath([cache.path_for("x"), tmp_path]) == str(tmp_path)
