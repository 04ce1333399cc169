"""A bedroom for tests and bench: the user's speech and the coach's own voice, as the
device's microphone hears them (issue 13, item 1). Not a user-facing feature.

The room is a shoebox (pyroomacoustics, image-source method): about 4 x 3.5 x 2.6 m,
RT60 0.3 to 0.6 s, the device on a bedside table with its speaker `speaker_m` from
its microphone, the user lying on the bed `user_m` away. Its two impulse responses
(user -> microphone, speaker -> microphone) are computed once per geometry and kept
in memory and in ~/.cache/backstretch-dev/rirs (never in the repository).

`Conditions` sets what the microphone hears:
- `user_dbfs`: the user's active speech level at the microphone (-45 to -20 dBFS, rms
  re full scale; a relaxed voice across a bedroom is about -38);
- `echo_db`: the coach's echo over the user, active level against active level
  (0 to +30 dB; calibrated on the `coach_power` the caller states);
- `latency_ms`: from the sample handed to the player to its sound at the speaker (20-150);
- `drive`: a small speaker's non-linearity, tanh soft clipping (0: linear; 1: mild);
- `fan_dbfs`: steady pink noise (a fan), or None;
- `floor_dbfs`: the microphone's own white noise (digital silence upsets the recognisers'
  front ends, and every microphone has some);
- `drift_ppm`: the output clock against the input clock (+-200 ppm, a DAC and a USB
  microphone): the echo is resampled by 1 + drift.
Everything is deterministic from `seed`.

Three ways to use it:
- open loop, `Room.mic(reference, user)`: whole arrays (the bench); returns the
  microphone and its two parts, for echo removed and user attenuation;
- closed loop, `ClosedLoopMic`: a microphone for an offline session, 10 ms chunks, the
  echo made from what the session has really played so far (read from its
  `OutputTrack`), so when "pause" cuts a cue its echo stops too;
- live, `live_echo`: the player's blocks and the microphone's chunks, stamped as PortAudio
  stamps them, through `LiveEcho` (assistant/hear/align.py).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from assistant.hear.align import LiveEcho
from assistant.hear.capture import Chunk
from assistant.hear.echo import SpeexDspCanceller
from assistant.pcm import RATE_HZ, Floats, Samples
from assistant.speak.render import OutputTrack

log = logging.getLogger(__name__)

FULL_SCALE = 32768.0
FRAME_SAMPLES = RATE_HZ // 100
RIR_VERSION = 1  # bump when the geometry code changes: the disk cache is keyed on it
# Paul Kellet's economy pinking filter (pink within 1 dB above 50 Hz, as an IIR).
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


@dataclass(frozen=True)
class Geometry:
    """The bedroom, the device and the user."""

    rt60_s: float = 0.4
    dims_m: tuple[float, float, float] = (4.0, 3.5, 2.6)
    device_m: tuple[float, float, float] = (0.45, 0.6, 0.65)  # the microphone, on a bedside table
    speaker_m: float = 0.05  # speaker to microphone
    user_m: float = 1.5  # user's mouth to microphone, lying on the bed


@dataclass(frozen=True)
class Conditions:
    echo_db: float = 20.0
    user_dbfs: float = -38.0
    latency_ms: float = 40.0
    drive: float = 0.0
    fan_dbfs: float | None = None
    drift_ppm: float = 0.0
    floor_dbfs: float = -70.0  # the microphone's own white noise (10 LSB rms)
    seed: int = 0


def _cache_dir() -> Path:
    base = os.environ.get("BACKSTRETCH_TEST_RIR_CACHE") or str(
        Path.home() / ".cache" / "backstretch-dev" / "rirs"
    )
    return Path(base)


@functools.cache
def rirs(geometry: Geometry) -> tuple[Floats, Floats]:
    """(user -> microphone, speaker -> microphone) impulse responses at 16 kHz, each
    starting at its direct path's delay (from a zero-time source)."""
    key = hashlib.sha256(repr((RIR_VERSION, geometry)).encode()).hexdigest()[:16]
    path = _cache_dir() / f"{key}.npz"
    try:
        with np.load(path) as cached:
            return cached["user"], cached["speaker"]
    except (OSError, KeyError, ValueError):
        pass
    user, speaker = _compute(geometry)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # two test processes may race
        np.savez(tmp, user=user, speaker=speaker)
        tmp.replace(path)
    except OSError as exc:
        log.warning("cannot cache room impulse responses in %s: %s", path.parent, exc)
    return user, speaker


def _compute(geometry: Geometry) -> tuple[Floats, Floats]:
    import pyroomacoustics as pra

    dims = list(geometry.dims_m)
    absorption, order = pra.inverse_sabine(geometry.rt60_s, dims)
    room = pra.ShoeBox(dims, fs=RATE_HZ, materials=pra.Material(absorption), max_order=order)
    mic = np.array(geometry.device_m)
    # The speaker beside the microphone, a little lower; the user's mouth on the bed,
    # towards the middle of the room, at the mattress's height.
    speaker = mic + np.array([geometry.speaker_m * 0.8, 0.0, -geometry.speaker_m * 0.6])
    toward = np.array([0.8, 0.6, 0.0])
    user = mic + geometry.user_m * toward + np.array([0.0, 0.0, -0.05])
    room.add_source(user.tolist())
    room.add_source(speaker.tolist())
    room.add_microphone(mic.tolist())
    room.compute_rir()
    out = tuple(np.asarray(room.rir[0][s], dtype=np.float64) for s in (0, 1))
    return out[0], out[1]


def active_power(x: npt.NDArray[np.floating] | Samples) -> float:
    """Mean square of the active speech (10 ms frames within 35 dB of the loudest)."""
    v = np.asarray(x, dtype=np.float64)
    n = len(v) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = (v[:n].reshape(-1, FRAME_SAMPLES) ** 2).mean(axis=1)
    if not frames.size or frames.max() <= 0:
        return 0.0
    return float(frames[frames > frames.max() * 10 ** (-35 / 10)].mean())


def dbfs(power: float) -> float:
    return 10 * np.log10(max(power, 1e-12) / FULL_SCALE**2)


def speaker(x: npt.NDArray[np.floating] | Samples, drive: float) -> Floats:
    """What a small speaker makes of `x` (int16 scale): tanh soft clipping with `drive`
    (0: linear), the same small-signal gain."""
    v = np.asarray(x, dtype=np.float64)
    if drive <= 0:
        return v
    return np.tanh(v / FULL_SCALE * drive) * FULL_SCALE / drive


def user_gain_db(out: Samples, user: np.ndarray, start: int, stop: int) -> float:
    """The output's least-squares gain on the user's signal between `start` and `stop`, at
    the canceller's own delay (up to 20 ms: AEC3 delays by 8 ms, speexdsp by 10)."""
    u = user[start:stop]
    best = 0.0
    for lag in range(0, 321, 4):
        o = out[start + lag : stop + lag].astype(np.float64)
        if len(o) == len(u):
            best = max(best, float(np.dot(o, u) / max(float(np.dot(u, u)), 1e-9)))
    return float(20 * np.log10(max(best, 1e-6)))


class PinkNoise:
    """Steady pink noise in blocks, continuous across calls, at `dbfs` (rms)."""

    def __init__(self, dbfs_rms: float, seed: int) -> None:
        from scipy import signal

        self._lfilter = signal.lfilter
        self._rng = np.random.default_rng(seed)
        self._state = signal.lfilter_zi(_PINK_B, _PINK_A) * 0.0
        # The filter's output rms for unit white noise, measured once (it is fixed).
        probe = signal.lfilter(_PINK_B, _PINK_A, np.random.default_rng(1).normal(size=RATE_HZ * 4))
        self._scale = FULL_SCALE * 10 ** (dbfs_rms / 20) / float(np.sqrt(np.mean(probe[RATE_HZ:] ** 2)))
        self.block(RATE_HZ)  # past the filter's start-up

    def block(self, n: int) -> Floats:
        out, self._state = self._lfilter(_PINK_B, _PINK_A, self._rng.normal(size=n), zi=self._state)
        return np.asarray(out, dtype=np.float64) * self._scale


@dataclass(frozen=True)
class Mic:
    """The microphone (int16, clipped) and what made it (float, before clipping)."""

    samples: Samples
    echo: Floats
    user: Floats
    noise: Floats


def to_int16(x: Floats) -> Samples:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


class Room:
    """A geometry under conditions; `coach_power` is the active level (mean square, int16
    scale) of the coach's output at the player that `echo_db` is calibrated on."""

    def __init__(self, geometry: Geometry, conditions: Conditions, coach_power: float) -> None:
        self.geometry = geometry
        self.conditions = conditions
        self.h_user, self.h_speaker = rirs(geometry)
        c = conditions
        # Gains: the echo's level through the speaker response, and the user's through theirs,
        # estimated on a fixed pink probe with the coach's power: speech and pink noise
        # share the falling spectrum that matters here.
        probe = PinkNoise(dbfs(coach_power), seed=12345).block(RATE_HZ * 2)
        echo_power = active_power(_convolve(speaker(probe, c.drive), self.h_speaker))
        user_target = FULL_SCALE**2 * 10 ** (c.user_dbfs / 10)
        self.echo_gain = float(np.sqrt(user_target * 10 ** (c.echo_db / 10) / max(echo_power, 1e-12)))
        self.user_target = user_target

    def user_at_mic(self, user: npt.NDArray[np.floating] | Samples) -> Floats:
        """`user` (any level) through the room at `user_dbfs`."""
        wet = _convolve(np.asarray(user, dtype=np.float64), self.h_user)
        power = active_power(wet)
        return wet * np.sqrt(self.user_target / power) if power > 0 else wet

    def _echo_positions(self, n0: int, n1: int) -> Floats:
        """Where, in samples of the played signal, mic samples n0..n1 hear the speaker."""
        c = self.conditions
        n = np.arange(n0, n1, dtype=np.float64)
        return n * (1.0 + c.drift_ppm * 1e-6) - c.latency_ms * RATE_HZ / 1000.0

    def echo_of(self, played: npt.NDArray[np.floating] | Samples, n: int) -> Floats:
        """The echo in the first `n` mic samples of the whole played signal."""
        out = _convolve(speaker(played, self.conditions.drive), self.h_speaker)
        return _interp(out * self.echo_gain, self._echo_positions(0, n))

    def mic(
        self, played: npt.NDArray[np.floating] | Samples, user: npt.NDArray[np.floating] | Samples | None
    ) -> Mic:
        """Open loop: the coach plays `played` from sample 0 while the user says `user`
        (already placed in time; same length or shorter), both 16 kHz int16 scale."""
        n = len(played)
        echo = self.echo_of(played, n)
        spoken = np.zeros(n)
        if user is not None:
            wet = self.user_at_mic(user)
            spoken[: min(n, len(wet))] = wet[:n]
        c = self.conditions
        noise = _floor(c, n, 0) + (PinkNoise(c.fan_dbfs, c.seed).block(n) if c.fan_dbfs is not None else 0.0)
        return Mic(to_int16(echo + spoken + noise), echo, spoken, noise)


def _floor(conditions: Conditions, n: int, at: int) -> Floats:
    """The microphone's white noise floor for samples at..at+n (the same for any framing)."""
    rms = FULL_SCALE * 10 ** (conditions.floor_dbfs / 20)
    block, first = divmod(at, RATE_HZ)
    out = []
    while sum(len(p) for p in out) < n + first:
        out.append(np.random.default_rng((conditions.seed, 7, block)).normal(0.0, rms, RATE_HZ))
        block += 1
    return np.concatenate(out)[first : first + n]


def _convolve(x: Floats, h: Floats) -> Floats:
    """`x` through `h`, as long as `x`."""
    from scipy import signal

    return np.asarray(signal.fftconvolve(x, h)[: len(x)], dtype=np.float64)


SINC_HALF = 16  # samples either side of a fractional position (a Hann-windowed sinc)


def _interp(x: Floats, positions: Floats) -> Floats:
    """`x` at fractional `positions` (zero outside), band-limited: a drifting clock is an
    analogue resampling, and linear interpolation would add a low-pass that sweeps with the
    fraction, an echo path no canceller can follow (it held speexdsp near 37 dB under drift)."""
    taps = np.arange(-SINC_HALF + 1, SINC_HALF + 1)
    padded = np.concatenate([np.zeros(SINC_HALF), x, np.zeros(SINC_HALF + 1)])
    out = np.empty(len(positions))
    for a in range(0, len(positions), 1 << 15):  # in pieces: (pieces x taps) float64s at a time
        at = positions[a : a + (1 << 15)]
        whole = np.floor(at)
        offset = taps[None, :] - (at - whole)[:, None]
        weights = np.sinc(offset) * (0.5 + 0.5 * np.cos(np.pi * offset / SINC_HALF))
        index = np.clip(whole.astype(np.intp) + SINC_HALF, 0, len(padded) - SINC_HALF - 1)
        values = np.sum(padded[index[:, None] + taps[None, :]] * weights, axis=1)
        out[a : a + len(at)] = np.where((at >= 0) & (at <= len(x) - 1), values, 0.0)
    return out


class ClosedLoopMic:
    """The microphone of an offline session: `user` (16 kHz, placed in session time)
    through the room, plus the echo of what `output` (the session's own rendered
    output) has played, in 10 ms chunks. Latency must be at least two frames: the echo of
    a chunk is then made of samples the session has already played when it is asked for."""

    def __init__(self, room: Room, user: Samples, output: OutputTrack, seconds: float) -> None:
        c = room.conditions
        if c.latency_ms < 20:
            raise ValueError(f"latency {c.latency_ms} ms: the closed loop needs at least 20 ms")
        self.room = room
        self.output = output
        self.n = round(seconds * RATE_HZ)
        wet = room.user_at_mic(user)
        self.user = np.zeros(self.n)
        self.user[: min(self.n, len(wet))] = wet[: self.n]
        self._fan = PinkNoise(c.fan_dbfs, c.seed) if c.fan_dbfs is not None else None
        self.echo = np.zeros(self.n)  # kept: tests look at what the echo was

    def chunks(self) -> Iterator[Chunk]:
        h_reversed = self.room.h_speaker[::-1].copy()
        taps = len(h_reversed)
        for a in range(0, self.n, FRAME_SAMPLES):
            b = min(self.n, a + FRAME_SAMPLES)
            pos = self.room._echo_positions(a, b)
            lo, hi = int(np.floor(pos[0])) - 1, int(np.ceil(pos[-1])) + 1
            if hi >= 0:
                start = lo - taps + 1
                played = np.zeros(hi + 1 - start)
                known = self.output.samples(max(0, start), hi + 1)
                played[max(0, -start) : max(0, -start) + len(known)] = known
                # 'valid': output j is the echo at played sample lo + j, with its whole history.
                windows = np.lib.stride_tricks.sliding_window_view(
                    speaker(played, self.room.conditions.drive), taps
                )
                conv = (windows @ h_reversed) * self.room.echo_gain  # (numpy's 'valid' convolve is quadratic)
                self.echo[a:b] = np.interp(pos, np.arange(lo, lo + len(conv), dtype=np.float64), conv,
                                           left=0.0, right=0.0)  # fmt: skip
            noise = _floor(self.room.conditions, b - a, a) + (
                self._fan.block(b - a) if self._fan is not None else 0.0
            )
            yield Chunk(to_int16(self.echo[a:b] + self.user[a:b] + noise), b / RATE_HZ)


# -- live: the player's blocks as the reference, aligned by PortAudio's clocks -------------

T0_S = 1000.0  # PortAudio's clock when the session starts
OUTPUT_AHEAD_S = 0.2  # the player hands a block to the device this long before it sounds


def live_echo(
    geometry: Geometry,
    played: Samples,
    conditions: Conditions,
    *,
    gap: tuple[int, int] | None = None,
    dac_error_s: float = 0.0,
    stamps: bool = True,
    hears_echo: bool = True,
    dac_drift_ppm: float = 0.0,
) -> tuple[Samples, Samples, LiveEcho]:
    """`played` (16 kHz) through the player's tap and the room into LiveEcho, as
    the live path runs: blocks of 1024 frames stamped with their DAC time, 30 ms chunks of
    capture stamped with their ADC time (both with 2 ms of jitter). `gap` (frame, frames):
    the device underran there and played that much silence, which the player counted (its
    frames skip). `dac_error_s`: the DAC times are off by that much. `dac_drift_ppm`: the DAC
    times run that much fast against the capture's (PortAudio's, for a device on its own
    clock; the room's `drift_ppm` is what the echo does). Returns the microphone,
    what the canceller made of it, and the LiveEcho."""
    block = 1024
    sounding = played.copy()
    if gap is not None:
        at, length = gap
        sounding = np.concatenate([played[:at], np.zeros(length, np.int16), played[at:]])
    mic = Room(geometry, conditions, active_power(played)).mic(sounding, None)
    heard = mic.samples if hears_echo else np.zeros_like(mic.samples)
    jitter = np.random.default_rng(7).uniform(
        -0.002, 0.002, len(sounding) // 480 + len(sounding) // block + 2
    )
    echo = LiveEcho(SpeexDspCanceller())
    blocks = []  # (frame on the device's timeline, samples)
    source = 0
    frame = 0
    while source < len(played):
        if gap is not None and frame <= gap[0] < frame + block:  # the underrun, at a block's edge
            frame += gap[1]
        blocks.append((frame, played[source : source + block]))
        source += block
        frame += block
    out, handed = [], 0
    for k, start in enumerate(range(0, len(heard) - 480 + 1, 480)):
        adc_s = T0_S + start / RATE_HZ + jitter[k]
        while handed < len(blocks) and T0_S + blocks[handed][0] / RATE_HZ < adc_s + OUTPUT_AHEAD_S:
            at, samples = blocks[handed]
            dac_s = T0_S + at / (RATE_HZ * (1 + dac_drift_ppm * 1e-6)) + jitter[-1 - handed] + dac_error_s
            echo.played(dac_s if stamps else 0.0, dac_s + 0.5, samples, RATE_HZ, at)
            handed += 1
        chunk = Chunk(
            heard[start : start + 480], (start + 480) / RATE_HZ, adc_s if stamps else 0.0, adc_s + 0.5
        )
        out.append(echo.clean(chunk).samples)
    return heard, np.concatenate(out), echo
