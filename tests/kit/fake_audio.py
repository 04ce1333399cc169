"""A stand-in for the sounddevice module, for tests of the code that opens devices: it takes
the arguments our code passes and records them, and refuses rates the "device" lacks with
PortAudio's own message. Streams never call back: a test calls the callback itself."""

from __future__ import annotations

from typing import Any


class PortAudioError(Exception):
    pass


class Stream:
    """An input or output stream: the arguments it was opened with; `active` once started,
    until stopped or closed (or a test sets it False: the device went away)."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.device = kwargs["device"]
        self.latency = 0.05
        self.active = False
        self.closed = False

    def start(self) -> None:
        self.active = True

    def stop(self, ignore_errors: bool = False) -> None:
        self.active = False

    def close(self, ignore_errors: bool = False) -> None:
        self.active, self.closed = False, True


class FakeSounddevice:
    """sounddevice as far as this project uses it; `rates` are those the device takes."""

    PortAudioError = PortAudioError

    def __init__(self, rates: tuple[int, ...] = (48000,), default_rate: int = 48000) -> None:
        self.rates = rates
        self.default_rate = default_rate
        self.opened: list[Stream] = []

    def query_devices(self, device: Any = None, kind: str | None = None) -> Any:
        info = {"name": "USB Audio", "max_input_channels": 1, "max_output_channels": 2,
                "default_samplerate": float(self.default_rate)}  # fmt: skip
        if device is None and kind is None:
            return [info, {**info, "name": "pulse"}]
        if device not in (None, 0, "USB"):
            raise ValueError(f"No {kind} device matching {device!r}")
        return info

    def _stream(self, **kwargs: Any) -> Stream:
        if kwargs["samplerate"] not in self.rates:
            raise PortAudioError("Error opening OutputStream: Invalid sample rate [PaErrorCode -9997]")
        self.query_devices(kwargs["device"], "output")
        self.opened.append(Stream(**kwargs))
        return self.opened[-1]

    OutputStream = InputStream = _stream
