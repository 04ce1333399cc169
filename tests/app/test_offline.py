from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType

import pytest

from assistant.app import offline
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
    ],
)
def test_malformed_scripts(lang: IntentSet, text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        offline.parse(text, "s.txt", lang)


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
