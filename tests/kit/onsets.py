"""Finding where known clips start in a recording, by cross-correlation."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.pcm import Audio, resample


def find_samples(
    samples: npt.NDArray[np.int16], probe: npt.NDArray[np.int16], around: int, window: int
) -> tuple[int, float]:
    """Where `probe` starts in `samples`, within `window` samples of `around`: (sample,
    normalised correlation; 0.0 when the recording is too short there)."""
    lo, hi = max(0, around - window), min(len(samples), around + window + len(probe))
    segment, wanted = samples[lo:hi].astype(np.float64), probe.astype(np.float64)
    if len(segment) < len(wanted) or not len(wanted):
        return around, 0.0
    size = 1 << (len(segment) + len(wanted) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(segment, size) * np.conj(np.fft.rfft(wanted, size)), size)
    # Each window's energy from a running sum (a convolution would be quadratic in its length).
    energy = np.concatenate(([0.0], np.cumsum(segment**2)))
    norms = np.sqrt(np.maximum(energy[len(wanted) :] - energy[: -len(wanted)], 0.0))
    wanted_norm = float(np.linalg.norm(wanted))
    # A window with next to no energy (digital silence) matches nothing.
    score = np.where(
        norms > 0.01 * wanted_norm, corr[: len(norms)] / np.maximum(norms * wanted_norm, 1e-9), 0.0
    )
    best = int(np.argmax(score))
    return lo + best, float(score[best])


def find_clip(recording: Audio, clip: Audio, around_s: float, window_s: float = 1.0) -> tuple[float, float]:
    """Where `clip` starts in `recording` near `around_s`: (seconds, normalised correlation)."""
    clip = resample(clip, recording.rate_hz)
    rate = recording.rate_hz
    probe = clip.samples[: min(len(clip.samples), rate)]  # its first second
    at, score = find_samples(recording.samples, probe, round(around_s * rate), round(window_s * rate))
    return (at / rate, score) if score > 0.0 else (float("nan"), 0.0)


# The player's log lines (speak/playback.py): an underrun it measured and stepped over, and
# (at -v) a clip decided after its slot, played at once.
UNDERRUN = re.compile(r"output underrun at ([\d.]+) s: the device (inserted|dropped) (\d+) ms")
LATE = re.compile(r"clip \d+ ms late at ([\d.]+) s")


def underruns(log: str) -> list[tuple[float, float]]:
    """(session s, step s) of each underrun the player logged; a step back is negative."""
    return [
        (float(m[1]), (1 if m[2] == "inserted" else -1) * int(m[3]) / 1000) for m in UNDERRUN.finditer(log)
    ]


def cue_errors(
    recording: Audio, events: list[dict[str, Any]], clip: Callable[[str], Audio], log: str = ""
) -> tuple[float, list[float], list[float]]:
    """Where each `say` of a timeline's `events` sounds in `recording`, against its `t`: the offset of the
    session in the recording (where the first cue is: anywhere, for the recorder and the
    session start apart), and the session time and error (less that offset) of every cue.
    Left out: cues due inside an underrun `log` reports (played right after it, late by
    design), cues decided too late for their slot (`log` at -v says which), and cues cut
    within their first second."""
    cuts = [float(e["t"]) for e in events if e["event"] == "cut"]
    says = [e for e in events if e["event"] == "say"]
    gaps = underruns(log)
    late = {round(float(m[1]), 2) for m in LATE.finditer(log)}
    first_at, score = find_clip(
        recording, clip(says[0]["text"]), recording.duration_s / 2, recording.duration_s
    )
    if score < 0.8:
        raise AssertionError(f"the first cue {says[0]['text']!r} is not in the recording (best {score:.2f})")
    offset = first_at - float(says[0]["t"])
    times, errors = [], []
    for event in says:
        t = float(event["t"])
        if any(u - 0.2 < t < u + step + 0.2 for u, step in gaps) or any(t < c < t + 1.0 for c in cuts):
            continue
        if round(t, 2) in late:
            continue
        at, score = find_clip(recording, clip(event["text"]), t + offset, window_s=0.5)
        if score < 0.8:
            at, score = find_clip(recording, clip(event["text"]), t + offset, window_s=5.0)
            raise AssertionError(
                f"{event['text']!r} at {t:.2f} s is not within 0.5 s of its place; within 5 s, the best "
                f"match is {(at - offset - t) * 1000:.0f} ms off (score {score:.2f}); errors so far (ms): "
                f"{[round(e * 1000, 1) for e in errors]}"
            )
        times.append(t)
        errors.append(at - offset - t)
    return offset, times, errors
