"""The echo canceller and the simulated bedroom it is measured in (tests/kit/room.py).

Real parts: the bundled piper voice says real cues, espeak-ng is the user, the rooms come
from pyroomacoustics, and the cancellers are the real WebRTC AEC3 and speexdsp (the
system's libspeexdsp through ctypes, and pyaec's own build of it).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from assistant.errors import DeviceError
from assistant.hear.align import TARGET_LAG_S, LiveEcho, fast_length
from assistant.hear.echo import (
    FRAME_SAMPLES,
    LEARNT_DB,
    EchoJudge,
    EchoStage,
    SpeexCanceller,
    SpeexDspCanceller,
    WebRtcCanceller,
    load_speexdsp,
)
from assistant.pcm import RATE_HZ, Samples
from tests.kit import room, speech

GEOMETRY = room.Geometry(rt60_s=0.3)
CUES = (
    "Breathe in again, and relax your arms, legs and buttocks slightly.",
    "Breathe out, and pull your thigh as close to your chest and belly as you can.",
    "If your straight leg floats up, relax it again and keep it flat against the bed.",
)


def coach() -> Samples:
    parts = []
    for text in CUES:
        parts += [speech.piper(text, varied=False), speech.silence(0.3)]
    return np.concatenate(parts)


def level_db(x: np.ndarray) -> float:
    return room.dbfs(room.active_power(x))


def test_the_microphone_hears_the_user_and_the_echo_at_the_levels_asked_for() -> None:
    played = coach()
    user = np.zeros(len(played))
    said = speech.espeak("pause the session", "en-gb")
    user[RATE_HZ : RATE_HZ + len(said)] = said
    for echo_db, user_dbfs in ((10.0, -38.0), (25.0, -45.0)):
        conditions = room.Conditions(echo_db=echo_db, user_dbfs=user_dbfs, fan_dbfs=-60.0)
        mic = room.Room(GEOMETRY, conditions, room.active_power(played)).mic(played, user)
        assert level_db(mic.user) == pytest.approx(user_dbfs, abs=0.1)
        # Calibrated on a pink probe, measured on speech: within 3 dB.
        assert level_db(mic.echo) - level_db(mic.user) == pytest.approx(echo_db, abs=3.0)
        noise = mic.noise[RATE_HZ:]
        assert room.dbfs(float(np.mean(noise**2))) == pytest.approx(-60.0, abs=1.0)


def test_latency_and_clock_drift_move_the_echo() -> None:
    """A click played at 1 s and at 9 s: the echo arrives `latency` later, and with +200 ppm
    drift the later click arrives 8 s x 200 ppm = 1.6 ms (25.6 samples) earlier than the first."""
    played = np.zeros(10 * RATE_HZ)
    played[[RATE_HZ, 9 * RATE_HZ]] = 20000.0

    def arrivals(conditions: room.Conditions) -> tuple[float, float]:
        echo = room.Room(GEOMETRY, conditions, 1e6).echo_of(played, len(played))
        first = float(np.argmax(np.abs(echo[: 5 * RATE_HZ])))
        second = float(np.argmax(np.abs(echo[5 * RATE_HZ :]))) + 5 * RATE_HZ
        return first, second

    base = arrivals(room.Conditions(latency_ms=20.0))
    late = arrivals(room.Conditions(latency_ms=150.0))
    assert late[0] - base[0] == pytest.approx(0.130 * RATE_HZ, abs=1)
    drift = arrivals(room.Conditions(latency_ms=20.0, drift_ppm=200.0))
    spacing = (drift[1] - drift[0]) - (base[1] - base[0])
    assert spacing == pytest.approx(-8 * 200e-6 * RATE_HZ, abs=2)


def _erle(
    canceller_echo_db: float, make: type[WebRtcCanceller] | type[SpeexCanceller] | type[SpeexDspCanceller]
) -> float:
    played = coach()
    conditions = room.Conditions(echo_db=canceller_echo_db, latency_ms=60.0)
    mic = room.Room(GEOMETRY, conditions, room.active_power(played)).mic(played, None)
    stage = EchoStage(make())
    out = np.concatenate(
        [stage.feed(mic.samples[i : i + 480], played[i : i + 480]) for i in range(0, len(played), 480)]
    )
    skip = 3 * RATE_HZ  # converged
    echo, rest = mic.samples[skip : len(out)].astype(np.float64), out[skip:].astype(np.float64)
    return float(10 * np.log10(np.sum(echo**2) / np.sum(rest**2)))


def test_webrtc_removes_the_echo_of_real_cues() -> None:
    """Measured 53 dB (the microphone's noise floor, 52 dB under the echo, caps it);
    the issue's target is 30."""
    assert _erle(20.0, WebRtcCanceller) >= 30.0


def test_speex_removes_echo_too() -> None:
    """The bench's comparison engine works: measured 32 dB here."""
    assert _erle(20.0, SpeexCanceller) >= 12.0


def test_speexdsp_removes_echo_of_real_cues() -> None:
    """The system's libspeexdsp, set up as pyaec sets it up: measured 31.6 dB (pyaec 32.4)."""
    assert _erle(20.0, SpeexDspCanceller) >= 25.0


USER_AT = 4 * RATE_HZ  # after the cancellers have converged on the first cue


@pytest.fixture(scope="module")
def double_talk() -> tuple[room.Mic, Samples, Samples]:
    """The coach's cues at +20 dB over the user, who says "stop" over the second cue:
    (the microphone, what was played, the user's dry words where they were said)."""
    played = coach()
    said = speech.espeak("stop", "en-gb")
    user = np.zeros(len(played))
    user[USER_AT : USER_AT + len(said)] = said
    conditions = room.Conditions(echo_db=20.0, latency_ms=60.0)
    mic = room.Room(GEOMETRY, conditions, room.active_power(played)).mic(played, user)
    return mic, played, said


def test_speexdsp_keeps_the_user_in_double_talk(double_talk: tuple[room.Mic, Samples, Samples]) -> None:
    """The user's "stop" over a cue comes out within a few dB (measured -3.2 dB, pyaec's
    the same); the coach alone before it is cut by 27 dB (measured)."""
    mic, played, said = double_talk
    out = EchoStage(SpeexDspCanceller()).feed(mic.samples, played)
    gain = room.user_gain_db(out, mic.user, USER_AT, USER_AT + len(said))
    assert gain >= -6.0
    before = slice(3 * RATE_HZ, USER_AT)  # converged, the coach alone
    cut = room.dbfs(float(np.mean(mic.samples[before].astype(np.float64) ** 2))) - room.dbfs(
        float(np.mean(out[before].astype(np.float64) ** 2))
    )
    assert cut >= 20.0


def test_speexdsp_through_ctypes_agrees_with_pyaec(double_talk: tuple[room.Mic, Samples, Samples]) -> None:
    """The same canceller, set up the same way, from two builds (Debian's uses speexdsp's
    own FFT, pyaec's kiss_fft): their outputs differ by about 14.5 dB less than pyaec's
    output (measured). Telling the echo state its rate, which pyaec does not, makes them
    as different as two cancellers (a difference 3 dB over the output)."""
    mic, played, _ = double_talk
    ours = EchoStage(SpeexDspCanceller()).feed(mic.samples, played).astype(np.float64)
    theirs = EchoStage(SpeexCanceller()).feed(mic.samples, played).astype(np.float64)
    difference_db = 10 * np.log10(np.sum((ours - theirs) ** 2) / np.sum(theirs**2))
    assert difference_db <= -10.0


def test_speexdsp_missing_says_how_to_install_it() -> None:
    with pytest.raises(DeviceError, match=r"install it with `sudo apt-get install libspeexdsp1`"):
        load_speexdsp("libspeexdsp-missing.so.9")


def test_webrtc_without_livekit_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """livekit is an extra (the default canceller is speexdsp): without it, asking for AEC3
    names the extra to install, not an ImportError."""
    monkeypatch.setitem(sys.modules, "livekit", None)  # what `import livekit` finds when it is absent
    with pytest.raises(DeviceError, match=r"pip install 'backstretch\[webrtc\]'"):
        WebRtcCanceller()


def test_a_closed_speexdsp_canceller_refuses_frames() -> None:
    canceller = SpeexDspCanceller()
    silence = np.zeros(FRAME_SAMPLES, np.int16)
    assert len(canceller.process(silence, silence)) == FRAME_SAMPLES
    with pytest.raises(ValueError, match="frames of 160 samples"):
        canceller.process(silence[:100], silence[:100])
    canceller.close()
    canceller.close()  # twice is harmless
    with pytest.raises(ValueError, match="closed"):
        canceller.process(silence, silence)


class Recorder:
    """A canceller that returns its capture and notes what it was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.frames: list[tuple[Samples, Samples]] = []

    def process(self, capture: Samples, reference: Samples) -> Samples:
        self.frames.append((capture.copy(), reference.copy()))
        return capture


def test_the_stage_hands_the_canceller_whole_frames_in_order() -> None:
    recorder = Recorder()
    stage = EchoStage(recorder)
    capture = np.arange(1000, dtype=np.int16)
    reference = -capture
    out = [stage.feed(capture[a:b], reference[a:b]) for a, b in ((0, 70), (70, 550), (550, 1000))]
    assert [len(o) for o in out] == [0, 480, 480]
    assert np.array_equal(np.concatenate(out), capture[:960])
    assert all(len(c) == len(r) == FRAME_SAMPLES and np.array_equal(r, -c) for c, r in recorder.frames)
    with pytest.raises(ValueError, match="capture of 3 samples, reference of 2"):
        stage.feed(capture[:3], reference[:2])


def test_conditions_are_deterministic_from_the_seed() -> None:
    played = coach()[: 2 * RATE_HZ]
    conditions = room.Conditions(fan_dbfs=-50.0, seed=3)
    a = room.Room(GEOMETRY, conditions, 1e6).mic(played, None).samples
    b = room.Room(GEOMETRY, conditions, 1e6).mic(played, None).samples
    c = room.Room(GEOMETRY, replace(conditions, seed=4), 1e6).mic(played, None).samples
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# -- live: the player's blocks as the reference, aligned by PortAudio's clocks -------------


def live(played: Samples, conditions: room.Conditions, **options: Any) -> tuple[Samples, Samples, LiveEcho]:
    """`played` through the room (GEOMETRY) and LiveEcho as live (`room.live_echo`)."""
    return room.live_echo(GEOMETRY, played, conditions, **options)


def removed_db(mic: Samples, out: Samples, start_s: float, stop_s: float | None = None) -> float:
    a, b = round(start_s * RATE_HZ), round((stop_s or len(out) / RATE_HZ) * RATE_HZ)
    before, after = mic[a:b].astype(np.float64), out[a:b].astype(np.float64)
    return float(10 * np.log10(np.sum(before**2) / max(np.sum(after**2), 1.0)))


LIVE_ROOM = room.Conditions(echo_db=20.0, latency_ms=40.0)


def test_live_the_players_blocks_cancel_the_echo_by_their_dac_times() -> None:
    """The device's own latency (40 ms) is unknown to the clocks: the reference is placed by
    them, AHEAD_S early, and the canceller finds the rest. Until it has learnt the echo the
    microphone is heard as it is; then cleaned. Measured 36.0 dB from 6 s on."""
    mic, out, echo = live(coach(), LIVE_ROOM)
    assert np.array_equal(out[:RATE_HZ], mic[:RATE_HZ])  # learning: as it is
    assert echo.judge.learnt and echo.judge.erle_db >= LEARNT_DB
    assert removed_db(mic, out, 4.0) >= 25.0
    assert echo.realigned == 0


def test_live_an_underrun_the_player_counted_keeps_the_echo_in_place() -> None:
    """The device played 120 ms of silence 5 s in; the player's frames skip it, so the
    reference has the same silence and the echo stays where the canceller learnt it.
    Measured 34.3 dB from 6 s on."""
    played = coach()
    mic, out, echo = live(played, LIVE_ROOM, gap=(5 * RATE_HZ, round(0.12 * RATE_HZ)))
    assert removed_db(mic, out, 6.0) >= 25.0 and echo.judge.learnt


def test_live_without_portaudio_times_the_callbacks_clock_aligns_it() -> None:
    """Measured 36.0 dB from 6 s on."""
    mic, out, _ = live(coach(), LIVE_ROOM, stamps=False)
    assert removed_db(mic, out, 6.0) >= 25.0


def test_live_the_echos_own_delay_corrects_clocks_that_are_off() -> None:
    """The DAC times 150 ms early (a host API that misreports its buffer): the echo is found
    150 ms late, beyond what the clocks promised, and the reference is moved to it.
    Measured 30.9 dB from 6 s on."""
    mic, out, echo = live(coach(), LIVE_ROOM, dac_error_s=-0.15)
    assert echo.delay_s is not None and abs(echo.delay_s - TARGET_LAG_S) <= 0.002
    assert removed_db(mic, out, 6.0) >= 20.0


@pytest.mark.parametrize("ppm", [200.0, -200.0])
def test_live_clock_drift_is_measured_and_the_reference_read_at_its_rate(ppm: float) -> None:
    """A speaker and a microphone on two clocks 200 ppm apart (the echo slides by 0.2 ms a
    second): the slope of the echo's measured place is the drift, and the reference is
    read at its rate. Measured from 30 s on: 52 to 58 dB (+200 ppm), 55 to 64 dB
    (-200 ppm); without following the drift 0 to 15 dB, and at -200 ppm never learnt."""
    played = np.concatenate([coach()] * 5)
    mic, out, echo = live(played, replace(LIVE_ROOM, drift_ppm=ppm))
    assert abs(echo.drift * 1e6 - ppm) <= 10.0
    for start in (30.0, 45.0):
        assert removed_db(mic, out, start, start + 15.0) >= 40.0


def test_live_a_nudge_of_the_clocks_does_not_move_an_echo_whose_place_is_measured() -> None:
    """The DAC times drift by 1000 ppm from the count (a host API's estimate wandering; or a
    drift the echo's own place already follows), so the clocks nudge the reference by 10 ms
    every 10 s; the echo has not moved, and its measured place keeps the reference where it
    is. Measured: 54 to 64 dB per 10 s from 10 s on (moving with the nudges: under 12 dB for
    a few seconds after each)."""
    played = np.concatenate([coach()] * 4)
    mic, out, echo = live(played, LIVE_ROOM, dac_drift_ppm=1000.0)
    assert echo._out.steps >= 3  # the nudges happened
    assert echo.realigned == 0 and echo.drift == 0.0
    for start in range(10, 50, 10):
        assert removed_db(mic, out, start, start + 10.0) >= 40.0


def test_live_no_echo_no_move() -> None:
    """A microphone that does not hear the coach (headphones): nothing to correlate with, so
    the reference is never moved (a move on a coincidence would cost the next echo)."""
    _, _, echo = live(coach(), LIVE_ROOM, hears_echo=False)
    assert echo.delay_s is None


def test_the_echo_is_learnt_from_20_db_down_and_lost_under_12() -> None:
    """EchoJudge, on 30 ms chunks of the coach speaking: the cleaned output counts once the
    coach is 20 dB down over the last second of its voice, and stops counting under 12."""
    judge = EchoJudge()
    rng = np.random.default_rng(3)
    reference = (rng.standard_normal(480) * 3000).astype(np.int16)
    capture = (rng.standard_normal(480) * 3000).astype(np.int16)

    def feed(down_db: float, seconds: float) -> None:
        cleaned = (capture * 10 ** (-down_db / 20)).astype(np.int16)
        for _ in range(round(seconds / 0.03)):
            judge.update(capture, cleaned, reference)

    room = (rng.standard_normal(480) * 20).astype(np.int16)  # the coach silent: the room alone
    judge.update(room, room, np.zeros(480, np.int16))
    feed(30.0, 0.3)
    assert not judge.learnt  # its first words: too few to judge by
    feed(15.0, 2.0)
    assert not judge.learnt and judge.erle_db == pytest.approx(15.0, abs=0.2)
    feed(30.0, 0.5)
    assert not judge.learnt  # half a second of it: not yet
    feed(30.0, 0.6)
    assert judge.learnt
    feed(14.0, 2.0)
    assert judge.learnt  # between the two: kept
    feed(10.0, 1.1)
    assert not judge.learnt
    judge.update(capture, np.zeros(480, np.int16), np.zeros(480, np.int16))  # the coach silent:
    assert not judge.learnt  # nothing to judge by


def test_no_echo_in_the_microphone_is_never_learnt() -> None:
    """Headphones: while the coach speaks the microphone hears the room as when it is
    silent, and the preprocessor's noise suppression takes that 27 dB down; that is no echo
    removed, so the microphone is heard as it is. When an echo learnt goes away (the speaker
    unplugged), the same."""
    judge = EchoJudge()
    rng = np.random.default_rng(4)
    coach = (rng.standard_normal(480) * 3000).astype(np.int16)
    room = (rng.standard_normal(480) * 20).astype(np.int16)
    suppressed = (room * 10 ** (-27 / 20)).astype(np.int16)
    for _ in range(20):
        judge.update(room, room, np.zeros(480, np.int16))
    for _ in range(100):
        judge.update(room, suppressed, coach)
    assert judge.erle_db > 20 and not judge.learnt
    echo = (coach // 2 + room).astype(np.int16)
    for _ in range(40):
        judge.update(echo, (echo * 0.01).astype(np.int16), coach)
    assert judge.learnt
    for _ in range(40):
        judge.update(room, suppressed, coach)
    assert not judge.learnt


def test_the_delay_search_fft_length_is_the_least_smooth_one_at_least_asked() -> None:
    """align.fast_length: the least length >= n with no prime factor over 5 (a shorter one
    would wrap the cross-correlation round; a longer one costs for nothing)."""

    def smooth(m: int) -> bool:
        for f in (2, 3, 5):
            while m % f == 0:
                m //= f
        return m == 1

    for n in [*range(1, 600), 9800, 39199, 39200, 65537]:
        length = fast_length(n)
        assert length >= n and smooth(length) and not any(smooth(m) for m in range(n, length)), n
