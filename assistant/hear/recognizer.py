"""Speech to text for commands: one interface, two engines, chosen by `stt.engine`.

A `Recognizer` is fed 16 kHz mono int16 audio in short chunks, each stamped
with the audio time at its end, finds the end of each utterance itself
(endpointing) and returns one `Hypothesis` per utterance. Only a closed set of
phrases can come out: the intents' phrase list, with a rejection path so that
speech which is no command gives `text == ""`.
The engines are in sphinx_engine.py and vosk_engine.py; engines.py chooses one.

Both may put distractor words in their grammars (`distractors()`): common English
words that are no command, so that a short real word like "right" or "on" decodes as
itself, a rejection, rather than as the nearest command ("wait", "go on").
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from assistant.coach.phrasing import Fillers

log = logging.getLogger(__name__)

RATE_HZ = 16_000  # what every recogniser takes


Complete = Callable[[str, float, float], bool]  # (phrase, speech start, speech end) -> end it now?
Speaking = Callable[[float, float], bool]  # (speech start, speech end), audio s -> was the coach speaking?
# (speech start, speech end), audio s -> could nothing said there count? (then not decoded)
Ignored = Callable[[float, float], bool]


@dataclass(frozen=True)
class Hypothesis:
    """One utterance: what was recognised ("" when rejected) and when, in audio seconds."""

    text: str
    speech_start_s: float  # where the utterance began in the audio
    speech_end_s: float  # where it ended
    final_s: float  # the audio time at which the result was known (endpoint + decode)
    undecoded: bool = False  # not decoded: nothing said there could count (see `Ignored`)
    # Other phrases the recogniser found nearly as likely, best first (vosk's next best paths;
    # listen.Listener: a command that starts something gives way to a closer "stop").
    alternatives: tuple[str, ...] = ()


@functools.cache
def distractors() -> tuple[str, ...]:
    """The bundled distractor words (assistant/data/distractors.yaml), most frequent first."""
    import yaml

    path = importlib.resources.files("assistant") / "data" / "distractors.yaml"
    return tuple(yaml.safe_load(path.read_text(encoding="utf-8"))["en"].split())


class Recognizer(Protocol):
    """Streaming command recognition with its own endpointing."""

    name: str  # "pocketsphinx" or "vosk", for logs and the timeline

    def set_phrases(
        self,
        phrases: Sequence[str],
        complete: Complete | None = None,
        fillers: Fillers | None = None,
        favoured: Collection[str] = (),
    ) -> None:
        """Restrict recognition to `phrases` (lower case words); rejection stays on.
        `complete(phrase, speech_start_s, speech_end_s)` says whether a phrase heard there
        may end its utterance at once, before the usual trailing silence (see listen.py).
        `fillers` may be heard before and after a phrase ("okay, stop please"): the
        hypothesis is then the phrase alone. `favoured` phrases (of `phrases`) get a
        higher prior where the engine has one to give (vosk; pocketsphinx ignores it)."""

    def knows(self, word: str) -> bool:
        """Whether `word` (lower case) is in the recogniser's vocabulary: a phrase with a word
        it lacks cannot be heard (the wake word is checked with this)."""

    def feed(self, samples: npt.NDArray[np.int16], end_s: float) -> list[Hypothesis]:
        """Take the next chunk (16 kHz mono) ending at audio time `end_s`; return the
        utterances that ended in it, rejected ones with text ""."""

    def flush(self, end_s: float) -> list[Hypothesis]:
        """End of input: finish any utterance in progress."""

    def reset(self) -> None:
        """Drop any utterance in progress (the microphone was gated)."""
