"""Which recogniser listens: `stt.engine` is auto, vosk or pocketsphinx.

auto          vosk when an English vosk model is installed, else pocketsphinx: vosk hears
              other voices, noise and real people better and fires fewer false intents,
              at the cost of a slower answer and memory (README, "Recognisers"; bench/)
vosk          Kaldi with a runtime grammar plus [unk]           (vosk_engine.py)
pocketsphinx  the wheel's English model, an FSG plus a garbage loop (sphinx_engine.py)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from assistant.hear.recognizer import Recognizer
from assistant.hear.sphinx_engine import SphinxRecognizer

log = logging.getLogger(__name__)

ENGINES = ("auto", "vosk", "pocketsphinx")


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
    return SphinxRecognizer(phrases)
