"""Voices, real piper synthesis with the bundled voice, the cue cache and offline rendering."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import VoiceError
from assistant.pcm import gain
from assistant.speak import voices
from assistant.speak.cache import CueCache
from assistant.speak.tts import SpeechSettings, Synthesizer


@pytest.fixture(scope="module")
def joe() -> voices.VoiceInfo:
    return voices.resolve(voices.DEFAULT_VOICE)


@pytest.fixture(scope="module")
def synth(joe: voices.VoiceInfo) -> Synthesizer:
    return Synthesizer(joe, SpeechSettings())


def test_bundled_voice_is_found(joe: voices.VoiceInfo) -> None:
    assert (joe.language, joe.quality, joe.sample_rate_hz, joe.speakers) == ("en_US", "medium", 22050, 1)
    assert "bundled" in joe.source


def test_user_voices_are_found_and_take_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, joe: voices.VoiceInfo
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    folder = voices.user_voice_dir()
    folder.mkdir(parents=True)
    (folder / "en_US-joe-medium.onnx").symlink_to(joe.model)
    shutil.copy(joe.config, folder / "en_US-joe-medium.onnx.json")
    found = voices.find_all()
    assert [v.source.split(" ")[0] for v in found if v.name == "en_US-joe-medium"][:2] == ["user", "bundled"]
    assert voices.resolve("en_US-joe-medium").source.startswith("user data dir")


def test_unknown_voice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with pytest.raises(VoiceError, match=r"unknown voice 'en_XX-nobody-low'; `backstretch voices` lists"):
        voices.resolve("en_XX-nobody-low")


def test_voice_path_without_config(tmp_path: Path) -> None:
    (tmp_path / "v.onnx").write_bytes(b"x")
    with pytest.raises(VoiceError, match=r"v\.onnx\.json is missing"):
        voices.resolve(str(tmp_path / "v.onnx"))


def test_damaged_voice_is_one_clear_error(tmp_path: Path, joe: voices.VoiceInfo) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"this is not an onnx model")
    shutil.copy(joe.config, tmp_path / "broken.onnx.json")
    synth = Synthesizer(voices.resolve(str(model)), SpeechSettings())
    with pytest.raises(VoiceError, match=r"voice broken: cannot load .* the file is damaged"):
        synth.synthesize("hello")


def test_damaged_voice_config(tmp_path: Path) -> None:
    (tmp_path / "v.onnx").write_bytes(b"x")
    (tmp_path / "v.onnx.json").write_text("{not json")
    with pytest.raises(VoiceError, match=r"not a piper voice config"):
        voices.resolve(str(tmp_path / "v.onnx"))


def test_speaker_out_of_range(joe: voices.VoiceInfo) -> None:
    with pytest.raises(VoiceError, match="has 1 speaker"):
        Synthesizer(joe, SpeechSettings(speaker=3))


def test_synthesis_is_real_speech(synth: Synthesizer) -> None:
    audio = synth.synthesize("Breathe in.")
    assert audio.rate_hz == 22050
    assert 0.4 < audio.duration_s < 2.5
    assert np.abs(audio.samples).max() > 5000  # not silence


def test_speech_rate_and_sentence_pause_shape_the_audio(joe: voices.VoiceInfo) -> None:
    text = "Breathe out, and pull your thigh toward your chest and belly. One."

    def length(**settings: float) -> float:  # fixed renderings: piper's prosody otherwise varies
        return Synthesizer(joe, SpeechSettings(varied=False, **settings)).synthesize(text).duration_s  # type: ignore[arg-type]

    normal, slow, paused = length(), length(speech_rate=0.7), length(sentence_pause_s=1.0)
    assert slow > normal * 1.25
    assert paused > normal + 0.6  # one pause between the two sentences


def test_cache_hits_misses_and_disk(tmp_path: Path, synth: Synthesizer) -> None:
    cache = CueCache(synth, tmp_path)
    first = cache.get("Breathe in.")
    assert (cache.hits, cache.misses) == (0, 1)
    assert np.array_equal(cache.get("Breathe in.").samples, first.samples) and cache.hits == 1
    again = CueCache(synth, tmp_path)  # a later run: from disk, no synthesis
    assert np.array_equal(again.get("Breathe in.").samples, first.samples)
    assert (again.hits, again.misses) == (1, 0)
    assert again.warm(["Breathe in.", "Breathe out."]) == 1 and again.misses == 1


def test_cache_invalidation_is_exact(tmp_path: Path, joe: voices.VoiceInfo) -> None:
    base = CueCache(Synthesizer(joe, SpeechSettings()), tmp_path)
    same = CueCache(Synthesizer(joe, SpeechSettings()), tmp_path)
    faster = CueCache(Synthesizer(joe, SpeechSettings(speech_rate=1.2)), tmp_path)
    pause = CueCache(Synthesizer(joe, SpeechSettings(sentence_pause_s=0.5)), tmp_path)
    assert base.dir == same.dir
    assert len({base.dir, faster.dir, pause.dir}) == 3
    base.warm(["Stay."])
    assert same.has("Stay.") and not faster.has("Stay.") and not pause.has("Stay.")


def test_cache_changes_when_the_voice_file_changes(tmp_path: Path, joe: voices.VoiceInfo) -> None:
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


def test_volume_is_not_in_the_cache(tmp_path: Path, synth: Synthesizer) -> None:
    cache = CueCache(synth, tmp_path)
    clip = cache.get("Raising my voice.").samples
    assert np.array_equal(gain(clip, 0.5), np.clip(np.rint(clip * 0.5), -32768, 32767).astype(np.int16))


def test_prefetch_synthesises_in_the_background(tmp_path: Path, synth: Synthesizer) -> None:
    cache = CueCache(synth, tmp_path)
    cache.prefetch(["Resuming: set two, right leg, rep seven."])
    deadline = time.monotonic() + 30
    while not cache.has("Resuming: set two, right leg, rep seven."):
        assert time.monotonic() < deadline, "prefetch never finished"
        time.sleep(0.05)  # waiting on a real background thread
    cache.get("Resuming: set two, right leg, rep seven.")
    assert cache.misses == 1 and cache.hits == 1


def test_fixed_renderings_are_the_same_every_time(synth: Synthesizer, joe: voices.VoiceInfo) -> None:
    fixed = Synthesizer(joe, SpeechSettings(varied=False))
    assert np.array_equal(fixed.synthesize("Stay.").samples, fixed.synthesize("Stay.").samples)


def test_a_voice_that_is_a_folder_is_named_so(tmp_path: Path) -> None:
    (tmp_path / "voice.onnx").mkdir()
    with pytest.raises(VoiceError, match=r"voice .*voice\.onnx is a folder; voice\.name takes a voice name"):
        voices.resolve(str(tmp_path / "voice.onnx"))
