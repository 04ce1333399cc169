"""The new wordings spoken (issue 12 item 4), through the real recognisers.

The held-out wordings in the bundled piper voice must reach a measured bound with each
grammar decoder, and the routine's text and chatter must fire nothing. The full figures
(four espeak-ng voices, vosk free-form) are the bench's (bench/wordings.py). Nothing
here prints a held-out wording: a miss named would invite a template written for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.coach.intents import IntentSet
from tests.kit import spoken
from tests.kit.models import require_english_model
from tests.kit.wordings import HELD_OUT, pairs

# Measured 2026-12-02 with piper's fixed prosody (varied=False: the same clips every run):
# pocketsphinx 27 of 40 (it hears no fillers), vosk 36 of 40. The bench has the figures
# with piper's varied prosody and four espeak-ng voices.
HELD_PIPER_MIN = {"pocketsphinx": 24, "vosk grammar": 34}


@pytest.fixture(scope="module")
def vosk_model() -> Path:
    return require_english_model()


@pytest.mark.parametrize("name", ["pocketsphinx", "vosk grammar"])
def test_held_out_wordings_spoken_by_the_bundled_voice(name: str, lang: IntentSet, vosk_model: Path) -> None:
    decode = spoken.decoder(name, lang, vosk_model)
    outcomes = spoken.run(decode, lang, pairs(HELD_OUT), ["piper"], varied=False)
    right, total = spoken.share(outcomes)
    assert total == 40
    assert right >= HELD_PIPER_MIN[name], f"{name}: {right}/{total} held-out wordings heard"


# pocketsphinx finds a command in 3 of the 22 sentences here (the grammar's 2,117 phrases
# give it many to find); vosk in none. Deterministic renderings: test_accuracy's own
# sentences of these (piper's random prosody) fired 0 to 1 of the chatter in earlier runs and
# 3 in one, so pocketsphinx's bound on them is asserted here.
NO_COMMAND_FIRING_MAX = {"pocketsphinx": 3, "vosk grammar": 0}


@pytest.mark.parametrize("name", ["pocketsphinx", "vosk grammar"])
def test_speech_that_is_no_command_seldom_fires(name: str, lang: IntentSet, vosk_model: Path) -> None:
    decode = spoken.decoder(name, lang, vosk_model)
    outcomes = spoken.run(decode, lang, [(None, s) for s in spoken.NO_COMMAND], ["piper"], varied=False)
    fired = [(o.text, o.fired) for o in outcomes if not o.right]
    assert len(fired) <= NO_COMMAND_FIRING_MAX[name], fired


def test_a_known_phrase_is_heard_by_each_decoder(lang: IntentSet, vosk_model: Path) -> None:
    """The harness itself: a phrase of the grammar, clearly spoken, is right everywhere,
    and a wrong label would be caught."""
    for name in spoken.DECODERS:
        decode = spoken.decoder(name, lang, vosk_model)
        [ok] = spoken.run(decode, lang, [("stop", "stop the session")], ["piper"], varied=False)
        assert ok.right, (name, ok)
        assert not spoken.Outcome(ok.voice, ok.text, "pause", ok.heard, ok.fired).right
