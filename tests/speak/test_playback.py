"""Playback on a real device: a private PulseAudio null sink, recorded from its monitor.

These run in real time (about a minute in all), so they use a short routine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.speak import voices
from assistant.speak.cache import CueCache
from assistant.speak.tts import SpeechSettings, Synthesizer
from assistant.speak.wav import read_wav
from tests.kit.onsets import find_clip
from tests.kit.pulse import PulseServer, Recorder
from tests.kit.sessions import SHORT_ROUTINE

pytestmark = pytest.mark.pulse


def _backstretch(*argv: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}
    command = [str(Path(sys.executable).parent / "backstretch"), *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)


def test_cue_onsets_on_a_real_device_follow_the_schedule(pulse: PulseServer, tmp_path: Path) -> None:
    routine = tmp_path / "short.yaml"
    routine.write_text(SHORT_ROUTINE)
    script = tmp_path / "s.txt"
    script.write_text("0 start back stretch\n")
    timeline = tmp_path / "t.jsonl"
    # Fill the cue cache first, so the timed run below never waits on synthesis.
    offline = ["run", "--routine", str(routine), "--script", str(script), "--out", str(tmp_path / "w.wav")]
    warm = _backstretch(*offline, "--quiet", home=tmp_path)
    assert warm.returncode == 0, warm.stderr
    recording = tmp_path / "rec.wav"
    with Recorder(recording):
        result = _backstretch("run", "--routine", str(routine), "--script", str(script), "--timeline",
                              str(timeline), "--quiet", home=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    says = [e for e in map(json.loads, timeline.read_text().splitlines()) if e["event"] == "say"]
    assert len(says) >= 15
    heard = read_wav(recording)
    cache = CueCache(
        Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings()),
        tmp_path / "cache" / "backstretch" / "cues",
    )
    # The recorder started first: the offset between its clock and the session's is where
    # the first cue lies in the first seconds; the test is that every other cue keeps it.
    first_at, score = find_clip(heard, cache.get(says[0]["text"]), 2.0, window_s=2.0)
    assert score > 0.8
    offset = first_at - says[0]["t"]
    errors = []
    for event in says:
        at, score = find_clip(heard, cache.get(event["text"]), event["t"] + offset, window_s=0.3)
        assert score > 0.8, event["text"]
        errors.append(at - offset - event["t"])
    errors_ms = np.abs(np.array(errors)) * 1000
    assert errors_ms.max() <= 20.0, f"median {np.median(errors_ms):.1f} ms, max {errors_ms.max():.1f} ms"
    slope = np.polyfit([e["t"] for e in says], errors, 1)[0]
    assert abs(slope) < 0.0005  # under 0.5 ms of drift per second


def test_say_speaks_on_the_device(pulse: PulseServer, tmp_path: Path) -> None:
    recording = tmp_path / "rec.wav"
    with Recorder(recording):
        result = _backstretch("say", "breathe in", home=tmp_path)
    assert result.returncode == 0, result.stderr
    heard = read_wav(recording)
    cache = CueCache(
        Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings()),
        tmp_path / "cache" / "backstretch" / "cues",
    )
    at, score = find_clip(heard, cache.get("breathe in"), heard.duration_s / 2, window_s=heard.duration_s)
    assert score > 0.8 and at > 0


def test_unknown_device_is_one_line(pulse: PulseServer, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("audio:\n  output_device: no such speaker\n")
    result = _backstretch("--config", str(config), "say", "hello", home=tmp_path)
    assert result.returncode == 2
    assert "cannot play on audio device 'no such speaker'" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_no_audio_device_is_one_line(tmp_path: Path) -> None:
    env_dir = tmp_path / "nowhere"
    env_dir.mkdir()
    env = {
        "PULSE_SERVER": f"unix:{env_dir}/none",
        "XDG_RUNTIME_DIR": str(env_dir),
        "PULSE_COOKIE": str(env_dir / "c"),
    }
    home = tmp_path
    os_env = {
        **os.environ,
        **env,
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
    }
    command = [str(Path(sys.executable).parent / "backstretch"), "run", "--text"]
    result = subprocess.run(
        command, env=os_env, input="", capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "cannot play on the default audio device" in result.stderr and "make demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_device_that_disappears_is_reopened_without_losing_the_place(
    pulse: PulseServer, tmp_path: Path
) -> None:
    routine = tmp_path / "short.yaml"
    routine.write_text(SHORT_ROUTINE)
    script = tmp_path / "s.txt"
    script.write_text("0 start back stretch\n")
    timeline = tmp_path / "t.jsonl"
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    command = [str(Path(sys.executable).parent / "backstretch"), "run", "--routine", str(routine),
               "--script", str(script), "--timeline", str(timeline), "--quiet"]  # fmt: skip
    run = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _reps_done(timeline) >= 2:  # mid-session: the first side under way
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)  # watching a real-time process from outside
        pulse.restart()  # every stream on the daemon dies without a word
        _, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 0, stderr
    assert "reopening it" in stderr and "is back" in stderr
    events = [json.loads(line) for line in timeline.read_text().splitlines()]
    states = [e for e in events if e["event"] == "state"]
    done = [
        (b["side"], b["rep"]) for a, b in zip(states[1:], states, strict=False) if a["done"] == b["done"] + 1
    ]
    assert done == [("left", 1), ("left", 2), ("left", 3), ("right", 1), ("right", 2), ("right", 3)]
    assert states[-1]["state"] == "finished"


def _reps_done(timeline: Path) -> int:
    if not timeline.exists():
        return 0
    states = [json.loads(line) for line in timeline.read_text().splitlines() if '"state"' in line]
    return max((s["done"] for s in states), default=0)


def test_a_device_at_another_rate_gets_resampled_audio(pulse: PulseServer, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("audio:\n  output_rate_hz: 48000\n")
    recording = tmp_path / "rec.wav"
    with Recorder(recording):
        result = _backstretch("--config", str(config), "-v", "say", "breathe in", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "at 48000 Hz" in result.stderr
    heard = read_wav(recording)
    cache = CueCache(
        Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings()),
        tmp_path / "cache" / "backstretch" / "cues",
    )
    _, score = find_clip(heard, cache.get("breathe in"), heard.duration_s / 2, window_s=heard.duration_s)
    assert score > 0.8


def test_devices_lists_the_pulse_devices(pulse: PulseServer, tmp_path: Path) -> None:
    result = _backstretch("devices", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pulse" in result.stdout and "default" in result.stdout
