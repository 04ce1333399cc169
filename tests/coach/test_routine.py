from dataclasses import replace
from pathlib import Path

import pytest

from assistant.coach import routine
from assistant.coach.cues import step_text
from assistant.coach.dialogue import Dialogue, foreseeable_texts, simulate
from assistant.coach.events import Say
from assistant.coach.intents import IntentSet
from assistant.coach.routine import VERBOSITIES, Routine, StepKind, plan
from assistant.errors import ConfigError


def test_default_counts_and_order(knee_hug: Routine) -> None:
    assert (knee_hug.reps_per_side, knee_hug.sets, knee_hug.first_side) == (20, 3, "left")
    steps = plan(knee_hug, with_hold=False)
    pulls = [s for s in steps if s.kind is StepKind.EXHALE]
    assert len(pulls) == 120
    sides = [s.side for s in steps if s.kind is StepKind.SETUP]
    assert sides == ["left", "right"] * 3
    assert [p.rep for p in pulls[:21]] == [*range(1, 21), 1]
    assert sum(s.completes_rep for s in steps) == 120


def test_hold_adds_a_step_that_completes_the_rep(knee_hug: Routine) -> None:
    steps = plan(knee_hug, with_hold=True)
    holds = [s for s in steps if s.kind is StepKind.HOLD]
    assert len(holds) == 120 and all(h.completes_rep for h in holds)
    assert not any(s.completes_rep for s in steps if s.kind is StepKind.EXHALE)


def test_cues_follow_the_source(knee_hug: Routine) -> None:
    steps = plan(knee_hug, with_hold=False)
    first = step_text(knee_hug, steps[0], "detailed", fresh=True)
    for phrase in (
        "Lie flat",
        "bend your left knee",
        "right leg straight",
        "just below the kneecap",
        "soreness in your buttocks or lower back",
        "sharp pain",
    ):
        assert phrase in first
    exhale = step_text(knee_hug, steps[2], "detailed")
    assert "chest and belly" in exhale and "back of your thigh" in exhale and exhale.endswith("One.")
    inhale2 = step_text(knee_hug, steps[3], "detailed")
    assert "relax your arms, legs and buttocks slightly" in inhale2
    assert "flat against the bed" in inhale2  # the straight-leg reminder at rep 2


def test_cues_shorten_as_a_side_goes_on(knee_hug: Routine) -> None:
    steps = plan(knee_hug, with_hold=False)
    exhales = [s for s in steps if s.kind is StepKind.EXHALE][:20]
    texts = [step_text(knee_hug, s, "detailed") for s in exhales]
    assert len(texts[0]) > 60 and texts[3] == "Breathe out, pull. Four."
    assert step_text(knee_hug, exhales[3], "counts") == "Four."
    assert step_text(knee_hug, exhales[0], "brief") == "Breathe out, pull. One."


def test_form_reminder_now_and_then_not_every_rep(knee_hug: Routine) -> None:
    steps = plan(knee_hug, with_hold=False)
    inhales = [s for s in steps if s.kind is StepKind.INHALE]
    reminded = [s for s in inhales if "flat against the bed" in step_text(knee_hug, s, "detailed")]
    per_side = {(s.set_no, s.side) for s in reminded}
    assert len(per_side) == 6  # early on every side
    assert 0 < len(reminded) <= 3 * 6


def test_every_cue_is_renderable(knee_hug: Routine, lang: IntentSet) -> None:
    with_hold = replace(knee_hug, pace=replace(knee_hug.pace, hold_s=2.0))
    texts = {t for v in VERBOSITIES for t in foreseeable_texts(with_hold, lang, v)}
    assert any(t.startswith("Stay") for t in texts)  # the hold cues are among them
    assert all(t and "{" not in t for t in texts)


def test_user_routine_overrides_only_what_it_sets(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "reps_per_side: 5\nsets: 1\nfirst_side: right\npace:\n  exhale_s: 6\n"
        "cues:\n  exhale:\n    short: 'Out. {count}.'\n"
    )
    mine = routine.load(path)
    assert (mine.reps_per_side, mine.sets, mine.first_side) == (5, 1, "right")
    assert mine.pace.exhale_s == 6 and mine.pace.inhale_s == routine.load().pace.inhale_s
    assert mine.cues["exhale"]["short"] == "Out. {count}."
    assert mine.cues["exhale"]["full"] == routine.load().cues["exhale"]["full"]
    assert [s.side for s in plan(mine, False) if s.kind is StepKind.SETUP] == ["right", "left"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reps_per_side: many\n", r"mine\.yaml:1: reps_per_side: expected a whole number, got 'many'"),
        ("sets: 0\n", r"mine\.yaml:1: sets: must be between 1 and 20"),
        ("first_side: middle\n", r"first_side: expected one of left, right"),
        ("pace:\n  inhale: 3\n", r"mine\.yaml:2: pace\.inhale: unknown key"),
        ("cues:\n  exhale:\n    short: 'Out {rep}'\n", r"mine\.yaml:3: cues\.exhale\.short: bad placeholder"),
        # Routine text is no format string: only the documented {name}, nothing evaluated.
        ("cues:\n  setup: '{side.foo}'\n", r"mine\.yaml:2: cues\.setup: bad placeholder '\{side\.foo\}'"),
        ("cues:\n  setup: '{side:>100000000}'\n", r"cues\.setup: bad placeholder '\{side:>100000000\}'"),
        ("cues:\n  setup: '{side.__class__.__mro__}'\n", r"cues\.setup: bad placeholder"),
        ("cues:\n  setup: '{side[0]}'\n", r"cues\.setup: bad placeholder"),
        ("cues:\n  setup: '{side!r}'\n", r"cues\.setup: bad placeholder"),
        ("cues:\n  setup: '{0}'\n", r"cues\.setup: bad placeholder '\{0\}'"),
        ("cues:\n  setup: '{}'\n", r"cues\.setup: bad placeholder '\{\}'"),
        ("cues:\n  setup: 'left {side'\n", r"cues\.setup: a brace that is no placeholder"),
        ("cues:\n  setup: 'done }'\n", r"cues\.setup: a brace that is no placeholder"),
        # Each text only has the placeholders its moment fills (the summary has no leg).
        ("cues:\n  setup: 'You did {done}'\n", r"cues\.setup: bad placeholder '\{done\}'; known"),
        ("cues:\n  finished: 'Done, {side}'\n", r"cues\.finished: bad placeholder '\{side\}'"),
        ("reps: [\n", r"mine\.yaml:\d+: broken YAML"),
        ("coaching:\n  form_at_reps: [2, x]\n", r"coaching\.form_at_reps\[1\]: expected a rep number"),
    ],
)
def test_bad_routine_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        routine.load(path)


def test_placeholders_are_filled_by_name_only(knee_hug: Routine, lang: IntentSet) -> None:
    assert routine.fill("Hold your {side} knee, {side}.", {"side": "left"}) == "Hold your left knee, left."
    assert routine.fill("{count}.", {"count": "{side}"}) == "{side}."  # a value is not read again
    mine = replace(knee_hug, cues={**knee_hug.cues, "finished": "{done} of {total}, {sets} sets of {reps}."})
    start = lang.match("start")
    assert start is not None
    says = [a for a in simulate(Dialogue(mine, lang), [(0.0, start)]) if isinstance(a, Say)]
    assert says[-1].text == "one hundred twenty of one hundred twenty, three sets of twenty."
