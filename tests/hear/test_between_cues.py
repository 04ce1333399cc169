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


@pytest.mark.parametrize("word", ["stop", "resume", "faster"])
def test_a_command_half_a_second_after_a_cue_is_heard(model: VoskModel, lang: IntentSet, word: str) -> None:
    cues = coach()
    end = int(np.flatnonzero(cues)[-1]) + 1  # the last cue's last sound
    played = np.concatenate([cues[:end], speech.silence(3.0)])
    said = speech.espeak(word, "en-us")
    at = end + RATE_HZ // 2
    user = np.zeros(len(played))
    user[at : at + len(said)] = said
    conditions = room.Conditions(echo_db=20.0, user_dbfs=-38.0, latency_ms=60.0)
    mic = room.Room(room.Geometry(rt60_s=0.4), conditions, room.active_power(cues)).mic(played, user)
    out = EchoStage(SpeexDspCanceller()).feed(mic.samples, played)
    track: SpeechTrack[Say] = SpeechTrack()
    track.add(0.0, end / RATE_HZ, Say(0.0, "the cues", end / RATE_HZ, SayKind.SETUP))
    commands = real.commands(VoskRecognizer(model, lang.phrases()), lang, out, track)
    assert [c.text for c in commands] == [word]
    assert commands[0].speech_end_s > at / RATE_HZ
