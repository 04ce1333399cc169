"""The offline session in a closed loop with the simulated bedroom: the microphone hears
what the session really plays (tests/kit/room.py `ClosedLoopMic`), and the session's
listener hears the microphone through the echo canceller (`run_audio` with the
pipeline's `OfflineEcho`). Real piper, real vosk, real AEC3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.app.offline import OfflineEcho, run_audio
from assistant.app.settings import Settings
from assistant.app.wiring import Needs, Pipeline, build
from assistant.coach import routine as routines
from assistant.coach.events import Cut, Say, SayKind, Understood
from assistant.coach.intents import IntentSet
from assistant.hear.capture import Chunk
from assistant.hear.echo import FRAME_SAMPLES, SpeexDspCanceller
from assistant.hear.vosk_engine import VoskModel, VoskRecognizer
from assistant.pcm import RATE_HZ, Audio, resample
from assistant.speak.render import OutputTrack
from tests.hear.test_echo import Recorder, coach, removed_db
from tests.kit import room
from tests.kit.models import require_english_model
from tests.kit.sessions import SHORT_ROUTINE, Events

CALIBRATION = "Take a deep breath in, holding your knee."  # a cue of both routines
GEOMETRY = room.Geometry(rt60_s=0.3)


@pytest.fixture(scope="module")
def model() -> VoskModel:
    return VoskModel(require_english_model())


def session(tmp_path: Path, lang: IntentSet, model: VoskModel) -> tuple[Pipeline, Events, OutputTrack]:
    """The short routine, started by a typed command at 0 s (its first words, welcome to
    the first "Go gently", are one 4 s utterance); its events, and what it plays as the
    room hears it."""
    path = tmp_path / "routine.yaml"
    path.write_text(SHORT_ROUTINE)
    needs = Needs(
        voice=True, listen=True, echo=True, recognizer=lambda phrases: VoskRecognizer(model, phrases)
    )
    pipeline = build(Settings(), routines.load(path), lang, needs)
    events, played = Events(), OutputTrack(pipeline.cache, Settings().volume, RATE_HZ)  # type: ignore[arg-type]
    pipeline.session.sinks += [events, played]
    pipeline.session.hear("start back stretch", 0.0)
    return pipeline, events, played


def coach_power(pipeline: Pipeline) -> float:
    """A cue's active level as played: what `echo_db` is calibrated on."""
    assert pipeline.cache is not None
    return room.active_power(resample(pipeline.cache.get(CALIBRATION), RATE_HZ).samples * Settings().volume)


def test_when_pause_cuts_a_cue_its_echo_stops(tmp_path: Path, lang: IntentSet, model: VoskModel) -> None:
    """ "pause" (typed, at 2 s) cuts the first words: the microphone's echo is exactly the room's
    response to what the session played, cut cue and all, and after the reply it is silent."""
    pipeline, events, played = session(tmp_path, lang, model)
    conditions = room.Conditions(echo_db=20.0, latency_ms=60.0)
    loop = room.ClosedLoopMic(
        room.Room(GEOMETRY, conditions, coach_power(pipeline)), np.zeros(1, np.int16), played, 9.0
    )

    def typed_pause(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        for chunk in chunks:
            if chunk.end_s == pytest.approx(2.01):  # the session has run to 2.0 s
                pipeline.session.hear("pause", 2.0)
            yield chunk

    run_audio(pipeline.session, pipeline.listener, typed_pause(loop.chunks()), pipeline.echo)  # type: ignore[arg-type]
    assert any(isinstance(e, Cut) and e.t == 2.0 for e in events.events)
    said = [e for e in events.events if isinstance(e, Say) and e.t < 9.0]
    assert [s.text for s in said][0].startswith("Knee hugs.")
    reply = said[-1]
    assert reply.t == pytest.approx(2.0) and reply.text.startswith("Paused")
    n = len(loop.echo)
    expected = loop.room.echo_of(played.samples(0, n), n)
    assert np.max(np.abs(loop.echo - expected)) < 1e-6 * np.max(np.abs(expected)) + 1e-9
    # They ran on past 2 s; with the cut, after the reply and its reverberation: silence.
    quiet_from = round((reply.end_s + 0.3 + 0.06) * RATE_HZ)
    assert len(played.samples(0, round(8 * RATE_HZ)).nonzero()[0]) > 0
    assert not np.any(played.samples(round(reply.end_s * RATE_HZ) + 1, n))
    assert np.max(np.abs(loop.echo[quiet_from:])) < 1.0  # under one LSB: nothing sounds
    assert room.dbfs(room.active_power(loop.echo[RATE_HZ : 2 * RATE_HZ])) > -25.0  # it was loud


def test_the_coach_never_obeys_itself_through_the_canceller(
    tmp_path: Path, lang: IntentSet, model: VoskModel
) -> None:
    """Several cues with their echo 30 dB over a quiet user's level, nobody speaking: nothing
    the listener hears becomes a command."""
    pipeline, events, played = session(tmp_path, lang, model)
    conditions = room.Conditions(echo_db=30.0, user_dbfs=-45.0, latency_ms=80.0, drift_ppm=100.0)
    loop = room.ClosedLoopMic(
        room.Room(GEOMETRY, conditions, coach_power(pipeline)), np.zeros(1, np.int16), played, 12.0
    )
    run_audio(pipeline.session, pipeline.listener, loop.chunks(), pipeline.echo)  # type: ignore[arg-type]
    cues = [e for e in events.events if isinstance(e, Say) and e.t < 12.0]
    assert len(cues) >= 4
    assert [e.name for e in events.events if isinstance(e, Understood)] == ["start"]


def test_the_canceller_is_given_what_the_session_plays(
    tmp_path: Path, lang: IntentSet, model: VoskModel
) -> None:
    """`run --in`'s pipeline: each frame's reference is the session's own output one frame
    earlier (it was silence when the track joined the sinks after the session copied them)."""
    pipeline, _, played = session(tmp_path, lang, model)
    assert pipeline.echo is not None
    recorder = Recorder()
    pipeline.echo.live.canceller = recorder
    n = 3 * RATE_HZ
    chunks = (Chunk(np.zeros(480, np.int16), (i + 480) / RATE_HZ) for i in range(0, n, 480))
    run_audio(pipeline.session, pipeline.listener, chunks, pipeline.echo)  # type: ignore[arg-type]
    reference = np.concatenate([r for _, r in recorder.frames])
    assert len(reference) == n
    expected = np.concatenate([np.zeros(FRAME_SAMPLES, np.int16), played.samples(0, n - FRAME_SAMPLES)])
    assert np.count_nonzero(expected) > RATE_HZ  # the coach spoke for most of it
    assert np.array_equal(reference, expected)


class Clips:
    """A cue cache at our seam: every text is a ramp, 16 kHz."""

    class synth:  # noqa: N801 (the attribute CueCache has)
        rate_hz = RATE_HZ

    def get(self, text: str) -> Audio:
        return Audio(np.arange(1, 801, dtype=np.int16), RATE_HZ)


def test_each_frame_is_cancelled_against_what_was_played_one_frame_before() -> None:
    """The reference of the frame ending at t is the output from t - 20 ms to t - 10 ms:
    decided by then (the session has run to the frame's start), so exact, cut included."""
    output = OutputTrack(Clips(), 1.0, RATE_HZ)  # type: ignore[arg-type]
    recorder = Recorder()
    echo = OfflineEcho(recorder, output)
    output.write(Say(0.0125, "a clip", 0.05, SayKind.REPLY))  # samples 200..1000
    output.write(Cut(0.05))  # cut at sample 800
    capture = Chunk(np.zeros(700, np.int16), 700 / RATE_HZ)
    cleaned = [echo.clean(frame) for frame in echo.frames(capture)]
    assert [c.end_s for c in cleaned] == pytest.approx([0.01 * k for k in range(1, 5)])
    more = [echo.clean(frame) for frame in echo.frames(Chunk(np.zeros(700, np.int16), 1400 / RATE_HZ))]
    assert len(cleaned) + len(more) == 8  # 1400 samples: 8 whole frames, 120 wait
    reference = np.concatenate([r for _, r in recorder.frames])
    expected = np.zeros(8 * FRAME_SAMPLES, np.int16)
    expected[FRAME_SAMPLES + 200 : FRAME_SAMPLES + 800] = np.arange(1, 601)
    assert np.array_equal(reference, expected)


class Cues:
    """A cue cache at our seam: every text is test_echo's cues, back to back (16 kHz)."""

    class synth:  # noqa: N801 (the attribute CueCache has)
        rate_hz = RATE_HZ

    def get(self, text: str) -> Audio:
        return Audio(coach(), RATE_HZ)


@pytest.mark.parametrize("ppm", [200.0, -200.0])
def test_a_recording_on_another_clock_has_its_drift_followed(ppm: float) -> None:
    """`run --in` on a recording whose microphone ran 200 ppm off the session's clock (a
    live session recorded by a USB microphone): the echo slides by 0.2 ms a second, and
    OfflineEcho follows it as live does (align.py), the reference moved only earlier (the
    session has decided no more). Measured per 10 s from 20 s on: 48 to 52 dB (+200 ppm), 55
    to 57 dB (-200 ppm), 55 to 58 with no drift; with the reference left where it was at +200
    ppm (the echo slides towards it), 16 dB."""
    output = OutputTrack(Cues(), 1.0, RATE_HZ)  # type: ignore[arg-type]
    clip = len(coach()) / RATE_HZ
    for k in range(5):
        output.write(Say(k * clip, "the cues", clip, SayKind.REPLY))
    played = output.samples(0, round(5 * clip * RATE_HZ))
    conditions = room.Conditions(echo_db=20.0, latency_ms=60.0, drift_ppm=ppm)
    mic = room.Room(GEOMETRY, conditions, room.active_power(played)).mic(played, None).samples
    echo = OfflineEcho(SpeexDspCanceller(), output)
    heard = [echo.clean(frame).samples for frame in echo.frames(Chunk(mic, len(mic) / RATE_HZ))]
    out = np.concatenate(heard)
    assert abs(echo.live.drift * 1e6 - ppm) <= 10.0
    assert removed_db(mic, out, 30.0) >= 40.0
