"""The dialogue manager on a virtual clock: counts, every command in every state, timing."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.coach import intents, routine, yamldoc
from assistant.coach.cues import spell
from assistant.coach.dialogue import (
    BREATH_BOUNDS_S,
    PACE_STEP,
    Dialogue,
    Position,
    foreseeable_texts,
    in_order_of_use,
)
from assistant.coach.events import Cut, Say, SayKind, State, StateChange, Volume
from assistant.coach.intents import RESPONSES, IntentSet
from assistant.coach.routine import Routine, StepKind, plan
from assistant.errors import ConfigError
from tests.kit.sessions import (
    completed_reps,
    drive,
    intents_with_unanswered,
    intents_without_skip,
    says,
    spoken_spans,
)


def test_uninterrupted_session_gives_120_pulls_in_order(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    actions = drive(dialogue, lang, [(0.0, "start back stretch")])
    pulls = says(actions, SayKind.EXHALE)
    assert len(pulls) == 120
    done = completed_reps(actions)
    assert len(done) == 120
    sides = [side for _, side, _ in done]
    assert sides == [s for _ in range(3) for s in ["left"] * 20 + ["right"] * 20]
    assert dialogue.state is State.FINISHED
    last = says(actions)[-1]
    assert last.kind == SayKind.FINISHED and "Well done" in last.text
    assert "one hundred twenty" in last.text


def test_utterances_never_overlap(knee_hug: Routine, lang: IntentSet) -> None:
    script = [
        (0.0, "start"),
        (3.0, "how many left"),
        (3.5, "help"),
        (40.0, "slower"),
        (41.0, "say that again"),
        (60.0, "louder"),
        (61.0, "pause"),
        (70.0, "resume"),
    ]
    spans = spoken_spans(drive(Dialogue(knee_hug, lang), lang, script))
    for (_s1, e1, t1), (s2, _, t2) in zip(spans, spans[1:], strict=False):
        assert e1 <= s2 + 1e-9, (t1, t2)


def test_cue_onsets_follow_the_pace(knee_hug: Routine, lang: IntentSet) -> None:
    """A short cue starts a phase of inhale_s or exhale_s; a long one stretches its phase."""
    actions = drive(Dialogue(knee_hug, lang), lang, [(0.0, "start")])
    spoken = says(actions)
    checked = 0
    for a, b in zip(spoken, spoken[1:], strict=False):
        if a.kind not in (SayKind.INHALE, SayKind.EXHALE):
            continue
        pace = knee_hug.pace.inhale_s if a.kind == SayKind.INHALE else knee_hug.pace.exhale_s
        if a.duration_s + 0.4 <= pace:
            assert b.t - a.t == pytest.approx(pace)
            checked += 1
        else:
            assert b.t - a.t == pytest.approx(a.duration_s + 0.4)
    assert checked > 200


# -- every command in every state --------------------------------------------------

COMMANDS = (
    "start",
    "pause",
    "resume",
    "stop",
    "slower",
    "faster",
    "repeat",
    "status",
    "skip",
    "help",
    "louder",
    "quieter",
)

# state -> command -> (state after, a phrase the reply contains)
EXPECTED: dict[str, dict[str, tuple[State, str]]] = {
    "idle": {
        "start": (State.RUNNING, "Lie flat on the bed"),
        "pause": (State.IDLE, "Say start back stretch"),
        "resume": (State.IDLE, "Say start back stretch"),
        "stop": (State.IDLE, "Say start back stretch"),
        "slower": (State.IDLE, "Say start back stretch"),
        "faster": (State.IDLE, "Say start back stretch"),
        "repeat": (State.IDLE, "Say start back stretch"),
        "status": (State.IDLE, "We have not started"),
        "skip": (State.IDLE, "Say start back stretch"),
        "help": (State.IDLE, "Say start back stretch"),
        "louder": (State.IDLE, "Say start back stretch"),
        "quieter": (State.IDLE, "Say start back stretch"),
    },
    "running": {
        "start": (State.RUNNING, "already under way, at set one, left leg, rep four"),
        "pause": (State.PAUSED, "Paused"),
        "resume": (State.RUNNING, "already under way"),
        "stop": (State.STOPPED, "You did three of twelve"),
        "slower": (State.RUNNING, "Slower"),
        "faster": (State.RUNNING, "Faster"),
        "repeat": (State.RUNNING, "Breathe"),
        "status": (State.RUNNING, "Set one of one, left leg, rep four of six"),
        "skip": (State.RUNNING, "Switch legs"),
        "help": (State.RUNNING, "You can say"),
        "louder": (State.RUNNING, "Raising my voice"),
        "quieter": (State.RUNNING, "Lowering my voice"),
    },
    "paused": {
        "start": (State.RUNNING, "Resuming: set one, left leg, rep four"),
        "pause": (State.PAUSED, "We are paused at set one, left leg, rep four"),
        "resume": (State.RUNNING, "Resuming: set one, left leg, rep four"),
        "stop": (State.STOPPED, "You did three of twelve"),
        "slower": (State.PAUSED, "Slower"),
        "faster": (State.PAUSED, "Faster"),
        "repeat": (State.PAUSED, "Breathe"),
        "status": (State.PAUSED, "Paused at set one of one, left leg, rep four of six"),
        "skip": (State.RUNNING, "Switch legs"),
        "help": (State.PAUSED, "You can say"),
        "louder": (State.PAUSED, "Raising my voice"),
        "quieter": (State.PAUSED, "Lowering my voice"),
    },
}
for _final, _summary in (("finished", "Well done"), ("stopped", "We'll end here")):
    EXPECTED[_final] = {c: (State[_final.upper()], "Say start back stretch") for c in COMMANDS}
    EXPECTED[_final]["start"] = (State.RUNNING, "Lie flat on the bed")
    EXPECTED[_final]["status"] = (State[_final.upper()], _summary)
    EXPECTED[_final]["repeat"] = (State[_final.upper()], _summary)


def _in_state(name: str, routine: Routine, lang: IntentSet) -> tuple[Dialogue, float]:
    """A dialogue brought to `name`; running and paused stand at rep 4 of the first side."""
    small = replace(routine, reps_per_side=6, sets=1)
    dialogue = Dialogue(small, lang)
    if name == "idle":
        return dialogue, 0.0
    if name == "finished":
        drive(dialogue, lang, [(0.0, "start")])
        return dialogue, 1000.0
    t = 0.0
    dialogue.hear(lang.match("start"), t)  # type: ignore[arg-type]
    while dialogue.done < 3 or dialogue.current.kind is not StepKind.INHALE:
        t = dialogue.next_wakeup()  # type: ignore[assignment]
        dialogue.advance(t)
    t += 0.5
    if name == "paused":
        dialogue.hear(lang.match("pause"), t)  # type: ignore[arg-type]
    elif name == "stopped":
        dialogue.hear(lang.match("stop"), t)  # type: ignore[arg-type]
    return dialogue, t + 0.5


@pytest.mark.parametrize("state", list(EXPECTED))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_in_every_state(knee_hug: Routine, lang: IntentSet, state: str, command: str) -> None:
    dialogue, t = _in_state(state, knee_hug, lang)
    assert dialogue.state.value == state
    intent = lang.match(command if command != "skip" else "next side")
    assert intent is not None
    actions = dialogue.hear(intent, t)
    after, phrase = EXPECTED[state][command]
    assert dialogue.state is after
    spoken = " ".join(a.text for a in says(actions))
    assert phrase in spoken, spoken
    assert all(a.t >= t for a in actions if isinstance(a, Say))


# -- pause and resume ------------------------------------------------------------


def test_pause_freezes_and_resume_recues_the_same_rep(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    actions = drive(dialogue, lang, [(0.0, "start"), (100.0, "pause"), (400.0, "resume"), (401.0, "stop")])
    paused = next(a for a in actions if isinstance(a, StateChange) and a.state is State.PAUSED)
    silent = [a for a in says(actions) if 100.0 < a.t < 400.0]
    assert silent == []  # nothing said while paused
    assert [a.text for a in says(actions) if a.t < 100.0 < a.end_s][0].startswith("Breathe")
    assert Cut(100.0) in actions  # the cue under way when the user said pause is cut off
    resumed = next(a for a in says(actions) if a.text.startswith("Resuming"))
    assert f"rep {spell(paused.rep)}" in resumed.text
    following = says(actions)[says(actions).index(resumed) + 1]
    assert following.kind == SayKind.INHALE and "holding your knee" in following.text


pause_commands = st.lists(
    st.tuples(
        st.floats(min_value=0.5, max_value=60.0),
        st.sampled_from(
            [
                "pause",
                "resume",
                "pause",
                "resume",
                "status",
                "slower",
                "faster",
                "repeat",
                "help",
                "louder",
                "quieter",
            ]
        ),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(pause_commands)
def test_no_rep_lost_or_repeated_whatever_the_pauses(commands: list[tuple[float, str]]) -> None:
    lang = intents.load()
    small = replace(routine.load(), reps_per_side=4, sets=2)
    script, t = [(0.0, "start")], 0.0
    for gap, command in commands:
        t += gap
        script.append((t, command))
    script.append((t + 1.0, "resume"))  # never end paused
    dialogue = Dialogue(small, lang)
    actions = drive(dialogue, lang, script)
    expected = [(s.set_no, s.side, s.rep) for s in plan(small, False) if s.completes_rep]
    assert completed_reps(actions) == expected
    assert dialogue.state is State.FINISHED
    spans = spoken_spans(actions)
    for (_, e1, _), (s2, _, _) in zip(spans, spans[1:], strict=False):
        assert e1 <= s2 + 1e-9


# -- pace, volume, skip, repeat, status -----------------------------------------------


def test_slower_and_faster_stop_at_the_bounds(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    replies = []
    for i in range(12):
        replies += says(dialogue.hear(lang.match("slower"), float(i * 10)))  # type: ignore[arg-type]
    assert replies[-2].text == "This is already the slowest pace."
    assert dialogue.pace.inhale_s + dialogue.pace.exhale_s == pytest.approx(BREATH_BOUNDS_S[1])
    for i in range(20):
        replies += says(dialogue.hear(lang.match("faster"), 200.0 + i * 10))  # type: ignore[arg-type]
    assert replies[-2].text == "This is already the fastest pace."
    assert dialogue.pace.inhale_s + dialogue.pace.exhale_s == pytest.approx(BREATH_BOUNDS_S[0])
    ratio = knee_hug.pace.inhale_s / knee_hug.pace.exhale_s
    assert dialogue.pace.inhale_s / dialogue.pace.exhale_s == pytest.approx(ratio)


def test_slower_takes_effect_from_the_next_phase(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    dialogue.hear(lang.match("start"), 0.0)  # type: ignore[arg-type]
    while (wake := dialogue.next_wakeup()) is not None and wake <= 150.0:
        dialogue.advance(wake)
    phase_ends = dialogue.step_ends
    ack = says(dialogue.hear(lang.match("slower"), 150.0))  # type: ignore[arg-type]
    assert ack[0].text == "Slower: breathe in for four seconds, and out for five."
    assert dialogue.step_ends == phase_ends  # the phase under way keeps its length
    slower = knee_hug.pace.scaled(PACE_STEP)
    cues: list[Say] = []
    while len(cues) < 12 and (wake := dialogue.next_wakeup()) is not None:
        cues += [a for a in says(dialogue.advance(wake)) if a.kind in (SayKind.INHALE, SayKind.EXHALE)]
    assert cues[0].t == pytest.approx(max(phase_ends, ack[0].t + ack[0].duration_s))
    checked = 0
    for a, b in zip(cues, cues[1:], strict=False):
        pace = slower.inhale_s if a.kind == SayKind.INHALE else slower.exhale_s
        if a.duration_s + 0.4 <= pace:  # a short cue: its phase lasts the new pace exactly
            assert b.t - a.t == pytest.approx(pace)
            checked += 1
    assert checked >= 8


def test_volume_changes_are_actions(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang, volume=0.8)
    actions = drive(dialogue, lang, [(0.0, "louder"), (5.0, "louder"), (10.0, "louder"), (20.0, "quieter")])
    volumes = [a.volume for a in actions if isinstance(a, Volume)]
    assert volumes == [0.9, 1.0, 0.9]
    assert any(a.text == "This is already the loudest." for a in says(actions))


def test_skip_to_the_next_set(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    actions = drive(dialogue, lang, [(0.0, "start"), (60.0, "skip to the next set"), (61.0, "stop")])
    assert "Set two of three" in " ".join(a.text for a in says(actions) if a.kind == SayKind.SETUP)
    assert dialogue.current.set_no == 2 and dialogue.current.side == "left"


def test_skip_on_the_last_side_finishes(knee_hug: Routine, lang: IntentSet) -> None:
    small = replace(knee_hug, reps_per_side=2, sets=1)
    dialogue = Dialogue(small, lang)
    actions = drive(dialogue, lang, [(0.0, "start"), (5.0, "skip"), (20.0, "skip")])
    assert dialogue.state is State.FINISHED
    assert [a.kind for a in says(actions)][-2:] == [SayKind.REPLY, SayKind.FINISHED]


def test_repeat_says_the_last_instruction(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    actions = drive(dialogue, lang, [(0.0, "start"), (30.0, "say that again"), (31.0, "stop")])
    spoken = says(actions)
    again = next(a for a in spoken if a.kind == SayKind.REPEAT)
    before = [a for a in spoken if a.t < 30.0 and a.kind in (SayKind.INHALE, SayKind.EXHALE, SayKind.SETUP)][
        -1
    ]
    assert again.text == before.text


def test_status_estimates_time_left(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    full = dialogue.total_s()
    actions = drive(dialogue, lang, [(0.0, "start"), (300.0, "how many left"), (301.0, "stop")])
    status = next(a for a in says(actions) if a.text.startswith("Set one of three"))
    assert "About" in status.text and "minutes to go" in status.text
    assert 600 < full < 1500


def test_stop_summarises(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    actions = drive(dialogue, lang, [(0.0, "start"), (125.0, "I'm done")])
    summary = says(actions)[-1]
    assert summary.kind == SayKind.STOPPED
    assert f"You did {spell(dialogue.done)} of one hundred twenty" in summary.text
    assert "two minutes" in summary.text


def test_the_cues_come_in_the_order_a_session_says_them(knee_hug: Routine, lang: IntentSet) -> None:
    """The order a first run prepares them in: the welcome first, then each cue as a
    session reaches it; replies and resume-only cues after, sorted."""
    order = in_order_of_use(knee_hug, lang, "detailed")
    assert sorted(order) == sorted(foreseeable_texts(knee_hug, lang, "detailed"))  # each once
    start = lang.match("start back stretch")
    assert start is not None
    said = [a.text for a in Dialogue(knee_hug, lang).hear(start, 0.0) if isinstance(a, Say)]
    assert order[0] == said[0] and order[0].startswith("Let's do the knee hug stretch")
    replies = [t for t in order if t in lang.responses.values()]
    assert replies == sorted(replies) and order.index(replies[0]) > order.index("Breathe out, pull. Twenty.")


def test_likely_texts_are_what_stop_and_resume_would_say(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    drive(dialogue, lang, [(0.0, "start"), (100.0, "pause")])
    stop_now, resume = dialogue.likely_texts(110.0)
    resumed = says(dialogue.hear(lang.match("resume"), 110.0))  # type: ignore[arg-type]
    assert resume == resumed[0].text
    while (wake := dialogue.next_wakeup()) is not None and wake <= 130.0:
        dialogue.advance(wake)
    (stop_later,) = dialogue.likely_texts(130.0)  # running: only the summary
    assert stop_later == says(dialogue.hear(lang.match("stop"), 130.0))[-1].text  # type: ignore[arg-type]
    assert dialogue.likely_texts(140.0) == []  # stopped: nothing to ask for


def test_a_saved_position_is_offered_and_resumed(knee_hug: Routine, lang: IntentSet) -> None:
    first = Dialogue(knee_hug, lang)
    drive(first, lang, [(0.0, "start"), (200.0, "slower"), (300.0, "pause")])
    saved = first.position()
    assert (saved.done, saved.pace) == (first.done, first.pace) and saved.rep > 0

    later = Dialogue(knee_hug, lang)
    offer = says(later.offer(saved, 0.0))
    side, rep = saved.side, spell(saved.rep)
    assert offer[0].text.startswith(f"You stopped at set one, {side} leg, rep {rep}.")
    hint = says(later.hear(lang.match("status"), 10.0))  # type: ignore[arg-type]
    assert "We have not started" in hint[0].text
    again = says(later.hear(lang.match("help"), 20.0))  # type: ignore[arg-type]
    assert again[0].text == offer[0].text  # the offer stands
    actions = later.hear(lang.match("resume"), 30.0)  # type: ignore[arg-type]
    assert says(actions)[0].text == f"Resuming: set one, {side} leg, rep {rep}."
    assert (later.done, later.pace, later.current.rep) == (saved.done, saved.pace, saved.rep)
    rest = drive(later, lang, [])
    assert len(completed_reps(actions + rest)) == 120 - saved.done  # picks up, loses nothing


def test_start_after_an_offer_begins_again(knee_hug: Routine, lang: IntentSet) -> None:
    first = Dialogue(knee_hug, lang)
    drive(first, lang, [(0.0, "start"), (200.0, "faster"), (300.0, "pause")])
    later = Dialogue(knee_hug, lang)
    later.offer(first.position(), 0.0)
    later.hear(lang.match("start back stretch"), 5.0)  # type: ignore[arg-type]
    assert (later.done, later.pace, later.index) == (0, knee_hug.pace, 0)


def test_an_offer_the_routine_does_not_have_is_ignored(knee_hug: Routine, lang: IntentSet) -> None:
    short = Dialogue(replace(knee_hug, reps_per_side=5), lang)
    assert short.offer(Position(1, "left", 12, 11, knee_hug.pace), 0.0) == []
    assert short.saved is None


def test_interrupt_keeps_the_place_silently(knee_hug: Routine, lang: IntentSet) -> None:
    dialogue = Dialogue(knee_hug, lang)
    dialogue.hear(lang.match("start"), 0.0)  # type: ignore[arg-type]
    while (wake := dialogue.next_wakeup()) is not None and wake < 100.0:
        dialogue.advance(wake)
    before = dialogue.position()
    actions = dialogue.interrupt(100.0)
    assert dialogue.state is State.PAUSED and says(actions) == []
    assert dialogue.position() == before


# -- the intents file against the handlers and the replies ----------------------------


def test_the_handlers_are_the_intents_of_the_bundled_file(lang: IntentSet) -> None:
    assert list(Dialogue.HANDLERS) == list(lang.names)


def test_an_intent_without_a_handler_is_an_error(knee_hug: Routine) -> None:
    lang = intents.from_doc(yamldoc.parse(intents_with_unanswered(), "mine.yaml"))
    with pytest.raises(
        ConfigError,
        match=r"^mine\.yaml:\d+: intents\.sing: the coach has no answer to this intent; remove it",
    ):
        Dialogue(knee_hug, lang)


def test_an_intent_the_dialogue_answers_must_be_in_the_file(knee_hug: Routine) -> None:
    lang = intents.from_doc(yamldoc.parse(intents_without_skip(), "mine.yaml"))
    assert "skip" not in lang.names and lang.match("next side") is None
    with pytest.raises(ConfigError, match=r"^mine\.yaml:\d+: intents: the intent 'skip' is missing"):
        Dialogue(knee_hug, lang)


def test_every_reply_is_asked_for_with_its_placeholders(knee_hug: Routine, lang: IntentSet) -> None:
    """Each response reads "<key> {each placeholder RESPONSES gives it}": driven through every
    command in every state and every bound, the dialogue asks for every key and fills every
    placeholder (a KeyError otherwise), so RESPONSES is what the dialogue really does."""
    tagged = replace(
        lang,
        responses={k: " ".join([f"<{k}>", *(f"{{{p}}}" for p in sorted(v))]) for k, v in RESPONSES.items()},
    )
    texts: list[str] = []
    for state in EXPECTED:
        for command in COMMANDS:
            dialogue, t = _in_state(state, knee_hug, tagged)
            texts += dialogue.likely_texts(t)
            texts += [a.text for a in says(dialogue.hear(tagged.match(command), t))]  # type: ignore[arg-type]
    bounds = (
        [(0.0, "start")]
        + [(10.0 + i, "slower") for i in range(12)]
        + [(30.0 + i, "faster") for i in range(20)]
    )
    texts += [a.text for a in says(drive(Dialogue(knee_hug, tagged), tagged, bounds))]
    texts += [a.text for a in says(drive(Dialogue(knee_hug, tagged, volume=1.0), tagged, [(0.0, "louder")]))]
    texts += [a.text for a in says(drive(Dialogue(knee_hug, tagged, volume=0.1), tagged, [(0.0, "quieter")]))]
    small = replace(knee_hug, reps_per_side=2, sets=1)
    texts += [
        a.text
        for a in says(drive(Dialogue(small, tagged), tagged, [(0.0, "start"), (5.0, "skip"), (20.0, "skip")]))
    ]
    texts += [
        a.text for a in says(Dialogue(knee_hug, tagged).offer(Position(1, "left", 3, 2, knee_hug.pace), 0.0))
    ]
    for notice in ("cannot_save", "cannot_save_full"):  # said for the store, in any state
        texts += [a.text for a in says(Dialogue(knee_hug, tagged).tell(notice, 0.0))]
    asked = {m.group(1) for text in texts for m in re.finditer(r"<(\w+)>", text)}
    assert asked == set(RESPONSES)
    assert not [text for text in texts if "{" in text or "}" in text]
