"""A command said just after a cue, with the cue's echo cancelled (issue 13): the
canceller's residual of the coach must not swallow it.

Real parts: the bundled piper voice says real cues into the simulated bedroom
(tests/kit/room.py) at +20 dB over a user at -38 dBFS, RT60 0.4 s; espeak-ng is the user;
speexdsp (libspeexdsp1) cancels; real vosk hears it through the `Listener` with the
coach's track, as a session does. Before the echo-aware endpointer and the gain
(vosk_engine.py, VOSK_VAD and LEVEL_DBFS) each of these was heard as nothing: the
residual at the cue's end began an utterance that ran on into the word, which was then
"over the coach" or too quiet for the model.
"""

from __future__ import annotations

import numpy as np
import pytest

from assistant.coach.events import Say, SayKind
from assistant.coach.intents import IntentSet
from assistant.coach.track import SpeechTrack
from assistant.hear.echo import EchoStage, SpeexDspCanceller
from assistant.hear.vosk_engine import VoskModel, VoskRecognizer
from assistant.pcm import RATE_HZ
from tests.hear.test_echo import coach
from tests.kit import real, room, speech
from tests.kit.models import require_english_model

MODEL = require_english_model()


@pytest.fixture(scope="module")
def model() -> VoskModel:
    return VoskModel(MODEL)


def _cancelled(played: np.ndarray, said: np.ndarray, at: int, coach_power: float) -> np.ndarray:
    """`said` from sample `at` while `played` sounds, +20 dB of echo over the user at -38 dBFS
    in the bedroom (RT60 0.4 s), through speexdsp."""
    user = np.zeros(len(played))
    user[at : at + len(said)] = said
    conditions = room.Conditions(echo_db=20.0, user_dbfs=-38.0, latency_ms=60.0)
    mic = room.Room(room.Geometry(rt60_s=0.4), conditions, coach_power).mic(played, user)
    return EchoStage(SpeexDspCanceller()).feed(mic.samples, played)


@pytest.mark.parametrize("word", ["stop", "resume", "faster"])
def test_a_command_half_a_second_after_a_cue_is_heard(model: VoskModel, lang: IntentSet, word: str) -> None:
    cues = coach()
    end = int(np.flatnonzero(cues)[-1]) + 1  # the last cue's last sound
    played = np.concatenate([cues[:end], speech.silence(3.0)])
    at = end + RATE_HZ // 2
    out = _cancelled(played, speech.espeak(word, "en-us"), at, room.active_power(cues))
    track: SpeechTrack[Say] = SpeechTrack()
    track.add(0.0, end / RATE_HZ, Say(0.0, "the cues", end / RATE_HZ, SayKind.SETUP))
    commands = real.commands(VoskRecognizer(model, lang.phrases()), lang, out, track)
    assert [c.text for c in commands] == [word]
    assert commands[0].speech_end_s > at / RATE_HZ


def test_a_command_that_runs_into_the_next_cue_is_heard(model: VoskModel, lang: IntentSet) -> None:
    """ "slower" said 0.5 s after a cue, and the next cue begins 1.0 s after it (a session's
    median gap is 1.14 s): the utterance, with the room's tail and the next cue's residue,
    runs on "over the coach", where only barge-in phrases count. The part before the coach
    began is decoded first with every phrase (vosk_engine.py, `_before_coach`): before it,
    heard as nothing."""
    cues = coach()
    end = int(np.flatnonzero(cues)[-1]) + 1
    gap = RATE_HZ  # the next cue 1.0 s after the last sound
    played = np.concatenate([cues[:end], speech.silence(1.0), cues[: 4 * RATE_HZ], speech.silence(1.0)])
    at = end + RATE_HZ // 2
    out = _cancelled(played, speech.espeak("slower", "en-gb"), at, room.active_power(cues))
    track: SpeechTrack[Say] = SpeechTrack()
    track.add(0.0, end / RATE_HZ, Say(0.0, "the cues", end / RATE_HZ, SayKind.SETUP))
    next_s = (end + gap) / RATE_HZ
    track.add(next_s, next_s + 4.0, Say(next_s, "the next cue", 4.0, SayKind.SETUP))
    commands = real.commands(VoskRecognizer(model, lang.phrases()), lang, out, track)
    assert [c.text for c in commands] == ["slower"]
    assert at / RATE_HZ < commands[0].speech_end_s <= next_s
