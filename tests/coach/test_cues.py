"""The coach's words: numbers spelled out, and the cue of each step by verbosity."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.app.cli import main
from assistant.coach import routine
from assistant.coach.cues import spell, spell_minutes, step_text
from assistant.coach.dialogue import Dialogue, simulate
from assistant.coach.events import Say, SayKind
from assistant.coach.intents import IntentSet, normalise
from assistant.coach.routine import Pace, Routine, Step, StepKind


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
    assert spell_minutes(150) == "two minutes"  # rounded: 2.5 minutes
    assert spell_minutes(100_000) == "one thousand six hundred sixty seven minutes"


# -- the cue of each step --------------------------------------------------------------

SETUP_LEFT = (
    "Lie flat on the bed, in the most relaxed position you can. Keep your right leg straight and "
    "relaxed, and bend your left knee. Hold your left knee with both hands, just below the kneecap."
)


def _step(kind: StepKind, set_no: int = 1, side: str = "left", rep: int = 0) -> Step:
    return Step(kind, set_no, side, rep, 0 if side == "left" else 1)


def test_the_first_setup_welcomes_explains_and_warns(knee_hug: Routine) -> None:
    text = step_text(knee_hug, _step(StepKind.SETUP), "detailed", fresh=True)
    assert text == (
        "Let's do the knee hug stretch: three sets, twenty on each leg. Move slowly, and breathe with my "
        f"voice. Set one of three. {SETUP_LEFT} A mild soreness in your buttocks or lower back is normal: "
        "it means the joints are stretching. A sharp pain is not: if you feel one, let go of your knee "
        "and rest."
    )


def test_later_setups_switch_legs_and_a_resume_sets_up_again(knee_hug: Routine) -> None:
    second_side = step_text(knee_hug, _step(StepKind.SETUP, 1, "right"), "brief")
    assert (
        second_side.startswith("Switch legs. Let your left leg lie straight")
        and "bend your right knee" in second_side
    )
    next_set = step_text(knee_hug, _step(StepKind.SETUP, 2, "left"), "counts")
    assert next_set.startswith("Set two of three. Switch legs. Let your right leg lie straight")
    resumed = step_text(knee_hug, _step(StepKind.SETUP, 2, "left"), "detailed", fresh=True)
    assert resumed == f"Set two of three. {SETUP_LEFT}"  # no welcome, no warning the second time


@pytest.mark.parametrize(
    ("verbosity", "rep", "fresh", "text"),
    [
        ("detailed", 1, False, "Take a deep breath in, holding your knee."),
        ("detailed", 3, False, "Breathe in again, and relax your arms, legs and buttocks slightly."),
        ("detailed", 4, False, "Breathe in, and relax."),
        ("detailed", 5, True, "Take a deep breath in, holding your knee."),  # after a resume
        ("brief", 3, False, "Breathe in, and relax."),
        ("counts", 1, False, "Breathe in."),
        ("counts", 4, False, "In."),
    ],
)
def test_the_breath_in(knee_hug: Routine, verbosity: str, rep: int, fresh: bool, text: str) -> None:
    assert step_text(knee_hug, _step(StepKind.INHALE, rep=rep), verbosity, fresh) == text


def test_reminders_come_at_their_reps_and_not_in_counts(knee_hug: Routine) -> None:
    form = "keep it as flat against the bed as you can"
    aim = "The aim is to stretch the joints"
    texts = {rep: step_text(knee_hug, _step(StepKind.INHALE, rep=rep), "detailed") for rep in range(1, 21)}
    assert [rep for rep, t in texts.items() if form in t] == [2, 12]
    assert [rep for rep, t in texts.items() if aim in t] == [8]
    assert aim not in step_text(
        knee_hug, _step(StepKind.INHALE, 1, "right", 8), "detailed"
    )  # first side only
    assert aim not in step_text(knee_hug, _step(StepKind.INHALE, rep=8), "brief")
    assert form in step_text(knee_hug, _step(StepKind.INHALE, rep=2), "brief")
    assert step_text(knee_hug, _step(StepKind.INHALE, rep=2), "counts") == "In."


@pytest.mark.parametrize(
    ("verbosity", "rep", "text"),
    [
        ("detailed", 3, "Breathe out, and pull your thigh as close to your chest and belly as you can. "
                        "Your buttocks and the back of your thigh tense. Three."),
        ("detailed", 4, "Breathe out, pull. Four."),
        ("brief", 1, "Breathe out, pull. One."),
        ("counts", 17, "Seventeen."),
    ],
)  # fmt: skip
def test_the_breath_out_counts(knee_hug: Routine, verbosity: str, rep: int, text: str) -> None:
    assert step_text(knee_hug, _step(StepKind.EXHALE, rep=rep), verbosity) == text


def test_hold_and_release(knee_hug: Routine) -> None:
    assert step_text(knee_hug, _step(StepKind.HOLD, rep=1), "detailed") == "Stay here for one breath."
    assert step_text(knee_hug, _step(StepKind.HOLD, rep=9), "detailed") == "Stay."
    release = "Breathe in, relax, and slowly let go of your knee."
    assert step_text(knee_hug, _step(StepKind.RELEASE), "counts") == release


def test_a_routine_of_ones_own_rewords_the_cues(knee_hug: Routine) -> None:
    cues = {
        **knee_hug.cues,
        "exhale": {**knee_hug.cues["exhale"], "short": "Pull the {side} knee, {count} of {reps}."},
    }
    mine = replace(knee_hug, cues=cues, first_side="right")
    assert (
        step_text(mine, _step(StepKind.EXHALE, rep=9, side="right"), "brief")
        == "Pull the right knee, Nine of twenty."
    )


def test_an_unknown_verbosity_is_refused(knee_hug: Routine) -> None:
    with pytest.raises(ValueError, match="unknown verbosity 'chatty'"):
        step_text(knee_hug, _step(StepKind.INHALE, rep=1), "chatty")
