"""The timeline (app/timeline.py): the one place events become JSON, and the transcript.

The JSON of each event is spelled out here as README documents it: a renamed field,
a changed key or a lost precision fails a test, and the format changes only on purpose.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from assistant.app.timeline import TimelineFile, Transcript, clock_text, record
from assistant.coach.events import Cut, Event, Heard, Say, SayKind, State, StateChange, Understood, Volume
from assistant.errors import BackstretchError

EVENTS: list[tuple[Event, dict[str, object]]] = [
    (Heard(1.5, "hold on"), {"t": 1.5, "event": "heard", "text": "hold on"}),
    (
        Heard(2.0, "pause", 1.4),
        {"t": 2.0, "event": "heard", "text": "pause", "speech_end": 1.4, "fired": 2.0},
    ),
    (Understood(2.0, "pause"), {"t": 2.0, "event": "intent", "name": "pause", "slots": {}}),
    (
        Understood(3.0, "skip", {"skip_target": "set"}, 2.6),
        {
            "t": 3.0,
            "event": "intent",
            "name": "skip",
            "slots": {"skip_target": "set"},
            "speech_end": 2.6,
            "fired": 3.0,
        },
    ),  # fmt: skip
    (
        Say(4.0, "Breathe in.", 1.25, SayKind.INHALE),
        {"t": 4.0, "event": "say", "text": "Breathe in.", "duration": 1.25, "kind": "inhale"},
    ),
    (Cut(5.0), {"t": 5.0, "event": "cut"}),
    (Volume(6.0, 0.9), {"t": 6.0, "event": "volume", "volume": 0.9}),
    (
        StateChange(7.0, State.RUNNING, 2, "right", 7, 26),
        {"t": 7.0, "event": "state", "state": "running", "set": 2, "side": "right", "rep": 7, "done": 26},
    ),
]


@pytest.mark.parametrize(("event", "expected"), EVENTS)
def test_each_event_is_one_json_object_as_documented(event: Event, expected: dict[str, object]) -> None:
    assert record(event) == expected
    assert list(record(event))[:2] == ["t", "event"]  # the two keys every line starts with


def test_every_say_kind_and_state_has_its_name() -> None:
    kinds = {record(Say(0.0, "x", 1.0, kind))["kind"] for kind in SayKind}
    assert kinds == {"setup", "inhale", "exhale", "hold", "release", "reply", "repeat", "finished", "stopped"}
    states = {record(StateChange(0.0, state, 1, "left", 0, 0))["state"] for state in State}
    assert states == {"idle", "running", "paused", "finished", "stopped"}


def test_the_file_is_json_lines_flushed_per_line_with_full_precision(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    timeline = TimelineFile(path)
    t = 0.1 + 0.2  # 0.30000000000000004: a renderer places cues at round(t * rate)
    timeline.write(Say(t, "Ça va, « Stay ».", 0.5, SayKind.REPLY))
    lines = path.read_text(encoding="utf-8").splitlines()  # readable before close: a crash keeps it
    assert len(lines) == 1 and "Ça va, « Stay »." in lines[0]  # not escaped
    assert json.loads(lines[0])["t"] == t
    for event, _ in EVENTS:
        timeline.write(event)
    timeline.close()
    assert [json.loads(line) for line in path.read_text().splitlines()[1:]] == [e for _, e in EVENTS]


def test_a_timeline_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        BackstretchError, match=r"no/such/t\.jsonl: cannot write the timeline \(.*\); check the path"
    ):
        TimelineFile(tmp_path / "no" / "such" / "t.jsonl")


@pytest.mark.parametrize(
    ("t", "text"), [(0.0, " 0:00.0"), (59.96, " 1:00.0"), (754.25, "12:34.2"), (-1.0, " 0:00.0")]
)
def test_clock_text(t: float, text: str) -> None:
    assert clock_text(t) == text


def test_the_transcript_is_what_was_said_and_heard() -> None:
    out = io.StringIO()
    transcript = Transcript(out)
    for event, _ in EVENTS:
        transcript.write(event)
    transcript.write(StateChange(8.0, State.PAUSED, 2, "right", 7, 26))
    assert out.getvalue().splitlines() == [
        " 0:01.5  you    hold on",
        " 0:02.0  you    pause",
        " 0:02.0         -> pause",
        " 0:03.0         -> skip {'skip_target': 'set'}",
        " 0:04.0  coach  Breathe in.",
        " 0:05.0         (cut off)",
        " 0:06.0         (volume 0.9)",
        " 0:08.0         [paused, done 26]",  # running states only with states=True
    ]
    verbose = io.StringIO()
    Transcript(verbose, states=True).write(EVENTS[-1][0])
    assert verbose.getvalue() == " 0:07.0         [running, done 26]\n"
