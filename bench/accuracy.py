"""6. Accuracy: correct intents and false intents on the generated sets.

The sets of the recogniser tests (tests/corpus.py): 48 command phrases, 4 per
intent, in the bundled piper voice at speaking rates 0.8, 1.0 and 1.25 (length
scales), clean and under continuous white noise at 10 dB SNR, and in four
espeak-ng voices; out of vocabulary, speech that must fire no intent: the routine
text, chatter, every cue the coach can say, and the same sentences in espeak-ng
and at 10 dB SNR. Each condition is one continuous stream fed to a fresh
recogniser in 30 ms chunks. A command is right when it fires exactly its intent,
once. The coach's own cues are counted twice: at the recogniser (how many decode
as a command at all) and through the listener's gate, as in a session (only a
barge-in phrase may count over the coach's own voice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from assistant.coach.intents import IntentSet
from assistant.hear.recognizer import Recognizer
from bench.context import MISSING, Bench, language, vosk_model
from bench.report import Figure, Section
from tests.kit.corpus import ESPEAK_VOICES, NOISE_SNR_DB, PIPER_RATES, Result, conditions, evaluate

log = logging.getLogger(__name__)


def _pct(results: list[Result]) -> tuple[float | None, str]:
    right = sum(r.correct for r in results)
    total = sum(r.commands for r in results)
    return (round(100.0 * right / total, 1) if total else None), f"{right}/{total}"


def through_gate(result: Result, lang: IntentSet) -> int:
    """Cue items whose false intent is a barge-in phrase said over a cue that names none."""
    return sum(
        1
        for item in result.items
        for said in item.said
        if lang.is_barge_in(said) and not lang.names_barge_in(item.text)
    )


def measure(bench: Bench) -> Section:
    names = conditions()
    if bench.quick:
        names = ["piper 1", "oov chatter"]
    section = Section("accuracy", "6. Accuracy", __doc__.split("\n\n", 1)[1])
    engines: dict[str, Callable[[Sequence[str]], Recognizer] | None] = {"pocketsphinx": None}
    if (path := vosk_model()) is not None:
        from assistant.hear.vosk_engine import VoskModel, VoskRecognizer

        model = VoskModel(path)
        engines["vosk"] = lambda phrases: VoskRecognizer(model, phrases)
    else:
        section.notes.append(f"vosk: not measured, {MISSING}.")
    for engine, make in engines.items():
        _engine(section, engine, {name: evaluate(name, make=make) for name in names})
    return section


def _engine(section: Section, engine: str, results: dict[str, Result]) -> None:
    """The figures of one engine, keyed and labelled with its name."""
    for name, result in results.items():
        log.info("accuracy %s %s: %s", engine, name,
                 {k: v for k, v in result.summary().items() if k != "errors"})  # fmt: skip

    def pooled(key: str, label: str, picked: list[str]) -> None:
        found = [results[n] for n in picked if n in results]
        if found:
            value, count = _pct(found)
            section.add(Figure(f"{engine}.{key}", f"{engine}: {label} ({count})", value, "% right",
                               higher_is_better=True))  # fmt: skip

    for rate in PIPER_RATES:
        pooled(f"clean_{rate:g}", f"piper, rate {rate:g}, clean", [f"piper {rate:g}"])
    pooled("clean", "piper, clean, all rates", [f"piper {r:g}" for r in PIPER_RATES])
    noisy = [f"piper {r:g} +{NOISE_SNR_DB:g}dB" for r in PIPER_RATES]
    pooled("noisy", f"piper, {NOISE_SNR_DB:g} dB SNR, all rates", noisy)
    for voice in ESPEAK_VOICES:
        pooled(f"espeak_{voice}", f"espeak-ng {voice}", [f"espeak {voice}"])
    pooled("espeak", "espeak-ng, all four voices", [f"espeak {v}" for v in ESPEAK_VOICES])
    for name, result in results.items():
        if name.startswith("oov"):
            key = "false_" + name.removeprefix("oov ").replace(" ", "_").replace("+", "_")
            label = f"false intents, {name.removeprefix('oov ')} (of {len(result.items)} sentences)"
            section.add(Figure(f"{engine}.{key}", f"{engine}: {label}", result.false_intents, "intents", 0))
    if "oov cues" in results:
        label = f"{engine}: false intents, own cues through the listener's gate"
        gated = through_gate(results["oov cues"], language())
        section.add(Figure(f"{engine}.false_cues_gated", label, gated, "intents", 0))
    if engine == "pocketsphinx":
        section.notes.append(
            "No accuracy target is set for this machine; issue 4 aimed at 80 % on other voices: "
            "espeak-ng's formant voices are far from the models' training speech."
        )
    errors = [e for r in results.values() for e in r.summary()["errors"]]  # type: ignore[attr-defined]
    if errors:
        shown = "; ".join(f"{e['text']!r} -> {', '.join(e['heard']) or 'nothing'}" for e in errors[:12])
        more = " ..." if len(errors) > 12 else ""
        section.notes.append(f"{engine}: errors ({len(errors)}): {shown}{more}")
