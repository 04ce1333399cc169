"""`make demo`: the listener's speech through the real recogniser, the coach rendered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.app.cli import main
from assistant.speak.wav import read_wav


def test_demo_hears_every_command_and_renders_the_coach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "config" / "backstretch").mkdir(parents=True)
    (tmp_path / "config" / "backstretch" / "config.yaml").write_text("verbosity: counts\nvolume: 0.2\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # no vosk model: pocketsphinx
    monkeypatch.delenv("BACKSTRETCH_VOSK_MODEL", raising=False)
    folder = tmp_path / "demo"
    assert main(["demo", "--dir", str(folder)]) == 0
    events = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
    intents = [e["name"] for e in events if e["event"] == "intent"]
    assert intents == ["start", "pause", "resume", "slower", "status", "stop"]
    says = [e for e in events if e["event"] == "say"]
    assert says[0]["text"].startswith("Let's do the knee hug stretch")  # the embedded defaults,
    assert any(len(e["text"]) > 60 for e in says if e["kind"] == "exhale")  # not the user's "counts"
    assert says[-1]["kind"] == "stopped"
    coach, listener, both = (read_wav(folder / f"{n}.wav") for n in ("session", "listener", "conversation"))
    assert coach.duration_s > 60 and listener.duration_s > 60
    assert len(both.samples) == max(len(coach.samples), round(listener.duration_s * coach.rate_hz))
    out = capsys.readouterr().out
    assert "you    start back stretch" in out and "coach  We'll end here" in out
