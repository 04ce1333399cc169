"""Fillers around a command, heard by the recognisers ("okay, stop please").

The intents file's fillers are no phrases of the grammar: vosk has them as entries of
their own (its grammar lets entries follow one another) and takes them off a result;
pocketsphinx can loop on them before and after a phrase, off by default (they make it
find commands in chatter: see SphinxSettings.hear_fillers).
"""

from __future__ import annotations

import json

import pytest

from assistant.coach.intents import IntentSet
from assistant.coach.phrasing import Fillers
from assistant.hear import vosk_engine
from assistant.hear.listen import Listener
from assistant.hear.sphinx_engine import SphinxRecognizer, SphinxSettings
from assistant.hear.vosk_engine import VoskModel, VoskRecognizer
from tests.kit import speech
from tests.kit.models import require_english_model

POLITE = "can you pause please"


def test_a_core_is_found_between_fillers() -> None:
    fillers = Fillers.of(["okay", "can you"], ["please", "for now"])
    table = {"stop": "stop", "slow down": "slow down", "i am done": "i'm done"}
    assert fillers.core("okay can you stop please", table) == "stop"
    assert fillers.core("Okay, I'm done for now.", table) == "i'm done"
    assert fillers.core("can you slow down", table) == "slow down"
    assert fillers.core("please stop", table) == ""  # "please" is no filler before
    assert fillers.core("okay okay", table) == ""
    assert "let's" in Fillers.of(["let's"], []).said_before  # as a recogniser says it


def _result(text: str) -> str:
    words = [
        {"word": w, "start": 0.1 * i, "end": 0.1 * i + 0.08, "conf": 1.0} for i, w in enumerate(text.split())
    ]
    return json.dumps({"result": words, "text": text})


def test_a_vosk_result_loses_its_fillers_but_not_its_unknowns(lang: IntentSet) -> None:
    grammar = vosk_engine.Grammar(frozenset({"stop"}), "[]", True, lang.fillers, {"stop": "stop"})
    heard = vosk_engine.read_result(_result("okay stop please"), grammar.phrases, grammar)
    assert heard == ("stop", 0.0, 0.28)
    for rejected in ("[unk] stop", "stop stop", "down stop", "okay"):
        heard = vosk_engine.read_result(_result(rejected), grammar.phrases, grammar)
        assert heard is not None and heard[0] == "", rejected
    assert vosk_engine.read_result(_result("okay stop please"), grammar.phrases) is not None
    assert vosk_engine.read_result(_result("okay stop please"), grammar.phrases)[0] == ""  # type: ignore[index]


@pytest.fixture(scope="module")
def vosk_model() -> VoskModel:
    return VoskModel(require_english_model())


def _hear(recognizer: SphinxRecognizer | VoskRecognizer, text: str) -> list[str]:
    clip = speech.in_room(speech.piper(text, varied=False))
    return [h.text for h in speech.run_stream(recognizer, clip) if h.text]


def test_vosk_hears_a_command_between_fillers(vosk_model: VoskModel, lang: IntentSet) -> None:
    recognizer = VoskRecognizer(vosk_model, lang.phrases())
    Listener(recognizer, lang)  # sets the phrases with the fillers
    assert "okay" in json.loads(recognizer.grammar.json)
    assert _hear(recognizer, POLITE) == ["pause"]
    assert _hear(recognizer, "could you slow down please") == ["slow down"]
    assert _hear(recognizer, "alright, skip to the next set please") == ["skip to the next set"]
    recognizer.set_phrases(lang.phrases())  # no fillers: the same speech is rejected
    assert _hear(recognizer, POLITE) == []


def test_pocketsphinx_hears_fillers_only_when_asked(lang: IntentSet) -> None:
    asked = SphinxRecognizer(lang.phrases(), SphinxSettings(hear_fillers=True))
    Listener(asked, lang)
    assert _hear(asked, POLITE) == ["pause"]
    default = SphinxRecognizer(lang.phrases())
    Listener(default, lang)
    assert default.settings.hear_fillers is False
    assert default._fillers is None


def test_a_grammar_path_of_fillers_loops_on_its_state() -> None:
    from assistant.hear.sphinx_engine import _transitions

    arcs = _transitions([("stop",)], 1e-8, before=[("okay",), ("can", "you")], after=[("please",)])
    words = [a for a in arcs if len(a) == 4 and not a[3].startswith("+")]
    assert (0, 0, pytest.approx(0.025), "okay") in words  # before: loops on the start state
    end = next(a[1] for a in words if a[3] == "stop")
    assert (end, end, pytest.approx(0.05), "please") in words and (end, 1, 1.0) in arcs
    can = next(a for a in words if a[3] == "can")
    assert can[0] == 0 and (can[1], 0, 1.0, "you") in words
