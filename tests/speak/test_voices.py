"""Finding voices: the bundled one, the user's, a path; and the errors a user can fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assistant.errors import VoiceError
from assistant.speak import voices


@pytest.fixture(scope="module")
def joe() -> voices.VoiceInfo:
    return voices.resolve(voices.DEFAULT_VOICE)


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


def test_damaged_voice_config(tmp_path: Path) -> None:
    (tmp_path / "v.onnx").write_bytes(b"x")
    (tmp_path / "v.onnx.json").write_text("{not json")
    with pytest.raises(VoiceError, match=r"not a piper voice config"):
        voices.resolve(str(tmp_path / "v.onnx"))


def test_a_voice_named_by_path_reads_its_config(tmp_path: Path, joe: voices.VoiceInfo) -> None:
    config = json.loads(joe.config.read_text())
    config["audio"]["sample_rate"] = 16000
    config["num_speakers"] = 3
    (tmp_path / "mine.onnx").symlink_to(joe.model)
    (tmp_path / "mine.onnx.json").write_text(json.dumps(config))
    mine = voices.resolve(str(tmp_path / "mine.onnx"))
    assert (mine.name, mine.sample_rate_hz, mine.speakers, mine.source) == ("mine", 16000, 3, "configuration")


def test_a_broken_voice_in_the_user_folder_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    folder = voices.user_voice_dir()
    folder.mkdir(parents=True)
    (folder / "broken.onnx").write_bytes(b"x")  # no config next to it
    found = [v.name for v in voices.find_all()]
    assert "broken" not in found and voices.DEFAULT_VOICE in found
    assert "broken.onnx.json is missing" in caplog.text


def test_a_voice_that_is_a_folder_is_named_so(tmp_path: Path) -> None:
    (tmp_path / "voice.onnx").mkdir()
    with pytest.raises(VoiceError, match=r"voice .*voice\.onnx is a folder; voice\.name takes a voice name"):
        voices.resolve(str(tmp_path / "voice.onnx"))
