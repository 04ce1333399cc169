import pytest

from assistant.app import offline
from assistant.coach.intents import IntentSet
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
