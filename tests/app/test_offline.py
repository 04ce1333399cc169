from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest

from assistant.app import offline
from assistant.app.cli import main
from assistant.coach.dialogue import Dialogue
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Routine
from assistant.coach.session import Session
from assistant.errors import ScriptError


def test_parse_times_and_comments(lang: IntentSet) -> None:
    text = "# demo\n\n0 start back stretch\n12.5  hold on\n1:30 keep going\n"
    assert offline.parse(text, "s.txt", lang) == [
        offline.Utterance(0.0, "start back stretch"),
        offline.Utterance(12.5, "hold on"),
        offline.Utterance(90.0, "keep going"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start\n", r"s\.txt:1: expected 'SECONDS TEXT'"),
        ("0 start\nsoon pause\n", r"s\.txt:2: expected 'SECONDS TEXT'"),
        ("10 start\n5 pause\n", r"s\.txt:2: time 5 s comes before the line above \(10 s\)"),
        ("0 make me a sandwich\n", r"s\.txt:1: 'make me a sandwich' is no command"),
        # Times are parsed strictly: seconds under 60 in m:ss, digits only, a bounded length.
        ("1:75 start back stretch\n", r"^s\.txt:1: time '1:75': the seconds of m:ss must be 00 to 59; write"),
        ("1:5 start back stretch\n", r"^s\.txt:1: time '1:5': the seconds of m:ss must be two digits"),
        ("1e9 pause\n", r"^s\.txt:1: time '1e9' is no number of seconds; write SECONDS as 12\.5 or m:ss"),
        ("-5 pause\n", r"^s\.txt:1: time '-5' is no number of seconds"),
        ("1:2:3 pause\n", r"^s\.txt:1: time '1:2:3' is no number of seconds"),
        ("١٢ pause\n", r"^s\.txt:1: time '١٢' is no number of seconds"),
        ("9" * 5000 + " pause\n", r"^s\.txt:1: time '9999999999\S*' has over 9 digits; write SECONDS"),
        ("9" * 5000 + ":00 pause\n", r"^s\.txt:1: time '9999999999\S*' has over 9 digits"),
        ("1." + "9" * 5000 + " pause\n", r"^s\.txt:1: time '1\.999999999\S*' has over 9 digits"),
    ],
)
def test_malformed_scripts(lang: IntentSet, text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message) as caught:
        offline.parse(text, "s.txt", lang)
    assert len(str(caught.value)) < 200


def _traced_lines(lang: IntentSet, knee_hug: Routine, pairs: int) -> int:
    """Lines of Python executed to run a script of `pairs` pauses and resumes (a count
    that does not depend on the machine's speed)."""
    lines = ["0 start back stretch"] + [
        f"{1 + 1.4 * i:.1f} pause\n{1.7 + 1.4 * i:.1f} resume" for i in range(pairs)
    ]
    script = offline.parse("\n".join(lines), "s.txt", lang)
    session = Session(Dialogue(knee_hug, lang), lang, [])
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        nonlocal count
        count += event == "line"
        return tracer

    sys.settrace(tracer)
    try:
        offline.run_script(session, script)
    finally:
        sys.settrace(None)
    return count


def test_a_long_script_takes_linear_work(lang: IntentSet, knee_hug: Routine) -> None:
    """100,000 lines took 529 s: the coach's speech was rebuilt on every cut. Four times the
    lines must take about four times the work, not sixteen."""
    small, large = _traced_lines(lang, knee_hug, 150), _traced_lines(lang, knee_hug, 600)
    assert large < 5 * small


@pytest.mark.parametrize("when", ["100000", "86400.5", "1440:01", "999999999"])
def test_times_beyond_a_day_are_refused(lang: IntentSet, when: str) -> None:
    """A line at 100,000 s took 9 GB with --out, then crashed; a session lasts hours."""
    with pytest.raises(ScriptError, match=rf"s\.txt:2: time '{when}' is over 24 hours into a session"):
        offline.parse(f"0 start\n{when} stop\n", "s.txt", lang)
    assert offline.parse("0 start\n86400 stop\n", "s.txt", lang)[-1].t == 86400.0


def test_times_in_every_form(lang: IntentSet) -> None:
    text = "0 start\n1. pause\n2.25 resume\n0:59 pause\n1:00.5 resume\n12:05 stop\n"
    assert [u.t for u in offline.parse(text, "s.txt", lang)] == [0.0, 1.0, 2.25, 59.0, 60.5, 725.0]


def test_huge_numbers_are_no_command(lang: IntentSet) -> None:
    assert lang.match("9" * 5000) is None
    assert lang.match("start back stretch " + "1" * 4301) is None
    assert lang.match("start back stretch 007") is None


def test_huge_number_typed_into_a_live_session(tmp_path: Path) -> None:
    """`run --text`: a line of 5,000 digits is no command; the session goes on."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    typed = "start back stretch\n" + "9" * 5000 + "\nhold on\n"
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "run", "--text", "--mute", "--quiet"],
        input=typed, capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "is no command" in done.stderr


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["run", "--in", "", "--mute"], "--in"),
        (["run", "--script", " ", "--mute"], "--script"),
        (["run", "--script", "s.txt", "--out", ""], "--out"),
        (["run", "--script", "s.txt", "--mute", "--timeline", ""], "--timeline"),
        (["--config", "", "config"], "--config"),
    ],
)
def test_an_empty_file_name_is_named(
    capsys: pytest.CaptureFixture[str], argv: list[str], option: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"backstretch: {option}: the file name is empty; give the path of a file\n"
