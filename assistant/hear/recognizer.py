"""Speech to text for commands: one interface, two engines, chosen by `stt.engine`.

A `Recognizer` is fed 16 kHz mono int16 audio in short chunks, each stamped
with the audio time at its end, finds the end of each utterance itself
(endpointing) and returns one `Hypothesis` per utterance. Only a closed set of
phrases can come out: the intents' phrase list, with a rejection path so that
speech which is no command gives `text == ""`.

    auto          vosk when an English vosk model is installed, else pocketsphinx
    vosk          Kaldi with a runtime grammar plus [unk]   (stt_vosk.py)
    pocketsphinx  the wheel's English model, JSGF/FSG plus a garbage loop (stt_sphinx.py)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

RATE_HZ = 16_000  # what every recogniser takes
ENGINES = ("auto", "vosk", "pocketsphinx")


Complete = Callable[[str, float, float], bool]  # (phrase, speech start, speech end) -> end it now?


@dataclass(frozen=True)
class Hypothesis:
    """One utterance: what was recognised ("" when rejected) and when, in audio seconds."""

    text: str
    speech_start_s: float  # where the utterance began in the audio
    speech_end_s: float  # where it ended
    final_s: float  # the audio time at which the result was known (endpoint + decode)


class Recognizer(Protocol):
    """Streaming command recognition with its own endpointing."""

    name: str  # "pocketsphinx" or "vosk", for logs and the timeline

    def set_phrases(self, phrases: Sequence[str], complete: Complete | None = None) -> None:
        """Restrict recognition to `phrases` (lower case words); rejection stays on.
        `complete(phrase, speech_start_s, speech_end_s)` says whether a phrase heard there
        may end its utterance at once, before the usual trailing silence (see listen.py)."""

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


def open_recognizer(engine: str, phrases: Sequence[str], vosk_model: str | None = None) -> Recognizer:
    """The recogniser `stt.engine` asks for; the one place engines are created.

    auto takes vosk when an English vosk model is installed, else pocketsphinx, and
    says so in the log with how to upgrade.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}")
    if engine in ("auto", "vosk"):
        from assistant.errors import ModelError
        from assistant.hear.vosk_engine import VoskModel, VoskRecognizer, find_model

        path = find_model(vosk_model)
        if path is not None:
            log.info("speech recognition: vosk, model %s", path)
            return VoskRecognizer(VoskModel(path), phrases)
        if engine == "vosk":
            raise ModelError(
                "stt.engine is vosk but no English vosk model is installed; run "
                "`backstretch models download`, or set stt.vosk_model or $BACKSTRETCH_VOSK_MODEL"
            )
        log.warning(
            "speech recognition: pocketsphinx (no vosk model found; `backstretch models download` "
            "installs vosk-model-small-en-us, which recognises better)"
        )
    else:
        log.info("speech recognition: pocketsphinx")
    from assistant.hear.sphinx_engine import SphinxRecognizer

    return SphinxRecognizer(phrases)
