"""One duplex stream when one device does both (hear/duplex.py): the choice, the one callback
that drives the player and the microphone, and a reopen as one stream. The device is a
stand-in (tests/kit/fake_audio.py) whose callback the test calls; the player, its piper
voice, the microphone, LiveEcho and its speexdsp canceller are the real ones. The same on
PulseAudio: tests/app/test_e2e.py (its sessions run duplex on the default device)."""

from __future__ import annotations

import itertools
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from assistant.hear.align import LiveEcho
from assistant.hear.capture import Microphone
from assistant.hear.duplex import choose, open_devices
from assistant.hear.echo import SpeexDspCanceller
from assistant.pcm import RATE_HZ, Samples
from assistant.speak import devices, voices
from assistant.speak.cache import CueCache
from assistant.speak.playback import Player
from assistant.speak.tts import SpeechSettings, Synthesizer
from tests.kit.fake_audio import FakeSounddevice, Stream

VOICE_RATE = 22050  # the bundled voice's: the duplex stream runs at it


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> CueCache:
    synth = Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings(varied=False))
    return CueCache(synth, tmp_path_factory.mktemp("cues"))


def fake(monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> FakeSounddevice:
    sd = FakeSounddevice(rates=(RATE_HZ, VOICE_RATE), **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(devices, "import_sounddevice", lambda: sd)
    return sd


def test_one_device_both_ways_is_one_duplex_stream(
    monkeypatch: pytest.MonkeyPatch, cache: CueCache, caplog: pytest.LogCaptureFixture
) -> None:
    sd = fake(monkeypatch)
    player, microphone = Player(cache, None, 1.0), Microphone("USB")  # the default output is USB
    with caplog.at_level(logging.INFO, "assistant.hear.duplex"):
        choice = open_devices(player, microphone)
    microphone.open()  # listening starts: no stream of its own
    assert choice.duplex and choice.device == 0
    [stream] = sd.opened
    args = stream.kwargs
    assert args["channels"] == (1, 1) and args["samplerate"] == VOICE_RATE and args["device"] == 0
    assert args["blocksize"] == player.block_frames and args["latency"][1] == 0.2
    assert microphone.active() and microphone.shared
    chosen = [r.message for r in caplog.records if r.message.startswith(("one duplex", "two streams"))]
    assert chosen == ["one duplex stream: the microphone and the speaker are device 0 (USB Audio)"]
    microphone.close()
    player.close()
    assert stream.closed  # the player's to close


@pytest.mark.parametrize(
    ("setup", "enabled", "why"),
    [
        ({"default_input": 1}, True, "the microphone is device 1 (pulse), the speaker device 0 (USB Audio)"),
        ({}, False, "audio.duplex is off"),
        ({"duplex_fails": True}, True, "the microphone and the speaker are device 0 (USB Audio), but the "
         "duplex stream did not open (Error opening Stream: Illegal combination of I/O devices"),
    ],
    ids=["two-devices", "off", "refused"],
)  # fmt: skip
def test_otherwise_two_streams_and_one_line_says_why(
    monkeypatch: pytest.MonkeyPatch, cache: CueCache, caplog: pytest.LogCaptureFixture,
    setup: dict[str, object], enabled: bool, why: str,
) -> None:  # fmt: skip
    sd = fake(monkeypatch, **setup)
    player, microphone = Player(cache, None, 1.0), Microphone(None)
    with caplog.at_level(logging.INFO, "assistant.hear.duplex"):
        choice = open_devices(player, microphone, enabled)
    microphone.open()
    assert not choice.duplex and not microphone.shared
    assert [s.kwargs["channels"] for s in sd.opened] == [1, 1]  # an output stream, then an input one
    assert sd.opened[1].kwargs["callback"] == microphone.take
    chosen = [r.message for r in caplog.records if r.message.startswith(("one duplex", "two streams"))]
    assert len(chosen) == 1 and chosen[0].startswith(f"two streams, speaker and microphone: {why}")
    microphone.close()
    player.close()


def test_the_choice_by_name_and_index(monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch)
    assert choose("pulse", "1").duplex and choose("0", None).duplex  # the default input is 0
    assert not choose("USB", "pulse").duplex
    assert choose("no such speaker", None).why.startswith("the devices could not be looked up (No output")


def test_the_input_of_a_duplex_stream_is_stamped_by_its_count() -> None:
    """ADC times in a sawtooth against the count (5 ms ahead a second, back every 3 s, as
    through ALSA's PulseAudio plugin) come out on the count, at the median offset of the
    stream's first 0.5 s; after a flagged overflow (input lost: 30 ms), at the offset of
    the 0.5 s after it."""
    microphone = Microphone(None)
    microphone.shared = True
    microphone.open()
    microphone.started(RATE_HZ, 0.03)
    raw = [0.005 * (k * 0.03 % 3.0) + (0.03 if k >= 150 else 0.0) for k in range(200)]  # 30 ms blocks
    for k, off in enumerate(raw):
        when = SimpleNamespace(inputBufferAdcTime=1000.0 + k * 0.03 + off)
        status = SimpleNamespace(input_overflow=k == 150)
        microphone.take(np.zeros((480, 1), np.int16), 480, when, status)
    chunks = list(itertools.takewhile(lambda c: c is not None, microphone.chunks(timeout_s=0.0)))
    offsets = np.array([c.adc_s - 1000.0 - k * 0.03 for k, c in enumerate(chunks) if c is not None])
    settle = 17  # blocks of 30 ms in 0.5 s
    assert np.ptp(offsets[settle:150]) < 1e-6 and abs(offsets[settle] - np.median(raw[:settle])) < 1e-6
    assert np.ptp(offsets[150 + settle :]) < 1e-6
    assert abs(offsets[-1] - np.median(raw[150 : 150 + settle])) < 1e-6


class Device:
    """One device both ways, as PortAudio drives a duplex stream: a block of output and one of
    input per call, on one clock. What it plays comes back into its microphone (a speaker
    next to it) ECHO_S after it sounds, at half its level; when it stops (`vanish`), a
    reopened stream starts after the gap, its times as far on, with nothing of before in
    its buffers."""

    OUTPUT_S, INPUT_S, ECHO_S = 0.2, 0.03, 0.01  # the DAC's lead, the ADC's lag, the room

    def __init__(self, sd: FakeSounddevice) -> None:
        self.sd = sd
        self.t0 = 1000.0  # PortAudio's clock at stream position 0
        self.position = 0  # frames through the stream since t0, gaps included
        self.sounded = np.zeros(0, np.float64)  # what sounded, from t0 on, at the stream's rate

    @property
    def stream(self) -> Stream:
        return self.sd.opened[-1]

    def run(self, seconds: float) -> None:
        rate, block = self.stream.kwargs["samplerate"], self.stream.kwargs["blocksize"]
        lag = round((self.INPUT_S + self.ECHO_S) * rate)  # sounded (in time from t0) -> captured
        status = SimpleNamespace(output_underflow=False, input_overflow=False)
        for _ in range(round(seconds * rate / block)):
            t = self.t0 + self.position / rate
            when = SimpleNamespace(
                outputBufferDacTime=t + self.OUTPUT_S, inputBufferAdcTime=t - self.INPUT_S, currentTime=t
            )
            p = self.position
            echo = np.zeros(block)
            lo, hi = max(0, p - lag), min(len(self.sounded), p - lag + block)
            if lo < hi:
                echo[lo - (p - lag) : hi - (p - lag)] = self.sounded[lo:hi]
            indata = np.round(echo * 0.5).astype(np.int16).reshape(-1, 1)
            outdata = np.zeros((block, 1), np.int16)
            self.stream.kwargs["callback"](indata, outdata, block, when, status)
            at = p + round(self.OUTPUT_S * rate)  # where it sounds, in stream frames
            self.sounded = np.concatenate([self.sounded, np.zeros(max(0, at + block - len(self.sounded)))])
            self.sounded[at : at + block] = outdata[:, 0]
            self.position += block

    def vanish(self, seconds: float) -> None:
        """The device goes away for `seconds` (the stream stops without a word)."""
        self.stream.active = False
        self.position += round(seconds * self.stream.kwargs["samplerate"])


def listen(microphone: Microphone, echo: LiveEcho, raw: list[Samples], out: list[Samples]) -> None:
    """The listening thread's work on what the microphone has queued."""
    for chunk in microphone.chunks(timeout_s=0.0):
        if chunk is None:
            return
        raw.append(chunk.samples)
        out.append(echo.clean(chunk).samples)


def removed_db(raw: Samples, out: Samples) -> float:
    before, after = np.sum(raw.astype(np.float64) ** 2), np.sum(out.astype(np.float64) ** 2)
    return float(10 * np.log10(before / max(after, 1.0)))


def test_one_callback_plays_and_hears_and_a_reopen_keeps_the_echo_cancelled(
    monkeypatch: pytest.MonkeyPatch, cache: CueCache
) -> None:
    """The player's cues go out and come back in the same callback's input: the echo is
    cancelled by the stamps of that one callback. The device vanishes
    for 1.5 s mid-cue: the player's check cannot reopen it while it is gone, then reopens
    it as one duplex stream; both clocks in LiveEcho step (one each), the session carries on
    at the same frame, and the canceller has the echo down again within 2 s (the 0.2 s of
    output the device held when it vanished never sounded: the canceller saw its reference
    with no echo, and EchoJudge let the microphone through as it is for 1.5 s). Measured:
    34.9 dB removed from 4 s to the reopen, 40.4 dB from 2 s to 4 s after it."""
    sd = fake(monkeypatch)
    player, microphone = Player(cache, None, 1.0), Microphone(None)
    assert open_devices(player, microphone).duplex
    echo = LiveEcho(SpeexDspCanceller())
    player.tap = echo
    microphone.open()
    player.start_session()
    cue = cache.get("Breathe out, and pull your thigh as close to your chest and belly as you can.")
    for k in range(4):  # 14 s of the coach's voice, one cue after another
        player.schedule(0.1 + k * (cue.duration_s + 0.1), cue)
    device, raw, out = Device(sd), [], []
    for _ in range(12):  # 6 s: the canceller learns the echo
        device.run(0.5)
        listen(microphone, echo, raw, out)
    before = len(np.concatenate(out))
    assert echo.judge.learnt
    at_s = player.now_s()
    device.vanish(1.5)
    sd.duplex_fails = True  # still gone at the first check
    assert not player.check() and len(sd.opened) == 1
    sd.duplex_fails = False
    assert player.check() and len(sd.opened) == 2 and player.reopened == 1
    assert sd.opened[1].kwargs["channels"] == (1, 1) and player.now_s() == at_s
    for _ in range(8):
        device.run(0.5)
        listen(microphone, echo, raw, out)
    heard, cleaned = np.concatenate(raw), np.concatenate(out)
    later = slice(before + 2 * RATE_HZ, before + 4 * RATE_HZ)
    assert np.abs(heard[later]).max() > 3000  # the coach's voice came back in the microphone
    assert removed_db(heard[later], cleaned[later]) >= 30.0, removed_db(heard[later], cleaned[later])
    assert echo.judge.learnt
    # One step of each clock at the reopen (align.Clock), none before it (the microphone's
    # resampled stamps, see capture._Resampler), and one realignment: the output's step,
    # taken from its first block after the reopen (logged since stop 21; it was made silently
    # before, as the 9 dB dip after the reopen shows in both).
    assert (echo._out.steps, echo._in.steps, echo.realigned) == (1, 1, 1)
    assert microphone.overflows == 0 and player.underflows == 0
