import math
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.app.cli import main
from assistant.coach import routine
from assistant.coach.cues import spell, spell_minutes
from assistant.coach.dialogue import Dialogue, simulate
from assistant.coach.events import Say, SayKind
from assistant.coach.intents import IntentSet, normalise
from assistant.coach.routine import Pace


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (42, "forty two"),
        (100, "one hundred"),
        (120, "one hundred twenty"),
        (999, "nine hundred ninety nine"),
    ],
)
def test_spell(n: int, words: str) -> None:
    assert spell(n) == words


def test_spell_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        spell(-1)


def test_spell_minutes() -> None:
    assert spell_minutes(20) == "less than a minute"
    assert spell_minutes(70) == "one minute"
    assert spell_minutes(17 * 60 + 10) == "seventeen minutes"


def test_large_numbers() -> None:
    assert spell(1000) == "one thousand"
    assert spell(4000) == "four thousand"
    assert spell(2_305_017) == "two million three hundred five thousand seventeen"


def test_every_spoken_quantity_in_the_ranges_is_spelled(lang: IntentSet) -> None:
    """Reps, sets, total reps and minutes, over the whole range the routine and the
    configuration allow: each in words, and typed digits read as the same words."""
    biggest = replace(
        routine.load(),
        reps_per_side=routine.REPS_PER_SIDE[1],
        sets=routine.SETS[1],
        pace=Pace(routine.INHALE_S[1], routine.EXHALE_S[1], routine.HOLD_S[1]),
    )
    dialogue = Dialogue(biggest, lang)
    start = lang.match("start")
    assert start is not None
    says = [a for a in simulate(dialogue, [(0.0, start)]) if isinstance(a, Say)]
    assert says[-1].kind is SayKind.FINISHED
    assert "four thousand knee hugs" in says[-1].text
    longest_s = max(dialogue.total_s(), says[-1].t)
    for n in range(0, biggest.total_reps + 1):
        words = spell(n)
        assert words and not any(c.isdigit() for c in words)
        assert normalise(str(n)) == words
    for minutes in range(0, math.ceil(longest_s / 60) + 2):
        spell_minutes(minutes * 60.0)
    assert {routine.REPS_PER_SIDE, routine.SETS} == {(1, 100), (1, 20)}  # the README's ranges


def test_a_valid_configuration_with_many_reps_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("reps_per_side: 25\nsets: 20\n")
    assert main(["--config", str(config), "routine"]) == 0
    assert "1000 in all" in capsys.readouterr().out
