"""Barge-in decoding (issue 13): while the coach speaks, vosk decodes with the barge-in
phrases alone, from audio brought up in level (assistant/hear/vosk_engine.py).

Real vosk and the bundled voice; the coach's speech is a `SpeechTrack` as a session has it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from assistant.coach.events import Say, SayKind
from assistant.coach.intents import IntentSet
from assistant.coach.track import SpeechTrack
from assistant.hear import vosk_engine
from assistant.hear.capture import Chunk
from assistant.hear.endpoint import Segment
from assistant.hear.listen import Listener
from assistant.hear.vosk_engine import VoskModel, VoskRecognizer, level_up
from assistant.pcm import RATE_HZ
from tests.kit import speech
from tests.kit.models import require_english_model

MODEL = require_english_model()


@pytest.fixture(scope="module")
def model() -> VoskModel:
    return VoskModel(MODEL)


def level_dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) / 32768.0**2))


def test_level_up_brings_quiet_audio_to_the_level_and_never_cuts() -> None:
    t = np.arange(RATE_HZ) / RATE_HZ
    tone = np.sin(2 * np.pi * 440 * t)
    quiet = np.rint(tone * 32768 * 10 ** (-40 / 20) * np.sqrt(2)).astype(np.int16)  # -40 dBFS rms
    assert abs(level_dbfs(level_up(quiet, -20.0, 24.0)) - -20.0) < 0.1
    assert abs(level_dbfs(level_up(quiet, -20.0, 6.0)) - -34.0) < 0.1  # the gain is capped
    loud = np.rint(tone * 32768 * 10 ** (-10 / 20) * np.sqrt(2)).astype(np.int16)
    assert np.array_equal(level_up(loud, -20.0, 24.0), loud)  # never a cut
    silent = np.zeros(RATE_HZ, np.int16)
    assert np.array_equal(level_up(silent, -20.0, 24.0), silent)


def heard(model: VoskModel, lang: IntentSet, audio: np.ndarray, coach: SpeechTrack[Say] | None) -> list[str]:
    listener = Listener(VoskRecognizer(model, lang.phrases()), lang, coach)
    out = []
    step = round(speech.CHUNK_S * RATE_HZ)
    for i in range(0, len(audio), step):
        piece = audio[i : i + step]
        out += listener.feed(Chunk(piece, (i + len(piece)) / RATE_HZ))
    return [c.text for c in out + listener.flush(len(audio) / RATE_HZ)]


def quiet(text: str, dbfs: float) -> np.ndarray:
    """`text` in the bundled voice at an active level of about `dbfs`, in a quiet room."""
    voice = speech.piper(text, 1.0, varied=False).astype(np.float64)
    voice *= 10 ** ((dbfs - level_dbfs(voice[np.abs(voice) > 100])) / 20)
    return speech.in_room(np.rint(voice).astype(np.int16), lead_s=1.0, trail_s=1.0)


def test_over_the_coach_only_barge_in_phrases_are_decoded(model: VoskModel, lang: IntentSet) -> None:
    coach: SpeechTrack[Say] = SpeechTrack()
    coach.add(0.0, 30.0, Say(0.0, "Breathe in slowly.", 30.0, SayKind.INHALE))
    assert "stop" in lang.barge_in and "faster" not in lang.barge_in
    # The coach silent: the full grammar, as before.
    assert heard(model, lang, quiet("faster", -30.0), None) == ["faster"]
    # Over the coach: "faster" is no barge-in phrase, so its grammar cannot give it (the
    # gate would refuse it anyway), and "stop" is heard.
    assert heard(model, lang, quiet("faster", -30.0), coach) == []
    assert heard(model, lang, quiet("stop", -30.0), coach) == ["stop"]


def test_a_quiet_stop_is_brought_up_in_level(
    model: VoskModel, lang: IntentSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The small model hears a quiet word badly: at -50 dBFS (a relaxed voice further than
    across a bedroom) "stop" is not heard as it comes, and is once brought up, over the
    coach or not (every utterance is, since stop 20)."""
    coach: SpeechTrack[Say] = SpeechTrack()
    coach.add(0.0, 30.0, Say(0.0, "Breathe in slowly.", 30.0, SayKind.INHALE))
    audio = quiet("stop", -50.0)
    assert heard(model, lang, audio, None) == ["stop"]
    assert heard(model, lang, audio, coach) == ["stop"]
    monkeypatch.setattr(vosk_engine, "MAX_GAIN_DB", 0.0)  # no gain
    assert heard(model, lang, audio, None) == []


def test_over_the_coach_an_utterance_is_decoded_once(
    model: VoskModel, lang: IntentSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No utterance ends early while the coach speaks (Listener.complete), so vosk does not
    decode its prefixes, the early offers, only the whole: the same outcome for less work.
    The coach silent, the early offers are decoded as before."""
    sentence = "Bring your knee in toward your chest, and hold it gently there."
    audio = speech.in_room(speech.piper(sentence, 1.0, varied=False), lead_s=1.0, trail_s=1.0)
    coach: SpeechTrack[Say] = SpeechTrack()
    coach.add(0.0, 30.0, Say(0.0, sentence, 30.0, SayKind.EXHALE))
    decoded: dict[str, list[float]] = {}
    for name, track in (("silent", None), ("speaking", coach)):
        recognizer = VoskRecognizer(model, lang.phrases())
        listener = Listener(recognizer, lang, track)
        spans: list[float] = []
        decode = recognizer._decode

        def counted(
            segment: Segment, decode: Callable[[Segment], str] = decode, spans: list[float] = spans
        ) -> str:
            spans.append(segment.speech_end_s)
            return decode(segment)

        monkeypatch.setattr(recognizer, "_decode", counted)
        step = round(speech.CHUNK_S * RATE_HZ)
        for i in range(0, len(audio), step):
            listener.feed(Chunk(audio[i : i + step], (i + step) / RATE_HZ))
        listener.flush(len(audio) / RATE_HZ)
        decoded[name] = spans
    assert len(decoded["silent"]) > len(decoded["speaking"]) >= 1
    # The whole utterance, decoded in both (over the coach the endpointer's echo-aware
    # threshold takes the sentence's weakest last frames for residual echo: 3.92 s, not 3.96).
    assert decoded["speaking"][-1] == pytest.approx(decoded["silent"][-1], abs=0.1)
