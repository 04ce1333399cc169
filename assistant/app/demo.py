"""`make demo`: the whole pipeline, hands-free, with no microphone and no speaker.

A listener (the bundled voice, a little slower) says start, pause, resume, slower, status and
stop; its speech is written to demo/listener.wav and fed to the real recogniser
as the microphone; the dialogue runs on the virtual clock; the coach's voice is
rendered to demo/session.wav, both voices mixed into demo/conversation.wav, and
the timeline printed as a transcript.

Like a person, the listener waits for the coach to finish a sentence before
speaking (except to say "pause" or "stop"): each command goes into the first
quiet gap after its moment, found by running the session ahead on the virtual
clock with the commands placed so far. Cue lengths vary a little between
syntheses, so fixed times could land on a cue.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.coach.dialogue import Dialogue, simulate
from assistant.coach.events import Say
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Routine
from assistant.hear.listen import TAIL_S
from assistant.pcm import Audio, resample
from assistant.speak.cache import CueCache
from assistant.speak.tts import SpeechSettings, Synthesizer
from assistant.speak.wav import write_wav

log = logging.getLogger(__name__)

# (moment in seconds, what the listener says)
LINES = (
    (2.0, "start back stretch"),
    (45.0, "pause"),
    (52.0, "resume"),
    (75.0, "slower"),
    (95.0, "how many more"),
    (115.0, "stop"),
)
MARGIN_S = 0.4  # quiet kept on either side of a command


@dataclass(frozen=True)
class Line:
    t: float
    text: str
    audio: Audio


def _spoken(
    dialogue: Dialogue, lines: list[tuple[float, str]], intents: IntentSet
) -> list[tuple[float, float]]:
    """(start, end) of the coach's speech with the listener's lines said at their times."""
    commands = [(t, intent) for t, text in lines if (intent := intents.match(text)) is not None]
    return [(a.t, a.t + a.duration_s) for a in simulate(dialogue, commands) if isinstance(a, Say)]


LISTENER = SpeechSettings(speech_rate=0.9, varied=False)  # a little slower than the coach; the
# same rendering every time, so the demo is the same every time


def plan_lines(
    routine: Routine, intents: IntentSet, coach: CueCache, listener: CueCache, verbosity: str
) -> list[Line]:
    """Each line at the first moment, at or after its own, where it fits between cues."""
    placed: list[tuple[float, str]] = []
    lines: list[Line] = []
    for moment, text in LINES:
        audio = listener.get(text)
        length = audio.duration_s + 0.5  # the recogniser's endpoint comes a little later
        t = max(moment, placed[-1][0] + 3.0 if placed else 0.0)
        if not intents.is_barge_in(text) and placed:
            dialogue = Dialogue(routine, intents, verbosity, speech_s=coach.duration_s)
            spans = _spoken(dialogue, placed, intents)
            while any(s < t + length + MARGIN_S and t - MARGIN_S - TAIL_S < e for s, e in spans):
                t = min(e for s, e in spans if e > t - MARGIN_S - TAIL_S) + MARGIN_S + TAIL_S
        placed.append((t + length, text))  # the command fires about when it has been said
        lines.append(Line(t, text, audio))
    return lines


def listener_audio(lines: list[Line], rate_hz: int, tail_s: float = 20.0) -> Audio:
    end = max(line.t + line.audio.duration_s for line in lines) + tail_s
    out = np.zeros(math.ceil(end * rate_hz), np.int16)
    for line in lines:
        clip = resample(line.audio, rate_hz).samples
        start = round(line.t * rate_hz)
        out[start : start + len(clip)] = clip
    noise = np.random.default_rng(0).normal(0.0, 20.0, len(out))  # a quiet room, not digital silence
    return Audio(np.clip(out + noise, -32768, 32767).astype(np.int16), rate_hz)


def mix(a: Audio, b: Audio) -> Audio:
    """Both voices in one file, to listen to the conversation."""
    b = resample(b, a.rate_hz)
    n = max(len(a.samples), len(b.samples))
    out = np.zeros(n, np.int32)
    out[: len(a.samples)] += a.samples
    out[: len(b.samples)] += b.samples
    return Audio(np.clip(out, -32768, 32767).astype(np.int16), a.rate_hz)


def write_listener(
    folder: Path, routine: Routine, intents: IntentSet, coach: CueCache, verbosity: str
) -> Path:
    listener = CueCache(Synthesizer(coach.synth.voice, LISTENER))
    lines = plan_lines(routine, intents, coach, listener, verbosity)
    for line in lines:
        log.info("listener says %r at %.1f s", line.text, line.t)
    path = folder / "listener.wav"
    write_wav(path, listener_audio(lines, listener.synth.rate_hz))
    return path
