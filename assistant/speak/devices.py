"""Audio devices: PortAudio through sounddevice, imported only when a device is used.

Devices are named in the configuration by number or by (part of) a name.
`open_stream` opens at the rate the caller wants or, when the device refuses
it, at the device's own rate (the caller resamples); any failure is one
DeviceError line that says what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from assistant.errors import DeviceError

log = logging.getLogger(__name__)

NO_DEVICE_HINT = (
    "`backstretch devices` lists the devices; without one, use --text --mute, "
    "--in FILE.wav, --out FILE.wav or `make demo`"
)


def import_sounddevice() -> Any:
    """sounddevice, or a DeviceError saying how to get PortAudio."""
    try:
        import sounddevice
    except OSError as exc:  # raised at import when libportaudio2 is missing
        raise DeviceError(
            "PortAudio is not installed, so no audio device can be used; "
            "install it with `sudo apt-get install libportaudio2`"
        ) from exc
    return sounddevice


def device_arg(device: str | None) -> int | str | None:
    """A configured device: an index when it is a number, else a name (or part of one)."""
    if device is None or device == "":
        return None
    return int(device) if device.strip().isdigit() else device


def list_devices() -> list[dict[str, Any]]:
    sd = import_sounddevice()
    try:
        return [dict(d) for d in sd.query_devices()]
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot list audio devices ({exc})") from exc


def open_stream(
    device: str | None,
    kind: str,
    rate_hz: int,
    open_at: Callable[[Any, int | str | None, int], Any],
    failure: str,
) -> Any:
    """`open_at(sounddevice, device, rate)` at `rate_hz`, or at the device's own rate when
    it refuses that one. `kind` is "input" or "output"; `failure` starts the error line
    ("cannot play on the default audio device")."""
    sd = import_sounddevice()
    chosen = device_arg(device)
    try:
        try:
            return open_at(sd, chosen, rate_hz)
        except sd.PortAudioError as exc:
            if "sample rate" not in str(exc).lower():
                raise
            rate = int(sd.query_devices(chosen, kind)["default_samplerate"])
            log.info("%s device refuses %d Hz; opening at %d Hz and resampling", kind, rate_hz, rate)
            return open_at(sd, chosen, rate)
    except (sd.PortAudioError, ValueError) as exc:
        raise DeviceError(f"{failure} ({exc}); {NO_DEVICE_HINT}") from exc
