"""Offline rendering: a whole session into one WAV, each cue where the timeline puts it, to the sample."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from assistant.app.cli import main
from assistant.coach.events import Say, SayKind
from assistant.errors import AudioFileError
from assistant.pcm import Audio, gain, resample
from assistant.speak import voices, wav
from assistant.speak.cache import CueCache
from assistant.speak.render import WavRenderer
from assistant.speak.tts import SpeechSettings, Synthesizer
from assistant.speak.wav import WavWriter, read_wav


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("BACKSTRETCH_CONFIG", raising=False)
    return tmp_path


Event = dict[str, object]


def _render(home: Path, script_text: str) -> tuple[Audio, list[Event], CueCache]:
    """Render a script through the CLI; the audio, the timeline and the cache it used."""
    script = home / "s.txt"
    script.write_text(script_text)
    out, timeline = home / "session.wav", home / "t.jsonl"
    argv = ["run", "--script", str(script), "--out", str(out), "--timeline", str(timeline), "--quiet"]
    assert main(argv) == 0
    events = [json.loads(line) for line in timeline.read_text().splitlines()]
    cache_root = Path(os.environ["XDG_CACHE_HOME"]) / "backstretch" / "cues"
    cache = CueCache(Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings()), cache_root)
    return read_wav(out), events, cache


def test_full_default_session_onsets_match_to_the_sample(home: Path) -> None:
    audio, events, cache = _render(home, "0 start back stretch\n")
    says = [e for e in events if e["event"] == "say"]
    assert sum(e["kind"] == "exhale" for e in says) == 120
    assert cache.has("Breathe in, and relax.")
    end = 0
    for event in says:
        start = round(float(event["t"]) * audio.rate_hz)  # type: ignore[arg-type]
        clip = gain(cache.get(str(event["text"])).samples, 0.8)
        assert len(clip) / audio.rate_hz == pytest.approx(event["duration"])
        assert np.array_equal(audio.samples[start : start + len(clip)], clip), event["text"]
        assert not audio.samples[end:start].any()  # silence between cues
        end = start + len(clip)
    assert 15 * 60 < audio.duration_s < 22 * 60


def test_cuts_and_volume_in_the_rendering(home: Path) -> None:
    audio, events, cache = _render(home, "0 start\n10 pause\n20 louder\n25 resume\n45 stop\n")
    cut = next(e for e in events if e["event"] == "cut")
    assert cut["t"] == 10.0
    first = events[2]
    assert first["event"] == "say" and float(first["t"]) + float(first["duration"]) > 10.0  # type: ignore[arg-type]
    paused = next(e for e in events if e["event"] == "say" and str(e["text"]).startswith("Paused"))
    # the setup cue plays up to 10 s, "Paused." starts there, then silence until "Raising my voice." at 20 s
    at = round(10.0 * audio.rate_hz)
    assert paused["t"] == 10.0 and audio.samples[at - 2000 : at].any()
    clip = gain(cache.get(str(paused["text"])).samples, 0.8)
    assert np.array_equal(audio.samples[at : at + len(clip)], clip)
    assert not audio.samples[at + len(clip) : round(20.0 * audio.rate_hz)].any()
    louder = next(e for e in events if e["event"] == "say" and e["text"] == "Raising my voice.")
    start = round(float(louder["t"]) * audio.rate_hz)  # type: ignore[arg-type]
    peak = np.abs(audio.samples[start : start + round(float(louder["duration"]) * audio.rate_hz)]).max()  # type: ignore[arg-type]
    assert peak == np.abs(gain(cache.get("Raising my voice.").samples, 0.9)).max()


def test_say_renders_one_line(home: Path) -> None:
    assert main(["say", "breathe in", "--out", str(home / "b.wav")]) == 0
    audio = read_wav(home / "b.wav")
    assert audio.rate_hz == 22050 and 0.4 < audio.duration_s < 2.0


def test_out_needs_a_script(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--text", "--out", str(home / "x.wav")]) == 2
    assert "--out renders a --script or --in session" in capsys.readouterr().err


def test_unknown_voice_is_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = home / "c.yaml"
    config.write_text("voice:\n  name: en_US-nobody-low\n")
    assert main(["--config", str(config), "say", "hello", "--out", str(home / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert "unknown voice 'en_US-nobody-low'" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def joe_cache(tmp_path_factory: pytest.TempPathFactory) -> CueCache:
    return CueCache(
        Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings(varied=False)),
        tmp_path_factory.mktemp("cues"),
    )


def test_a_far_off_cue_costs_disk_not_memory(tmp_path: Path, joe_cache: CueCache) -> None:
    """A cue 10,000 s in: the file holds the silence, memory never does (it used to
    allocate the whole rendering, 9 GB for a script line at 100,000 s)."""
    clip = gain(resample(joe_cache.get("Hi."), 1000).samples, 0.8)
    out = tmp_path / "far.wav"
    renderer = WavRenderer(out, joe_cache, 0.8, rate_hz=1000)
    tracemalloc.start()
    try:
        renderer.write(Say(0.0, "Hi.", 0.5, SayKind.REPLY))
        renderer.write(Say(10_000.0, "Hi.", 0.5, SayKind.REPLY))
        renderer.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    audio = read_wav(out)
    assert len(audio.samples) == 10_000_000 + len(clip) + 500  # the clip, then the tail
    assert peak < 2_000_000  # the file is 20 MB
    assert np.array_equal(audio.samples[: len(clip)], clip)
    assert np.array_equal(audio.samples[10_000_000 : 10_000_000 + len(clip)], clip)
    assert not audio.samples[len(clip) : 10_000_000].any()


def test_a_rendering_too_long_for_a_wav_file_is_one_error_and_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wav, "MAX_DATA_BYTES", 1000)
    writer = WavWriter(tmp_path / "x.wav", 1000)
    writer.write(np.zeros(400, np.int16))
    with pytest.raises(AudioFileError, match="longer than a WAV file can hold"):
        writer.write(np.zeros(200, np.int16))
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temp
