"""7. Real people: "stop" from real speakers, and real words that must fire nothing.

The Speech Commands subset in ../shared/data/speech-commands (tests/kit/real.py): 633
one-second clips from 103 speakers, recorded on their own phones and laptops: 116 of
"stop" (47 speakers), 497 of other words (go, no, yes, on, off, up, down, left, right
and 25 rarer ones) and 20 of background noise. Each clip is heard as a session hears
it: through the `Listener` on a fresh recogniser of the product's settings, with 0.5 s
of the clip's own room tone before it and 1 s after, fed in 30 ms chunks. "Fan": the
same, with the set's most fan-like noise clip (noise-none-1250, steady, 96 % of its
power below 1 kHz) running from 1.5 s before the clip at 10 dB SNR against the clip's
active speech level. The split was fixed before any tuning: speakers (and noise clips)
whose sha256 is odd are HELD out; the distractor words and settings were tuned on TUNE
only, so HELD is the figure. A false intent: a word clip (not noise) that fired any
intent; noise clips are counted apart.
"""

from __future__ import annotations

import logging
import multiprocessing
import os

from bench.context import Bench
from bench.report import Figure, Section
from tests.kit import real
from tests.kit.models import english_model

log = logging.getLogger(__name__)

TARGET_STOP = {"vosk": 90.0, "pocketsphinx": 75.0}  # % of HELD "stop" clips heard as stop
TARGET_FALSE = 2.0  # % of HELD word clips that fire an intent
CONDITIONS = {"quiet": None, "fan": real.SNR_DB}


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _fired(figures: real.Figures) -> str:
    rows = sorted(figures.fired.items(), key=lambda kv: -sum(kv[1].values()))
    return "; ".join(
        f"{word} -> " + ", ".join(f"{name} {n}" for name, n in sorted(hits.items(), key=lambda kv: -kv[1]))
        for word, hits in rows
    )


def _speakers(heard: list[real.Heard]) -> str:
    by: dict[str, list[bool]] = {}
    for h in heard:
        if h.clip.intent == "stop":
            by.setdefault(h.clip.speaker or "", []).append(h.right)
    missed = sorted((s, sum(v), len(v)) for s, v in by.items() if not all(v))
    return ", ".join(f"{s} {ok}/{n}" for s, ok, n in missed) or "none"


def _add(section: Section, engine: str, condition: str, held: bool, heard: list[real.Heard]) -> None:
    f = real.figures(heard)
    side = "HELD" if held else "TUNE"
    key, label = f"{engine}.{condition}.{side.lower()}", f"{engine}, {condition}, {side}"
    headline = held and condition == "quiet"
    stop_target = TARGET_STOP[engine] if headline else None
    section.add(
        Figure(f"{key}.stop_pct", f"{label}: stop heard ({f.stop_heard}/{f.stops})",
               _pct(f.stop_heard, f.stops), "%", stop_target, higher_is_better=True),
        Figure(f"{key}.speakers_all_heard", f"{label}: speakers all of whose stops were heard",
               f"{f.speakers_all_heard}/{f.stop_speakers}"),
        Figure(f"{key}.false_pct", f"{label}: word clips firing an intent ({f.false}/{f.words})",
               _pct(f.false, f.words), "%", TARGET_FALSE if held else None),
        Figure(f"{key}.noise_false", f"{label}: noise clips firing an intent", f"{f.noise_false}/{f.noises}"),
        Figure(f"{key}.stop_as_start", f"{label}: stop heard as start", f.stop_as_start, "clips", 0),
    )  # fmt: skip
    section.notes.append(f"{label}: false intents per word: {_fired(f) or 'none'}.")
    section.notes.append(f"{label}: speakers with a stop missed (heard/clips): {_speakers(heard)}.")
    log.info("real %s: stop %d/%d, false %d/%d", label, f.stop_heard, f.stops, f.false, f.words)


def measure(bench: Bench) -> Section:
    section = Section("real", "7. Real speakers (Speech Commands)", __doc__.split("\n\n", 1)[1])
    if not real.available():
        section.notes.append(f"Not measured: the set is not at {real.DATA}.")
        return section
    chosen = {held: real.split(held) for held in (False, True)}
    if bench.quick:
        chosen = {held: clips[:: len(clips) // 6] for held, clips in chosen.items()}
    model = english_model()
    engines = [e for e in real.ENGINES if e != "vosk" or model is not None]
    if model is None:
        section.notes.append("vosk: not measured, the English model is not fetched (`make vosk-model`).")
    runs = [(engine, condition, held) for engine in engines for condition in CONDITIONS for held in chosen]
    # A process per run (one engine, condition and side), as many at once as there are
    # cores, not one run after the other in this process. Decoding is deterministic, so
    # the figures are those of one process. The model's path is passed: the children's
    # XDG folders are the bench's private ones, where it is not.
    with multiprocessing.get_context("spawn").Pool(min(len(runs), os.cpu_count() or 1)) as pool:
        jobs = [(engine, chosen[held], CONDITIONS[condition], model) for engine, condition, held in runs]
        done = pool.starmap(real.decode, jobs)
    for (engine, condition, held), heard in zip(runs, done, strict=True):
        _add(section, engine, condition, held, heard)
    return section
