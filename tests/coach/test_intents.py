from typing import get_args

import pytest

from assistant.coach import intents, yamldoc
from assistant.coach.intents import IntentSet, normalise, parse_template
from assistant.errors import ConfigError
from tests.kit import corpus
from tests.kit.sessions import bundled_intents
from tests.kit.wordings import DEV, HELD_OUT
from tests.kit.wordings import pairs as wordings_pairs


def phrases_of(template: str) -> set[str]:
    return {p.text for p in intents.expand(parse_template(template), {})}


def test_alternatives_and_optional_words() -> None:
    assert phrases_of("(start|begin) [the] back stretch") == {
        "start back stretch",
        "start the back stretch",
        "begin back stretch",
        "begin the back stretch",
    }
    assert phrases_of("a [b [c]] (d|e [f])") == {
        "a d",
        "a e",
        "a e f",
        "a b d",
        "a b e",
        "a b e f",
        "a b c d",
        "a b c e",
        "a b c e f",
    }


@pytest.mark.parametrize("bad", ["(a|b", "a]", "[a)", "a {x"])
def test_bad_templates(bad: str) -> None:
    with pytest.raises(ValueError):
        list(intents.expand(parse_template(bad), {}))


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Hold ON!", "hold on"),
        ("I'm done.", "i am done"),
        ("Let\u2019s go", "let us go"),
        ("I can't hear you", "i can not hear you"),
        ("skip to set 2", "skip to set two"),
        ("  say   that, again?? ", "say that again"),
        ("you're too fast", "you are too fast"),
    ],
)
def test_normalise(raw: str, clean: str) -> None:
    assert normalise(raw) == clean


NATURAL = {
    "start": ["start back stretch", "Begin the back stretch", "let's start", "start the exercise", "Start!"],
    "pause": ["pause", "hold on", "wait", "Wait a second", "hang on", "one moment", "I need a break"],
    "resume": ["resume", "continue", "keep going", "carry on", "go on", "I'm ready", "let's go"],
    "stop": ["stop", "I'm done", "that's enough", "I am finished", "end the session", "no more"],
    "slower": ["slower", "slow down", "a bit slower", "too fast", "go more slowly"],
    "faster": ["faster", "speed up", "a little faster", "too slow", "quicker"],
    "repeat": ["repeat", "say that again", "again", "what did you say", "pardon", "I didn't catch that"],
    "status": [
        "where am I",
        "how many more",
        "how many left",
        "how long is left",
        "how many to go",
        "what set am I on",
        "status",
    ],
    "skip": ["skip", "next side", "switch legs", "skip to the next set", "other leg"],
    "help": ["help", "what can I say", "list the commands"],
    "louder": ["louder", "speak up", "volume up", "turn it up", "I can't hear you"],
    "quieter": ["quieter", "softer", "volume down", "turn it down", "too loud"],
}
WITH_FILLERS = {
    "pause": ["Okay, can we take a break?", "hang on a sec please", "I need a breather for a bit"],
    "stop": ["let's call it quits for today", "I think that's all for now, thanks", "no more, please"],
    "slower": [
        "could you slow it down a little bit",
        "you're going way too fast for me",
        "not so quick please",
    ],
    "resume": ["alright, let's get back to the stretch", "I'm back now", "ok go ahead"],
    "louder": ["I can't hear you at all", "can you turn the volume up please"],
    "skip": ["can we switch to the other side now", "let's skip ahead"],
}


@pytest.mark.parametrize(("name", "said"), [(n, s) for n, group in WITH_FILLERS.items() for s in group])
def test_fillers_and_rules_widen_each_command(lang: IntentSet, name: str, said: str) -> None:
    hit = lang.match(said)
    assert hit is not None and hit.name == name
    assert normalise(said) not in lang.table  # reached through fillers, not a phrase of its own


@pytest.mark.parametrize(("name", "said"), [(n, s) for n, group in NATURAL.items() for s in group])
def test_natural_ways_to_say_each_command(lang: IntentSet, name: str, said: str) -> None:
    hit = lang.match(said)
    assert hit is not None and hit.name == name


def test_fillers_around_a_command(lang: IntentSet) -> None:
    hit = lang.match("Okay, pause please")
    assert hit is not None and hit.name == "pause"
    assert lang.match("please") is None


def test_slots(lang: IntentSet) -> None:
    hit = lang.match("skip to the next set")
    assert hit is not None and hit.slots == {"skip_target": "set"}
    hit = lang.match("skip to the other leg")
    assert hit is not None and hit.slots == {"skip_target": "side"}


@pytest.mark.parametrize(
    "chatter",
    [
        "make me a sandwich",
        "the cat is asleep",
        "",
        "stop the cat",
        "breathe in and relax",
        "pause pause",
        "don't stop",
        "no, don't stop",
        "I don't want to stop",
        "please please",
        "can you pass me the remote",
        "you can say pause",
    ],
)
def test_other_text_is_no_command(lang: IntentSet, chatter: str) -> None:
    assert lang.match(chatter) is None


def test_phrase_list_is_finite_and_complete(lang: IntentSet) -> None:
    phrases = lang.phrases()
    assert 100 < len(phrases) < 5000
    assert "start back stretch" in phrases and "i'm done" in phrases and "hold on" in phrases
    assert all(p == p.lower() and p.strip() == p for p in phrases)
    for phrase in phrases:  # every phrase in the grammar maps back to an intent
        assert lang.match(phrase) is not None, phrase
    assert set(lang.vocabulary()) == {w for p in phrases for w in p.split()}


def _doc(text: str) -> yamldoc.Doc:
    return yamldoc.parse(text, "en.yaml")


def test_a_phrase_with_two_meanings_is_an_error(lang: IntentSet) -> None:
    base = (intents.default_path()).read_text()
    clash = base.replace("  help:\n", '  help:\n    - "pause"\n', 1)
    with pytest.raises(ConfigError, match=r"en\.yaml:\d+: intents\.help\[0\]: 'pause' already means 'pause'"):
        intents.from_doc(_doc(clash))


def test_unknown_list_is_an_error() -> None:
    base = intents.default_path().read_text().replace("{skip_target}", "{nowhere}")
    with pytest.raises(ConfigError, match=r"unknown list \{nowhere\}"):
        intents.from_doc(_doc(base))


def test_complete_phrases_are_those_no_other_command_continues(lang: IntentSet) -> None:
    complete = set(lang.complete_phrases())
    assert {"pause", "pause it", "stop", "wait", "hold on", "slower"} <= complete  # "pause it": same intent
    assert "start it again" in lang.phrases() and lang.match("start it again").name != "start"  # type: ignore[union-attr]
    assert "start" not in complete and "begin" not in complete
    assert complete <= set(lang.phrases())


# -- barge-in ------------------------------------------------------------------

# The phrases that counted over the coach's speech when they were a constant in listen.py;
# moving them into the intents file must not change them.
BARGE_IN = {"pause", "pause it", "wait", "hold on", "hang on", "stop", "stop it", "stop now",
            "stop the stretch", "stop the exercise", "stop the session"}  # fmt: skip


def test_barge_in_phrases_are_a_few_of_pause_and_stop(lang: IntentSet) -> None:
    assert lang.barge_in == BARGE_IN
    for phrase in lang.barge_in:
        hit = lang.match(phrase)
        assert hit is not None and hit.name in ("pause", "stop"), phrase
        assert phrase in lang.phrases()
    assert {
        "pause that",
        "stop that",
        "wait a second",
        "hold on a moment",
        "i quit",
        "end the session",
    } <= set(lang.phrases())  # the rest of pause and stop: heard only between cues


def test_barge_in_with_fillers_and_inside_sentences(lang: IntentSet) -> None:
    assert lang.is_barge_in("Okay, pause please") and lang.is_barge_in("Hold on!")
    assert not lang.is_barge_in("pause that") and not lang.is_barge_in("slower")
    assert lang.names_barge_in("You can say pause, or stop.")
    assert not lang.names_barge_in("Paused. Say resume when you are ready.")  # "paused" is no "pause"


def _bundled_with(old: str, new: str) -> yamldoc.Doc:
    return _doc(bundled_intents(old, new))


def test_a_barge_in_phrase_must_be_its_intents_own() -> None:
    doc = _bundled_with('    - "wait"\n', '    - "wait"\n    - "slower"\n')
    with pytest.raises(
        ConfigError,
        match=r"en\.yaml:\d+: barge_in\.pause\[2\]: 'slower' is not a phrase of the intent 'pause'",
    ):
        intents.from_doc(doc)


def test_the_barge_in_list_is_required() -> None:
    doc = _bundled_with("barge_in:\n", "other:\n")
    with pytest.raises(ConfigError, match=r"en\.yaml:\d+: other: unknown key"):
        intents.from_doc(doc)
    text = intents.default_path().read_text()
    head, _, rest = text.partition("barge_in:\n")
    with pytest.raises(ConfigError, match=r"en\.yaml:\d+: barge_in: is missing; list, per intent"):
        intents.from_doc(_doc(head + rest[rest.index("responses:") :]))


# -- responses -----------------------------------------------------------------


def test_the_bundled_responses_are_exactly_the_replies(lang: IntentSet) -> None:
    assert set(lang.responses) == set(intents.RESPONSES) == set(get_args(intents.Reply))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('  skip: "Moving on."\n', "", r"en\.yaml:\d+: responses\.skip: is missing"),
        (
            '  skip: "Moving on."\n',
            '  skip: "Moving on."\n  hello: "Hi."\n',
            r"responses\.hello: unknown key",
        ),
        (
            "rep {rep}.",
            "rep {repetition}.",
            r"responses\.\w+: bad placeholder '\{repetition\}'; known placeholders here: \{rep\}",
        ),
        (
            '"Moving on."',
            '"Moving on, {side}."',
            r"responses\.skip: bad placeholder '\{side\}'; known placeholders here: none",
        ),
        ("rep {rep}.", "rep {rep:>3}.", r"responses\.\w+: bad placeholder '\{rep:>3\}'"),
        ("rep {rep}.", "rep {rep.", r"responses\.\w+: a brace that is no placeholder"),
    ],
)
def test_a_response_the_dialogue_cannot_fill_is_an_error(old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        intents.from_doc(_bundled_with(old, new))


def test_errors_name_the_line() -> None:
    doc = _bundled_with('"Moving on."', '"Moving on, {side}."')
    line = next(
        i for i, text in enumerate(intents.default_path().read_text().splitlines(), 1) if "Moving on" in text
    )
    with pytest.raises(ConfigError, match=rf"^en\.yaml:{line}: responses\.skip: "):
        intents.from_doc(doc)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            "resuming: 'Set {set.__class__.__mro__}'",
            r"responses\.resuming: bad placeholder '\{set\.__class__",
        ),
        ("resuming: '{side:>100000000}'", r"responses\.resuming: bad placeholder"),
        ("paused: 'Paused, {minutes} left'", r"responses\.paused: bad placeholder '\{minutes\}'; known"),
        ("slower: 'In {inhale}, out {exhale}, {side}'", r"responses\.slower: bad placeholder '\{side\}'"),
        ("skip: 'Moving {'", r"responses\.skip: a brace that is no placeholder"),
    ],
)
def test_responses_take_only_their_placeholders(response: str, message: str) -> None:
    head, _, responses = intents.default_path().read_text(encoding="utf-8").partition("\nresponses:\n")
    key = response.split(":")[0]
    lines = [f"  {response}" if line.startswith(f"  {key}:") else line for line in responses.splitlines()]
    with pytest.raises(ConfigError, match=message):
        intents.from_doc(_doc(head + "\nresponses:\n" + "\n".join(lines)))


def test_responses_are_filled(lang: IntentSet) -> None:
    said = lang.say("resuming", set="two", side="right", rep="seven")
    assert said == "Resuming: set two, right leg, rep seven."


# -- new wordings ----------------------------------------------------------------
# tests/kit/wordings.py: what people say that the grammar was not written for. The
# held-out half is never looked at: these tests count it, and show only numbers.


def _recall(lang: IntentSet, wordings: dict[str, tuple[str, ...]]) -> int:
    return sum(1 for name, said in wordings_pairs(wordings) if _means(lang, said, name))


def _means(lang: IntentSet, said: str, name: str) -> bool:
    hit = lang.match(said)
    return hit is not None and hit.name == name


def _literal_templates() -> list[str]:
    """The templates of the bundled file that allow one phrase only, normalised."""
    doc = yamldoc.load(intents.default_path())
    templates = [t for group in doc.data["intents"].values() for t in group]
    templates += list(doc.data["rules"].values())
    return [normalise(t) for t in templates if not set(t) & set("()[]{}<>|")]


def test_held_out_wordings_as_text(lang: IntentSet) -> None:
    hits, total = _recall(lang, HELD_OUT), len(wordings_pairs(HELD_OUT))
    assert hits >= 0.9 * total


def test_dev_wordings_as_text(lang: IntentSet) -> None:
    hits, total = _recall(lang, DEV), len(wordings_pairs(DEV))
    assert hits >= 0.9 * total


# Literal templates (one phrase each) that are held-out wordings. Two of those written
# from the kinds of wording listed in issue 12, before the held-out half was first
# counted, turned out to be: which two, no one has looked. There must be no more.
HELD_OUT_LITERALS = 2


def test_no_template_is_written_as_a_wording() -> None:
    # Kinds of wording, not wordings: a template that allows a single phrase, and that
    # phrase one of the wordings, looks written to catch it. Wordings that are phrases
    # of wider templates ("<start> [the|my|this] <routine>") are generalisation.
    literal = set(_literal_templates())
    assert literal and "unpause" in literal
    assert [said for _, said in wordings_pairs(DEV) if normalise(said) in literal] == []
    assert sum(1 for _, said in wordings_pairs(HELD_OUT) if normalise(said) in literal) <= HELD_OUT_LITERALS


def test_no_routine_chatter_or_coach_text_is_a_command(lang: IntentSet) -> None:
    texts = [*corpus.ROUTINE_TEXT, *corpus.CHATTER, *corpus.coach_texts(lang)]
    assert len(texts) > 100
    assert [(t, lang.match(t)) for t in texts if lang.match(t) is not None] == []
