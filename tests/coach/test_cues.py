import pytest

from assistant.coach.cues import spell, spell_minutes


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
        spell(1000)


def test_spell_minutes() -> None:
    assert spell_minutes(20) == "less than a minute"
    assert spell_minutes(70) == "one minute"
    assert spell_minutes(17 * 60 + 10) == "seventeen minutes"
