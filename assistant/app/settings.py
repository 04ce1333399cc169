"""The configuration file: one YAML file of user settings, validated on load.

Looked up in order: `--config FILE`, `$BACKSTRETCH_CONFIG`, then
`$XDG_CONFIG_HOME/backstretch/config.yaml` (usually ~/.config). A missing
default file means "all defaults"; a missing file named explicitly is an error.
Every setting remembers where its value came from, for `backstretch config`.
Routine values (pace, reps, sets, first side) left unset here come from the
routine file; `intents` names an intents file of your own (another language).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from assistant.coach import intents as intents_mod
from assistant.coach import routine as routine_mod
from assistant.coach import yamldoc
from assistant.coach.intents import IntentSet, normalise
from assistant.coach.routine import (
    EXHALE_S,
    HOLD_S,
    INHALE_S,
    REPS_PER_SIDE,
    SETS,
    SIDES,
    VERBOSITIES,
    Pace,
    Routine,
)

log = logging.getLogger(__name__)


def _opt(key: str, doc: str, default: Any = None, **check: Any) -> Any:
    return field(default=default, metadata={"key": key, "doc": doc, **check})


@dataclass(frozen=True)
class Settings:
    """Effective settings; the metadata of each field is its YAML key and bounds."""

    routine: str | None = _opt("routine", "a routine file of your own; empty: the knee hug", kind=str)
    intents: str | None = _opt(
        "intents", "an intents file of your own (another language); empty: the bundled English", kind=str
    )
    inhale_s: float | None = _opt(
        "pace.inhale_s", "seconds to breathe in; empty: the routine's", kind=float,
        low=INHALE_S[0], high=INHALE_S[1],
    )  # fmt: skip
    exhale_s: float | None = _opt(
        "pace.exhale_s",
        "seconds to breathe out and pull; empty: the routine's",
        kind=float,
        low=EXHALE_S[0],
        high=EXHALE_S[1],
    )
    hold_s: float | None = _opt(
        "pace.hold_s",
        "seconds to stay at the top (0: no hold); empty: the routine's",
        kind=float,
        low=HOLD_S[0],
        high=HOLD_S[1],
    )
    reps_per_side: int | None = _opt(
        "reps_per_side", "reps on each leg; empty: the routine's", kind=int,
        low=REPS_PER_SIDE[0], high=REPS_PER_SIDE[1],
    )  # fmt: skip
    sets: int | None = _opt(
        "sets", "sets (left plus right); empty: the routine's", kind=int, low=SETS[0], high=SETS[1]
    )
    first_side: str | None = _opt("first_side", "leg to start with", kind=str, choices=SIDES)
    verbosity: str = _opt("verbosity", "detailed, brief or counts", "detailed", kind=str, choices=VERBOSITIES)
    voice: str = _opt("voice.name", "a voice name or an .onnx path", "en_US-joe-medium", kind=str)
    speaker: int | None = _opt(
        "voice.speaker", "speaker id of a multi-speaker voice", kind=int, low=0, high=10_000
    )
    speech_rate: float = _opt(
        "voice.speech_rate", "1.0 normal, 0.8 slower, 1.2 faster", 1.0, kind=float, low=0.5, high=2.0
    )
    sentence_pause_s: float = _opt(
        "voice.sentence_pause_s", "silence between sentences", 0.2, kind=float, low=0.0, high=2.0
    )
    volume: float = _opt("volume", "0.1 to 1.0", 0.8, kind=float, low=0.1, high=1.0)
    output_device: str | None = _opt("audio.output_device", "name or index; empty: the default", kind=str)
    input_device: str | None = _opt("audio.input_device", "name or index; empty: the default", kind=str)
    output_rate_hz: int | None = _opt(
        "audio.output_rate_hz", "empty: the voice's rate if the device takes it",
        kind=int, low=8000, high=192_000,
    )  # fmt: skip
    duplex: bool = _opt(
        "audio.duplex", "true: one duplex stream when the microphone and the speaker are one "
        "device (README: it underran more on PulseAudio)", False, kind=bool,
    )  # fmt: skip

    stt_engine: str = _opt(
        "stt.engine", "auto (vosk if a model is installed), vosk or pocketsphinx", "auto",
        kind=str, choices=("auto", "vosk", "pocketsphinx"),
    )  # fmt: skip
    vosk_model: str | None = _opt("stt.vosk_model", "a vosk model folder; empty: the installed one", kind=str)
    wake_word: str | None = _opt("stt.wake_word", "when set, a command counts only after it", kind=str)

    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def apply(self, routine: Routine) -> Routine:
        """The routine with this configuration's overrides."""
        pace = Pace(
            self.inhale_s if self.inhale_s is not None else routine.pace.inhale_s,
            self.exhale_s if self.exhale_s is not None else routine.pace.exhale_s,
            self.hold_s if self.hold_s is not None else routine.pace.hold_s,
        )
        return replace(
            routine,
            pace=pace,
            reps_per_side=self.reps_per_side or routine.reps_per_side,
            sets=self.sets or routine.sets,
            first_side=self.first_side or routine.first_side,
        )

    def load_routine(self) -> Routine:
        return self.apply(routine_mod.load(Path(self.routine) if self.routine else None))

    def load_intents(self) -> IntentSet:
        return intents_mod.load(Path(self.intents) if self.intents else None)


def default_path() -> Path:
    env = os.environ.get("BACKSTRETCH_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "backstretch" / "config.yaml"


def load(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings from `path` (or the default file if it exists), then `overrides`."""
    explicit = path is not None or bool(os.environ.get("BACKSTRETCH_CONFIG"))
    path = path or default_path()
    if not explicit and not path.exists():
        doc = yamldoc.Doc(str(path), {})
        log.debug("no configuration file at %s; using defaults", path)
    else:
        doc = yamldoc.load(path)
    return from_doc(doc, overrides or {})


def from_doc(doc: yamldoc.Doc, overrides: Mapping[str, Any]) -> Settings:
    specs = [f for f in fields(Settings) if "key" in f.metadata]
    _check_keys(doc, {f.metadata["key"] for f in specs})
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in specs:
        key = spec.metadata["key"]
        path = tuple(key.split("."))
        if spec.name in overrides and overrides[spec.name] is not None:
            values[spec.name] = overrides[spec.name]
            sources[key] = "command line"
        elif doc.get(path) is not None:
            values[spec.name] = _value(doc, path, spec.metadata)
            sources[key] = f"{doc.name}:{doc.line(path)}"
        else:
            sources[key] = "default"
    if values.get("wake_word") is not None:
        problem = _wake_word_problem(values["wake_word"])
        if problem is not None:
            raise doc.error(("stt", "wake_word"), problem)
    return Settings(**values, sources=sources)


MAX_WAKE_WORDS, MAX_WAKE_CHARS = 3, 30  # a short word or two, said before every command


def _wake_word_problem(wake: str) -> str | None:
    """The shape of a wake word; whether the recogniser knows its words is checked where
    the recogniser is made (hear/listen.py)."""
    words = normalise(wake).split()
    if not words:
        return f"has no word in it ({wake[:MAX_WAKE_CHARS]!r}); leave it empty to need no wake word"
    if len(words) > MAX_WAKE_WORDS or len(" ".join(words)) > MAX_WAKE_CHARS:
        return (
            f"too long: at most {MAX_WAKE_WORDS} words and {MAX_WAKE_CHARS} letters, said before "
            "every command; a word like 'coach'"
        )
    return None


def _check_keys(doc: yamldoc.Doc, known: set[str]) -> None:
    sections = {k.split(".")[0] for k in known if "." in k}
    top = doc.mapping((), sorted({k.split(".")[0] for k in known}))
    for section in sections:
        if section in top:
            doc.mapping((section,), sorted(k.split(".", 1)[1] for k in known if k.startswith(section + ".")))


def _value(doc: yamldoc.Doc, path: tuple[str, ...], meta: Mapping[str, Any]) -> Any:
    kind = meta["kind"]
    if kind is float:
        return doc.number(path, 0.0, meta["low"], meta["high"])
    if kind is int:
        return doc.integer(path, 0, meta["low"], meta["high"])
    if kind is bool:
        return doc.boolean(path, False)
    raw = doc.get(path)
    if isinstance(raw, int | float) and not isinstance(raw, bool) and meta["key"].startswith("audio."):
        return str(raw)  # a device index written as a number
    return doc.text(path, choices=meta.get("choices", ()))


def describe(settings: Settings, routine: Routine, routine_source: str) -> str:
    """The effective configuration as YAML, each value commented with its source."""
    effective = {
        "pace.inhale_s": routine.pace.inhale_s,
        "pace.exhale_s": routine.pace.exhale_s,
        "pace.hold_s": routine.pace.hold_s,
        "reps_per_side": routine.reps_per_side,
        "sets": routine.sets,
        "first_side": routine.first_side,
    }
    lines: list[str] = []
    section = ""
    for spec in (f for f in fields(Settings) if "key" in f.metadata):
        key: str = spec.metadata["key"]
        value = getattr(settings, spec.name)
        source = settings.sources.get(key, "default")
        if key in effective and value is None:
            value, source = effective[key], routine_source
        head, _, leaf = key.rpartition(".")
        if head != section:
            if head:
                lines.append(f"{head}:")
            section = head
        indent = "  " if head else ""
        shown = "" if value is None else (f'"{value}"' if isinstance(value, str) else value)
        if isinstance(value, bool):
            shown = str(value).lower()  # YAML's spelling
        lines.append(f"{indent}{leaf}: {shown}".ljust(40) + f"# {source}")
    return "\n".join(lines)
