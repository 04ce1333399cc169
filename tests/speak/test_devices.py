"""Opening audio devices (speak/devices.py), with a stand-in for sounddevice at the one seam
we own (`import_sounddevice`): the rate fallback, the error lines, device names."""

from __future__ import annotations

import importlib.abc
import sys
from pathlib import Path
from typing import Any

import pytest

from assistant.errors import DeviceError
from assistant.hear.capture import CHUNK_FRAMES, Microphone
from assistant.speak import devices, voices
from assistant.speak.cache import CueCache
from assistant.speak.playback import Player
from assistant.speak.tts import SpeechSettings, Synthesizer
from tests.kit.fake_audio import FakeSounddevice, PortAudioError


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeSounddevice:
    sd = FakeSounddevice()
    monkeypatch.setattr(devices, "import_sounddevice", lambda: sd)
    return sd


def _open_at(sd: Any, device: int | str | None, rate: int) -> Any:
    return sd.OutputStream(samplerate=rate, device=device)


@pytest.mark.parametrize(
    ("configured", "argument"), [(None, None), ("", None), ("3", 3), (" 12 ", 12), ("USB Audio", "USB Audio")]
)
def test_a_configured_device_is_a_number_or_a_name(
    configured: str | None, argument: int | str | None
) -> None:
    assert devices.device_arg(configured) == argument


def test_the_wanted_rate_when_the_device_takes_it(fake: FakeSounddevice) -> None:
    fake.rates = (22050, 48000)
    devices.open_stream("USB", "output", 22050, _open_at, "cannot play")
    assert [(o.kwargs["device"], o.kwargs["samplerate"]) for o in fake.opened] == [("USB", 22050)]


def test_the_device_rate_when_it_refuses_the_wanted_one(
    fake: FakeSounddevice, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO"):
        devices.open_stream("0", "output", 22050, _open_at, "cannot play")
    assert [(o.kwargs["device"], o.kwargs["samplerate"]) for o in fake.opened] == [(0, 48000)]
    assert "output device refuses 22050 Hz; opening at 48000 Hz and resampling" in caplog.text


@pytest.mark.parametrize(
    ("device", "rates", "message"),
    [
        ("no such speaker", (48000,), "cannot play on it (No output device matching 'no such speaker')"),
        ("USB", (), "cannot play on it (Error opening OutputStream: Invalid sample rate"),  # no rate at all
    ],
)
def test_a_failure_is_one_line_saying_what_to_do(
    fake: FakeSounddevice, device: str, rates: tuple[int, ...], message: str
) -> None:
    fake.rates = rates
    with pytest.raises(DeviceError) as caught:
        devices.open_stream(device, "output", 22050, _open_at, "cannot play on it")
    text = str(caught.value)
    assert text.startswith(message) and text.endswith(devices.NO_DEVICE_HINT) and "\n" not in text


def test_another_portaudio_error_is_not_retried(fake: FakeSounddevice) -> None:
    calls = []

    def busy(sd: Any, device: int | str | None, rate: int) -> Any:
        calls.append(rate)
        raise PortAudioError("Device unavailable [PaErrorCode -9985]")

    with pytest.raises(DeviceError, match=r"cannot play \(Device unavailable"):
        devices.open_stream(None, "output", 22050, busy, "cannot play")
    assert calls == [22050]


def test_the_player_and_the_microphone_open_at_the_device_rate(fake: FakeSounddevice, tmp_path: Path) -> None:
    cache = CueCache(Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings()), tmp_path)
    player = Player(cache, "USB", 0.8)
    player.open()
    opened = fake.opened[-1].kwargs
    assert player.rate_hz == 48000 and opened["samplerate"] == 48000 and opened["dtype"] == "int16"
    microphone = Microphone(None)
    microphone.open()  # 16 kHz refused: at 48 kHz, in blocks of 30 ms
    opened = fake.opened[-1].kwargs
    assert (opened["samplerate"], opened["blocksize"]) == (48000, 3 * CHUNK_FRAMES)
    microphone.close()
    assert fake.opened[-1].closed


def test_list_devices(fake: FakeSounddevice, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [d["name"] for d in devices.list_devices()] == ["USB Audio", "pulse"]

    def broken(*args: Any) -> Any:
        raise PortAudioError("Host error")

    monkeypatch.setattr(fake, "query_devices", broken)
    with pytest.raises(DeviceError, match=r"^cannot list audio devices \(Host error\)$"):
        devices.list_devices()


class NoPortAudio(importlib.abc.MetaPathFinder):
    """sounddevice's import as it fails without libportaudio2: OSError."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")


def test_without_portaudio_the_line_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    with pytest.raises(
        DeviceError, match=r"PortAudio is not installed.*`sudo apt-get install libportaudio2`"
    ):
        devices.import_sounddevice()
