"""Distractor words in the grammars (recognizer.distractors()): common English words
that are no command, so that "right" decodes as itself rather than as "wait". Their
effect on real speech is measured in test_real_speech.py."""

from __future__ import annotations

import json
import logging
import re

import pytest

from assistant.coach.intents import IntentSet
from assistant.hear import sphinx_engine, vosk_engine
from assistant.hear.recognizer import distractors
from tests.kit.models import english_model


def test_the_bundled_list() -> None:
    words = distractors()
    assert len(words) == 300 and len(set(words)) == len(words)
    assert all(re.fullmatch(r"[a-z]{2,}", w) for w in words)
    assert {"right", "on", "left", "up", "go"} <= set(words)  # common words, as frequent as any


def test_the_vosk_grammar_holds_them_and_only_the_phrases_come_out(
    lang: IntentSet, caplog: pytest.LogCaptureFixture
) -> None:
    path = english_model()
    if path is None:
        pytest.skip("the English vosk model is not fetched: `make vosk-model`")
    with caplog.at_level(logging.WARNING):
        grammar = vosk_engine.VoskModel(path).grammar(lang.phrases())
    words = json.loads(grammar.json)
    command_words = {w for p in grammar.phrases for w in p.split()}
    decoys = [w for w in words if w not in grammar.phrases and w != vosk_engine.UNK]
    assert not grammar.fillers  # none given here: every other entry is a decoy
    assert "right" in decoys and not command_words & set(decoys)
    assert len(decoys) > 150 and words[-1] == vosk_engine.UNK  # 300 less the phrases' and fillers' words
    assert "right" not in grammar.phrases
    said = json.dumps({"text": "right", "result": [{"word": "right", "start": 0.1, "end": 0.4, "conf": 1}]})
    assert vosk_engine.read_result(said, grammar.phrases) == ("", 0.1, 0.4)  # a rejection


def test_sphinx_decoys_are_one_word_paths_beside_the_phrases() -> None:
    arcs = sphinx_engine._transitions([("stop",), ("go", "on")], 1e-8, ["right", "left"])
    words = [a[3] for a in arcs if len(a) == 4 and a[0] == 0]
    assert words == ["right", "left", "stop", "go"]
    assert {a[2] for a in arcs if len(a) == 4 and a[0] == 0} == {0.5 / 4}
    recognizer = sphinx_engine.SphinxRecognizer(["stop"], sphinx_engine.SphinxSettings(decoys=10))
    assert recognizer.knows("stop")
