"""8. New wordings: how the grammar generalises, as text and spoken, per recogniser.

The wordings of tests/kit/wordings.py: 82 ways a person lying down might give the 12
commands that intents/en.yaml never listed, written before the grammar was made to
generalise; DEV (42) may be looked at while designing templates, HELD_OUT (40) never
is, and its figure is the headline. As text: the wording matched like typed text. Spoken
(tests/kit/spoken.py): each wording alone in a quiet room, in the bundled piper voice
and in four espeak-ng voices, decoded by pocketsphinx's grammar, vosk's grammar, and
vosk free-form (the model's own language model) with the text then matched to an
intent. A wording is right when its intent, and only it, fires. False intents: the
routine's text and chatter (22 sentences, piper and espeak-ng en-us), each a false
intent when any intent fires. vosk free-form costs about ten times the CPU of a grammar,
so it hears the piper voice and espeak-ng en-us only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from assistant.coach.intents import IntentSet
from bench.context import Bench, language
from bench.report import Figure, Section
from tests.kit import spoken
from tests.kit.models import english_model
from tests.kit.wordings import DEV, HELD_OUT, pairs

log = logging.getLogger(__name__)

TEXT_TARGET = 90.0
PIPER_TARGET = 90.0
ESPEAK_TARGET = 80.0
FALSE_TARGET = 2.0


def _pct(right: int, total: int) -> float | None:
    return round(100.0 * right / total, 1) if total else None


def as_text(lang: IntentSet, items: Sequence[tuple[str, str]]) -> tuple[int, int]:
    right = sum(1 for intent, text in items if (m := lang.match(text)) is not None and m.name == intent)
    return right, len(items)


def measure(bench: Bench) -> Section:
    lang = language()
    section = Section("wordings", "8. New wordings", __doc__.split("\n\n", 1)[1])
    for key, label, wordings in (("held", "held out", HELD_OUT), ("dev", "dev", DEV)):
        right, total = as_text(lang, pairs(wordings))
        target = TEXT_TARGET if key == "held" else None
        section.add(Figure(f"text_{key}", f"as text, {label} ({right}/{total})", _pct(right, total), "%",
                           target, higher_is_better=True))  # fmt: skip
    model = english_model()
    decoders = [d for d in spoken.DECODERS if model is not None or not d.startswith("vosk")]
    if model is None:
        section.notes.append("vosk: not measured, the English model is missing (`make vosk-model`).")
    held, dev = pairs(HELD_OUT), pairs(DEV)
    negatives: list[tuple[str | None, str]] = [(None, s) for s in spoken.NO_COMMAND]
    if bench.quick:
        held, dev, negatives = held[:3], dev[:0], negatives[:2]
    for name in decoders:
        decode = spoken.decoder(name, lang, model)
        voices = spoken.VOICES if name != "vosk free-form" else spoken.NO_COMMAND_VOICES
        if bench.quick:
            voices = voices[:2]
        key = name.replace(" ", "_").replace("-", "_")
        for split, items in (("held", held), ("dev", dev)):
            if not items:
                continue
            outcomes = spoken.run(decode, lang, items, voices)
            for group, target in (("piper", PIPER_TARGET), ("espeak", ESPEAK_TARGET)):
                picked = [o for o in outcomes if o.voice.startswith(group)]
                right, total = spoken.share(picked)
                if total:
                    section.add(Figure(
                        f"{key}.{split}_{group}", f"{name}, {split}, {group} ({right}/{total})",
                        _pct(right, total), "%", target if split == "held" else None, higher_is_better=True,
                    ))  # fmt: skip
            misses = [o for o in outcomes if not o.right and split == "held"]
            log.info("wordings %s %s: %d misses", name, split, len(misses))
        false = spoken.run(decode, lang, negatives, spoken.NO_COMMAND_VOICES[: len(voices)])
        fired = [o for o in false if not o.right]
        section.add(Figure(f"{key}.false", f"{name}, false intents on no-command speech "
                           f"({len(fired)}/{len(false)})", _pct(len(fired), len(false)), "%",
                           FALSE_TARGET))  # fmt: skip
        if fired:
            shown = "; ".join(f"{o.text[:40]!r} ({o.voice}) -> {', '.join(o.fired)}" for o in fired[:6])
            section.notes.append(f"{name}, false intents: {shown}")
    section.notes.append(
        "The held-out wordings are never printed here: a miss listed would invite a template "
        "written for it. tests/kit/wordings.py says how they were chosen."
    )
    return section
