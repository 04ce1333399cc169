"""Real people: the Speech Commands subset in ../shared/data/speech-commands, for the
recogniser tests and the bench (tests/hear/test_real_speech.py, bench/real.py).

633 one-second clips, 16 kHz mono: 116 of "stop" by 47 speakers, 497 of other words
(each must fire nothing) and 20 of background noise. Files are `WORD-SPEAKER-N.wav`
and `noise-none-N.wav`; `manifest.json` lists them (see the README there).

The split, fixed before anything was tuned on this set: a speaker is HELD out when
sha256 of their id, as an integer, is odd; a noise clip likewise by its file name. All
of a speaker's clips are on one side. Thresholds, distractor words and settings are
tuned on TUNE only; HELD is the figure to quote.

`hear(recognizer, lang, clip)` runs one clip the way a session hears it: through the
project's `Listener` (its phrases, early endpointing, intent matching) on a fresh
recogniser, with the clip's own room tone before and after, fed in 30 ms chunks.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.coach.events import Say
from assistant.coach.intents import IntentSet
from assistant.coach.track import SpeechTrack
from assistant.hear.capture import Chunk
from assistant.hear.listen import Command, Listener
from assistant.hear.recognizer import Recognizer
from assistant.pcm import RATE_HZ, Floats, resample
from assistant.speak.wav import read_wav
from tests.kit import speech

ENV = "BACKSTRETCH_TEST_SPEECH_COMMANDS"
DATA: Path = Path(os.environ.get(ENV) or Path(__file__).resolve().parents[3] / "shared/data/speech-commands")
if not (DATA / "manifest.json").is_file():  # a worktree under /work/wt/NAME: ../../shared
    DATA = Path(__file__).resolve().parents[4] / "shared/data/speech-commands"

LEAD_S = 0.5  # room tone before the clip
TRAIL_S = 1.0  # and after: the endpointer and vosk's rules need it to end the utterance
# The noise condition: a fan. Of the set's 20 noise clips this one is the most fan-like
# (steady: 0.5 dB spread of its 100 ms levels; 96 % of its power below 1 kHz), chosen by
# its spectrum alone, before any recognition was run on it. It runs from NOISE_LEAD_S
# before the clip to the end (the fan was on before the user spoke), tiled, at SNR_DB
# below the clip's active speech level.
FAN = "noise-none-1250.wav"
SNR_DB = 10.0
NOISE_LEAD_S = 1.5


@dataclass(frozen=True)
class Clip:
    """One recording: the word said, who said it (None for noise) and its expected intent."""

    file: str
    word: str
    speaker: str | None
    intent: str | None  # "stop" for the stop clips, None for everything that must fire nothing

    @property
    def held(self) -> bool:
        """On the held-out side of the split (decided by speaker, or by file for noise)."""
        return held_out(self.speaker if self.speaker is not None else self.file)

    @property
    def is_noise(self) -> bool:
        return self.speaker is None


def held_out(key: str) -> bool:
    """The split: HELD when sha256(key) is odd. Fixed before any tuning; never change it."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 2 == 1


def available() -> bool:
    return (DATA / "manifest.json").is_file()


@functools.cache
def clips() -> tuple[Clip, ...]:
    """Every clip of the set, in manifest order."""
    entries = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
    return tuple(Clip(e["file"], e["word"], e["speaker"], e["intent"]) for e in entries)


def split(held: bool) -> tuple[Clip, ...]:
    return tuple(c for c in clips() if c.held == held)


@functools.cache
def samples(file: str) -> speech.Samples:
    """A clip's samples at the recogniser's rate."""
    out = resample(read_wav(DATA / file), RATE_HZ).samples
    out.setflags(write=False)
    return out


def room_tone(clip: speech.Samples, seconds: float, seed: int) -> Floats:
    """`seconds` of noise like the clip's own background: Gaussian noise shaped to the mean
    spectrum of its quietest quarter of 32 ms frames. Each clip was recorded in its own
    room on its own microphone; padded with anything else, the step in the noise where
    the clip begins sounds like speech to an endpointer, and the whole second is one
    utterance."""
    frame = 512
    x = clip.astype(np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[:: frame // 2]
    power = (frames**2).mean(axis=1)
    quiet = frames[np.argsort(power)[: max(2, len(frames) // 4)]]
    psd = np.mean(np.abs(np.fft.rfft(quiet * np.hanning(frame), axis=1)) ** 2, axis=0)
    # The noise filter: zero-phase, from the spectrum's square root, windowed to `frame` taps.
    taps = np.fft.fftshift(np.fft.irfft(np.sqrt(psd))) * np.hanning(frame)
    n = round(seconds * RATE_HZ)
    white = np.random.default_rng(seed).normal(0.0, 1.0, n + frame)
    out = np.convolve(white, taps, mode="valid")[:n]
    target = float(np.mean(quiet**2))
    return out * np.sqrt(target / max(float(np.mean(out**2)), 1e-12))


def scene(clip: Clip, snr_db: float | None = None) -> speech.Samples:
    """What the microphone hears: the clip with its room's tone before and after; with
    `snr_db`, also the fan, from NOISE_LEAD_S before the clip, at that SNR against the
    clip's active speech level."""
    seed = int(hashlib.sha256(clip.file.encode()).hexdigest()[:8], 16)
    voice = samples(clip.file)
    lead = LEAD_S if snr_db is None else NOISE_LEAD_S
    mic = np.concatenate(
        [room_tone(voice, lead, seed), voice.astype(np.float64), room_tone(voice, TRAIL_S, seed + 1)]
    )
    # A little white noise throughout, as every microphone has (digital silence upsets
    # the decoders' front ends).
    mic = speech.add_white_noise(np.clip(np.rint(mic), -32768, 32767).astype(np.int16), 4.0**2, seed + 2)
    if snr_db is None:
        return mic
    mic = mic.astype(np.float64)
    fan = samples(FAN).astype(np.float64)
    fan = np.resize(fan - fan.mean(), len(mic))
    level = speech.active_power(voice)
    fan *= np.sqrt(level / 10 ** (snr_db / 10) / max(float(np.mean(fan**2)), 1e-9))
    return np.clip(np.rint(mic + fan), -32768, 32767).astype(np.int16)


def commands(
    recognizer: Recognizer, lang: IntentSet, audio: speech.Samples, coach: SpeechTrack[Say] | None = None
) -> list[Command]:
    """The commands a session's listener takes from `audio`, fed in 30 ms chunks to
    `recognizer` (fresh, or reset) and flushed; with `coach`, what the coach said when
    (its self-hearing gate and barge-in decoding)."""
    listener = Listener(recognizer, lang, coach)
    step = round(speech.CHUNK_S * RATE_HZ)
    out = []
    for i in range(0, len(audio), step):
        piece = audio[i : i + step]
        out += listener.feed(Chunk(piece, (i + len(piece)) / RATE_HZ))
    return out + listener.flush(len(audio) / RATE_HZ)


def hear(recognizer: Recognizer, lang: IntentSet, audio: speech.Samples) -> tuple[str, ...]:
    """The intents of `commands`."""
    return tuple(m.name for c in commands(recognizer, lang, audio) if (m := lang.match(c.text)) is not None)


@dataclass(frozen=True)
class Heard:
    clip: Clip
    intents: tuple[str, ...]  # what fired

    @property
    def right(self) -> bool:
        """A stop clip fired exactly stop; any other clip fired nothing."""
        return self.intents == ((self.clip.intent,) if self.clip.intent else ())


def run(
    make: Callable[[], Recognizer], lang: IntentSet, chosen: Sequence[Clip], snr_db: float | None = None
) -> list[Heard]:
    """Each clip through `hear` with a fresh recogniser from `make`."""
    return [Heard(c, hear(make(), lang, scene(c, snr_db))) for c in chosen]


@dataclass(frozen=True)
class Figures:
    """The figures of one engine on one side of the split."""

    stop_heard: int
    stops: int
    false: int  # word clips (not noise) that fired any intent
    words: int
    noise_false: int
    noises: int
    speakers_all_heard: int  # speakers of "stop" every one of whose stop clips was heard
    stop_speakers: int
    stop_as_start: int  # stop clips heard as "start" (a whole session begun)
    fired: dict[str, dict[str, int]]  # word -> intent -> clips

    @property
    def recall(self) -> float:
        return self.stop_heard / self.stops if self.stops else 1.0

    @property
    def false_rate(self) -> float:
        return self.false / self.words if self.words else 0.0


def figures(heard: Sequence[Heard]) -> Figures:
    stops = [h for h in heard if h.clip.intent == "stop"]
    words = [h for h in heard if h.clip.intent is None and not h.clip.is_noise]
    noises = [h for h in heard if h.clip.is_noise]
    by_speaker: dict[str, list[bool]] = {}
    for h in stops:
        by_speaker.setdefault(h.clip.speaker or "", []).append(h.right)
    fired: dict[str, dict[str, int]] = {}
    for h in words + noises:
        for name in set(h.intents):
            row = fired.setdefault(h.clip.word, {})
            row[name] = row.get(name, 0) + 1
    return Figures(
        stop_heard=sum(h.right for h in stops),
        stops=len(stops),
        false=sum(bool(h.intents) for h in words),
        words=len(words),
        noise_false=sum(bool(h.intents) for h in noises),
        noises=len(noises),
        speakers_all_heard=sum(all(v) for v in by_speaker.values()),
        stop_speakers=len(by_speaker),
        stop_as_start=sum("start" in h.intents for h in stops),
        fired=fired,
    )


ENGINES = ("vosk", "pocketsphinx")


def maker(engine: str, lang: IntentSet, vosk_model: Path | None = None) -> Callable[[], Recognizer] | None:
    """Fresh recognisers of `engine` with the product's settings (one vosk model, at
    `vosk_model` or the test model's place, loaded and shared); None for vosk when the
    English model has not been fetched."""
    if engine == "vosk":
        from assistant.hear.vosk_engine import VoskModel, VoskRecognizer
        from tests.kit.models import english_model

        path = vosk_model or english_model()
        if path is None:
            return None
        model = VoskModel(path)
        return lambda: VoskRecognizer(model, lang.phrases())
    from assistant.hear.sphinx_engine import SphinxRecognizer

    # One decoder, restarted for each clip (as fresh as a new one, but loading the model
    # and building a grammar of 2,000 phrases per clip took minutes and gigabytes).
    sphinx = SphinxRecognizer(lang.phrases())

    def fresh() -> Recognizer:
        sphinx.restart()
        return sphinx

    return fresh


def decode(
    engine: str, chosen: Sequence[Clip], snr_db: float | None = None, vosk_model: Path | None = None
) -> list[Heard]:
    """`run` for one engine in a process of its own (multiprocessing: everything picklable).
    The parent passes `vosk_model`: a test's private XDG_CACHE_HOME hides the default one."""
    from assistant.coach import intents

    lang = intents.load()
    make = maker(engine, lang, vosk_model)
    if make is None:
        raise RuntimeError(f"{engine}: the English model is not fetched (`make vosk-model`)")
    return run(make, lang, chosen, snr_db)
