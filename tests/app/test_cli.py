"""The command line end to end, through `main()` and through the installed entry point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.app.cli import main
from assistant.coach import intents
from assistant.coach.cues import spell
from tests.kit.sessions import bundled_intents, intents_with_unanswered, intents_without_skip

DEMO = Path(__file__).parents[2] / "demo" / "script.txt"


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("BACKSTRETCH_CONFIG", raising=False)


def _timeline(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_script_run_writes_the_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "s.txt"
    script.write_text(
        "0 start back stretch\n60 hold on\n90 keep going\n120 how many more\n150 slow down\n180 I'm done\n"
    )
    timeline = tmp_path / "t.jsonl"
    assert main(["run", "--script", str(script), "--mute", "--timeline", str(timeline)]) == 0
    events = _timeline(timeline)
    assert all({"t", "event"} <= e.keys() for e in events)
    times = [e["t"] for e in events]
    assert times == sorted(times)  # type: ignore[type-var]
    kinds = {e["event"] for e in events}
    assert {"heard", "intent", "say", "state", "cut"} <= kinds
    intents = [e["name"] for e in events if e["event"] == "intent"]
    assert intents == ["start", "pause", "resume", "status", "slower", "stop"]
    states = [e for e in events if e["event"] == "state"]
    assert [s["state"] for s in states][-1] == "stopped"
    paused = next(s for s in states if s["state"] == "paused")
    resumed = next(e for e in events if e["event"] == "say" and str(e["text"]).startswith("Resuming"))
    assert f"rep {spell(paused['rep'])}" in resumed["text"]  # type: ignore[index,operator]
    assert not [e for e in events if e["event"] == "say" and 60 < e["t"] < 90]  # type: ignore[operator]
    out = capsys.readouterr().out
    assert "coach  Let's do the knee hug stretch" in out and "you    hold on" in out


def test_full_default_session_from_a_one_line_script(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("0 start back stretch\n")
    timeline = tmp_path / "t.jsonl"
    assert main(["run", "--script", str(script), "--mute", "--quiet", "--timeline", str(timeline)]) == 0
    events = _timeline(timeline)
    pulls = [e for e in events if e["event"] == "say" and e["kind"] == "exhale"]
    assert len(pulls) == 120
    final = [e for e in events if e["event"] == "state"][-1]
    assert final["state"] == "finished" and final["done"] == 120


def test_demo_script_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--script", str(DEMO), "--mute", "--timeline", str(tmp_path / "t.jsonl")]) == 0
    assert "We'll end here" in capsys.readouterr().out


def test_routine_prints_plan_and_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routine"]) == 0
    out = capsys.readouterr().out
    assert "20 left, 20 right, 20 left, 20 right, 20 left, 20 right" in out
    assert "takes: 1" in out and "min" in out


def test_routine_follows_the_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sets: 1\nreps_per_side: 5\nfirst_side: right\n")
    assert main(["--config", str(config), "routine"]) == 0
    assert "order: 5 right, 5 left\n" in capsys.readouterr().out


def test_config_shows_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("volume: 0.4\n")
    assert main(["--config", str(config), "config"]) == 0
    out = capsys.readouterr().out
    assert "volume: 0.4" in out and f"{config}:1" in out


def test_phrases_lists_every_intent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["phrases"]) == 0
    out = capsys.readouterr().out
    for name in ("start:", "pause:", "quieter:"):
        assert f"\n{name}\n" in f"\n{out}"
    assert "  hold on\n" in out


@pytest.mark.parametrize(
    ("files", "argv", "message"),
    [
        ({"c.yaml": "pace:\n  inhale_s: [\n"}, ["--config", "c.yaml", "routine"], "broken YAML"),
        ({"c.yaml": "colour: red\n"}, ["--config", "c.yaml", "config"], "c.yaml:1: colour: unknown key"),
        (
            {"s.txt": "0 start\nlater pause\n"},
            ["run", "--script", "s.txt"],
            "s.txt:2: expected 'SECONDS TEXT'",
        ),
        ({"s.txt": "0 sing a song\n"}, ["run", "--script", "s.txt"], "'sing a song' is no command"),
        ({}, ["run", "--script", "missing.txt"], "cannot read the script"),
        ({"r.yaml": "sets: -1\n"}, ["routine", "--routine", "r.yaml"], "r.yaml:1: sets: must be between"),
        ({}, ["run"], "without one, use --text --mute, --in FILE.wav, --out FILE.wav or `make demo`"),
        (
            {"s.txt": "0 start\n"},
            ["run", "--script", "s.txt", "--mute", "--timeline", "no/such/dir/t.jsonl"],
            "cannot write the timeline",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (intents_with_unanswered(), r"mine\.yaml:\d+: intents\.sing: the coach has no answer to this intent"),
        (intents_without_skip(), r"mine\.yaml:\d+: intents: the intent 'skip' is missing"),
    ],
)
@pytest.mark.parametrize("how", ["option", "config"])
def test_an_intents_file_unlike_the_handlers_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    message: str,
    how: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(text)
    (tmp_path / "s.txt").write_text("0 start\n")
    (tmp_path / "c.yaml").write_text("intents: mine.yaml\n")
    chosen = ["--intents", "mine.yaml"] if how == "option" else []
    config = ["--config", "c.yaml"] if how == "config" else []
    assert main([*config, "run", "--script", "s.txt", "--mute", *chosen]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(f"backstretch: {message}[^\n]*\n", err), err


def test_a_script_runs_on_an_intents_file_of_ones_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine, script = tmp_path / "mine.yaml", tmp_path / "s.txt"
    mine.write_text(bundled_intents('  stop:\n    - "stop', '  stop:\n    - "halt"\n    - "stop'))
    script.write_text("0 start\n30 halt\n")
    assert main(["run", "--script", str(script), "--mute", "--intents", str(mine)]) == 0
    assert "We'll end here" in capsys.readouterr().out
    assert main(["phrases", "--intents", str(mine)]) == 0
    assert "\n  halt\n" in capsys.readouterr().out


def _entry_point() -> str:
    return str(Path(sys.executable).parent / "backstretch")


def _text_run(home: Path, typed: str, timeline: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
    return subprocess.run(
        [_entry_point(), "run", "--text", "--mute", "--timeline", str(timeline)],
        input=typed, capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_text_mode_and_a_place_that_survives_the_program(tmp_path: Path) -> None:
    """Typed commands in real time; end of input keeps the place; the next run offers it."""
    first = _text_run(tmp_path, "start back stretch\nwhat\nhold on\n", tmp_path / "1.jsonl")
    assert first.returncode == 0, first.stderr
    assert "'what' is no command" in first.stderr and "offers to carry on" in first.stderr
    events = _timeline(tmp_path / "1.jsonl")
    assert [e["name"] for e in events if e["event"] == "intent"] == ["start", "pause"]
    assert [e for e in events if e["event"] == "state"][-1]["state"] == "paused"

    second = _text_run(tmp_path, "keep going\nI'm done\n", tmp_path / "2.jsonl")
    assert second.returncode == 0, second.stderr
    events = _timeline(tmp_path / "2.jsonl")
    says = [e for e in events if e["event"] == "say"]
    assert says[0]["text"].startswith("You stopped at set one, left leg, rep one. Say resume to carry on")
    assert [e["name"] for e in events if e["event"] == "intent"] == ["resume", "stop"]
    assert says[-1]["kind"] == "stopped"  # typed at once: the stop cut the resume off

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    history = subprocess.run([_entry_point(), "history"], env=env, capture_output=True, text=True, check=True)
    ends = [line.split()[-1] for line in history.stdout.splitlines()[1:]]
    assert ends == ["interrupted", "stopped"]


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "--version"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stdout.startswith("backstretch ")


def test_a_state_folder_that_cannot_be_written_is_said_once_and_the_session_goes_on(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "backstretch").write_text("a file where the folder should be")
    run = _text_run(tmp_path, "start back stretch\nI'm done\n", tmp_path / "t.jsonl")
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    (line,) = [line for line in run.stderr.splitlines() if "cannot be saved" in line]
    assert "is a file, not a folder" in line
    says = [e["text"] for e in _timeline(tmp_path / "t.jsonl") if e["event"] == "say"]
    assert says[0] == intents.load().say("cannot_save")
    assert says[-1].startswith("We'll end here")
