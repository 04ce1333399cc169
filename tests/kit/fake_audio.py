"""A stand-in for the sounddevice module, for tests of the code that opens devices: it takes
the arguments our code passes and records them, and refuses rates the "device" lacks with
PortAudio's own message. Streams never call back: a test calls the callback itself."""

from __future__ import annotations

from typing import Any


class PortAudioError(Exception):
    pass


class Stream:
    """An input, output or duplex stream: the arguments it was opened with; `active` once
    started, until stopped or closed (or a test sets it False: the device went away)."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.device = kwargs["device"]
        self.latency: Any = (0.03, 0.2) if isinstance(kwargs.get("channels"), tuple) else 0.05
        self.active = False
        self.closed = False

    def start(self) -> None:
        self.active = True

    def stop(self, ignore_errors: bool = False) -> None:
        self.active = False

    def close(self, ignore_errors: bool = False) -> None:
        self.active, self.closed = False, True


class FakeSounddevice:
    """sounddevice as far as this project uses it; `rates` are those the device takes. Two
    devices, 0 "USB Audio" (the default output) and 1 "pulse", both ways; the default input
    is `default_input`. `duplex_fails`: a duplex stream is refused (an ALSA device that
    cannot open both ways at once)."""

    PortAudioError = PortAudioError

    def __init__(
        self, rates: tuple[int, ...] = (48000,), default_rate: int = 48000, default_input: int = 0,
        duplex_fails: bool = False,
    ) -> None:  # fmt: skip
        self.rates = rates
        self.default_rate = default_rate
        self.default_input = default_input
        self.duplex_fails = duplex_fails
        self.opened: list[Stream] = []

    def query_devices(self, device: Any = None, kind: str | None = None) -> Any:
        infos = [
            {"name": name, "index": i, "max_input_channels": 1, "max_output_channels": 2,
             "default_samplerate": float(self.default_rate)}
            for i, name in enumerate(("USB Audio", "pulse"))
        ]  # fmt: skip
        if device is None and kind is None:
            return infos
        if device is None:
            device = self.default_input if kind == "input" else 0
        for info in infos:
            if device == info["index"] or (isinstance(device, str) and device in str(info["name"])):
                return info
        raise ValueError(f"No {kind} device matching {device!r}")

    def _stream(self, **kwargs: Any) -> Stream:
        if kwargs["samplerate"] not in self.rates:
            raise PortAudioError("Error opening OutputStream: Invalid sample rate [PaErrorCode -9997]")
        self.query_devices(kwargs["device"], "output")
        self.opened.append(Stream(**kwargs))
        return self.opened[-1]

    def Stream(self, **kwargs: Any) -> Stream:  # noqa: N802 (sounddevice's name)
        if self.duplex_fails:
            raise PortAudioError(
                "Error opening Stream: Illegal combination of I/O devices [PaErrorCode -9993]"
            )
        return self._stream(**kwargs)

    OutputStream = InputStream = _stream
