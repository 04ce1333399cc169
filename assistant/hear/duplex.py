"""One duplex stream for the speaker and the microphone, when one device does both (issue 13).

Two PortAudio streams run on two callbacks with two clocks: the live echo canceller
(hear/align.py) aligns the coach's output with the capture from their DAC and ADC times
and follows the drift between them. When the microphone and the speaker are one PortAudio
device, one `sd.Stream` does both: its callback hands the output to the player
(`Player.fill`) and the input to the microphone (`Microphone.take`), the same code the two
streams run. Both sides are then counted frame for frame on one clock: no drift between
reference and capture, and no second stream to lose. So the input's ADC times are taken
from that count (capture.py, `_CountedStamps`): PortAudio's own wandered 40 ms from it.

The stream runs at the player's rate, block size and output latency (the player's side is
the one that underruns); the microphone's side is resampled to 16 kHz on the listening
thread, as for a microphone that refuses 16 kHz. The stream is the player's (its `opener`):
the player's check reopens it, as one, when the device stops, and the microphone only
starts and stops listening. `Clock` in align.py sees the step of both stamps at a reopen.

Chosen, when `audio.duplex` is true, if the configured microphone and speaker are the same
device index with input and output channels; otherwise, or when the duplex stream does not
open, two streams as before. One INFO line says which, and why. Off by default: through
ALSA's PulseAudio plugin the duplex stream underran far more often under load (README).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from assistant.errors import DeviceError
from assistant.hear.capture import Microphone
from assistant.speak import devices
from assistant.speak.devices import device_arg, open_stream
from assistant.speak.playback import LATENCY, Player

log = logging.getLogger(__name__)

INPUT_LATENCY = "high"  # what the microphone's own stream asks for (sounddevice's default)


@dataclass(frozen=True)
class Choice:
    """One duplex stream or two, and why (for the log and `backstretch devices`)."""

    duplex: bool
    why: str
    device: int | None = None  # the one device's PortAudio index

    def describe(self) -> str:
        if self.duplex:
            return f"one duplex stream: {self.why}"
        return f"two streams, speaker and microphone: {self.why}"


def choose(output_device: str | None, input_device: str | None, enabled: bool = True) -> Choice:
    """Whether the configured speaker and microphone (names or indices; None: the defaults)
    are one PortAudio device that has both input and output channels."""
    if not enabled:
        return Choice(False, "audio.duplex is off")
    sd = devices.import_sounddevice()  # (through the module: a test hands in a stand-in)
    try:
        out = sd.query_devices(device_arg(output_device), "output")
        into = sd.query_devices(device_arg(input_device), "input")
    except (sd.PortAudioError, ValueError) as exc:
        return Choice(False, f"the devices could not be looked up ({exc})")
    if out["index"] != into["index"]:
        return Choice(
            False,
            f"the microphone is device {into['index']} ({into['name']}), "
            f"the speaker device {out['index']} ({out['name']})",
        )
    if out["max_input_channels"] < 1 or out["max_output_channels"] < 1:  # (a lookup by kind checks it)
        return Choice(False, f"device {out['index']} ({out['name']}) does not both play and record")
    one = f"the microphone and the speaker are device {out['index']} ({out['name']})"
    return Choice(True, one, out["index"])


class Duplex:
    """The player's opener when one device does both: one stream, its output the player's,
    its input the microphone's."""

    def __init__(self, player: Player, microphone: Microphone, device: int) -> None:
        self.player, self.microphone, self.device = player, microphone, device
        self.opened = 0  # streams opened (the first, then every reopen)

    def open(self) -> Any:
        """Open the stream at the player's rate (or the device's own, when it refuses that),
        started; a DeviceError when it cannot be had."""
        return open_stream(
            str(self.device), "output", self.player.wanted_rate_hz, self._open_at,
            f"cannot play and listen on audio device {self.device}",
        )  # fmt: skip

    def _open_at(self, sd: Any, device: int | str | None, rate: int) -> Any:
        self.player.prepare(rate)
        stream = sd.Stream(
            samplerate=rate, channels=(1, 1), dtype="int16", device=device,
            blocksize=self.player.block_frames, latency=(INPUT_LATENCY, LATENCY),
            callback=self.callback, finished_callback=self.microphone.finished,
        )  # fmt: skip
        input_s, output_s = (float(s) for s in stream.latency)
        self.player.started(output_s)
        self.microphone.started(rate, input_s)
        stream.start()
        self.opened += 1
        log.info("duplex %s at %d Hz, output latency %.0f ms, input %.0f ms",
                 stream.device, rate, output_s * 1000, input_s * 1000)  # fmt: skip
        return stream

    def callback(self, indata: Any, outdata: Any, frames: int, time: Any, status: Any) -> None:
        # The output first: it is the side a late callback is heard on.
        self.player.fill(outdata, frames, time, status)
        self.microphone.take(indata, frames, time, status)


def open_devices(player: Player, microphone: Microphone, enabled: bool = True) -> Choice:
    """Open the player; with it, on one duplex stream, the microphone when one device does
    both (`choose`). Otherwise, or when that stream does not open, the player alone: the
    microphone opens a stream of its own when listening starts. Says which in one INFO line."""
    choice = choose(player.device, microphone.device, enabled)
    if choice.duplex and choice.device is not None:
        player.opener, microphone.shared = Duplex(player, microphone, choice.device).open, True
        try:
            player.open()
        except DeviceError as exc:
            player.opener, microphone.shared = None, False
            failed = exc.__cause__ or exc  # (PortAudio's words, without the hint for a missing device)
            choice = Choice(False, f"{choice.why}, but the duplex stream did not open ({failed})")
        else:
            log.info("%s", choice.describe())
            return choice
    log.info("%s", choice.describe())
    player.open()
    return choice
