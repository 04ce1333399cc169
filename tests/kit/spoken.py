"""The new wordings spoken (issue 12 item 4): recall on wordings nobody wrote into the
grammar, and false intents on speech that is no command, per recogniser.

The wordings are tests/kit/wordings.py's (DEV and HELD_OUT apart: HELD_OUT is the
figure); the voices are the bundled piper voice and four espeak-ng voices (a formant
synthesiser, far from the models' training speech); speech that is no command is the
routine's text and chatter, in the piper voice and in espeak-ng's en-us. Each clip is
decoded alone, as a microphone in a quiet room hears it (`speech.in_room`), by:

- `pocketsphinx`: its closed grammar of the intents' phrases;
- `vosk grammar`: vosk with the runtime grammar of the phrases plus [unk];
- `vosk free-form`: vosk on the model's own language model (no grammar), the text then
  matched to an intent like any typed text: the alternative to a grammar that issue 12
  asks to compare.

A wording is right when its intent, and only it, fires; a sentence that is no command
is a false intent when any intent fires.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.coach.intents import IntentSet
from assistant.hear.listen import Listener
from assistant.hear.recognizer import Recognizer
from assistant.pcm import RATE_HZ
from tests.kit import speech
from tests.kit.corpus import CHATTER, ESPEAK_VOICES, ROUTINE_TEXT

DECODERS = ("pocketsphinx", "vosk grammar", "vosk free-form")
VOICES = ("piper", *(f"espeak {v}" for v in ESPEAK_VOICES))
NO_COMMAND = ROUTINE_TEXT + CHATTER
NO_COMMAND_VOICES = ("piper", "espeak en-us")

Decode = Callable[[speech.Samples], list[str]]  # a clip -> the texts heard in it


def spoken(text: str, voice: str, varied: bool = True) -> speech.Samples:
    """`text` in `voice` ("piper" or "espeak <voice>"), alone in a quiet room; `varied`
    False renders piper's deterministic prosody (for tests: the same clip every run)."""
    if voice == "piper":
        audio = speech.piper(text, varied=varied)
    else:
        audio = speech.espeak(text, voice.removeprefix("espeak "))
    return speech.in_room(audio, seed=len(text))


def _grammar(recognizer: Recognizer, lang: IntentSet) -> Decode:
    Listener(recognizer, lang)  # the phrases as a session sets them

    def decode(clip: speech.Samples) -> list[str]:
        recognizer.reset()
        return [h.text for h in speech.run_stream(recognizer, clip) if h.text]

    return decode


def _free_form(model: Any) -> Decode:
    import vosk

    def decode(clip: speech.Samples) -> list[str]:
        rec = vosk.KaldiRecognizer(model.handle, RATE_HZ)
        texts: list[str] = []
        step = round(speech.CHUNK_S * RATE_HZ)
        for i in range(0, len(clip), step):
            if rec.AcceptWaveform(clip[i : i + step].tobytes()):
                texts.append(json.loads(rec.Result()).get("text", ""))
        texts.append(json.loads(rec.FinalResult()).get("text", ""))
        return [t for t in texts if t.strip()]

    return decode


def decoder(name: str, lang: IntentSet, vosk_model: Path | None) -> Decode:
    """The decoder `name` of DECODERS; the vosk ones need `vosk_model`."""
    if name == "pocketsphinx":
        from assistant.hear.sphinx_engine import SphinxRecognizer

        return _grammar(SphinxRecognizer(lang.phrases()), lang)
    if vosk_model is None:
        raise ValueError(f"{name} needs a vosk model")
    from assistant.hear.vosk_engine import VoskModel, VoskRecognizer

    model = VoskModel(vosk_model, free_form=name == "vosk free-form")
    if name == "vosk grammar":
        return _grammar(VoskRecognizer(model, lang.phrases()), lang)
    if name == "vosk free-form":
        return _free_form(model)
    raise ValueError(f"unknown decoder {name!r}")


@dataclass(frozen=True)
class Outcome:
    voice: str
    text: str
    expected: str | None  # the intent, or None for speech that is no command
    heard: tuple[str, ...]  # the texts decoded
    fired: tuple[str, ...]  # the intents they match

    @property
    def right(self) -> bool:
        if self.expected is None:
            return not self.fired
        return set(self.fired) == {self.expected}


def run(
    decode: Decode,
    lang: IntentSet,
    items: Iterable[tuple[str | None, str]],
    voices: Sequence[str],
    varied: bool = True,
) -> list[Outcome]:
    """Every (intent, text) of `items` in every voice, decoded."""
    out = []
    for voice in voices:
        for expected, text in items:
            heard = tuple(decode(spoken(text, voice, varied)))
            fired = tuple(m.name for h in heard if (m := lang.match(h)) is not None)
            out.append(Outcome(voice, text, expected, heard, fired))
    return out


def share(outcomes: Sequence[Outcome]) -> tuple[int, int]:
    """(right, total)."""
    return sum(o.right for o in outcomes), len(outcomes)
