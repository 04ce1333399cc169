"""What the user can say: the intents file loaded, expanded and matched against.

Its templates (phrasing.py: alternatives, optional words, slots from `lists`, named
`rules`) are finite, so they expand to the complete list of phrases; that list is both
the matcher (a dictionary from normalised phrase to intent) and the closed grammar a
speech recogniser needs. The file's `fillers` (words said around a command) are taken
off the ends of a text before it is looked up, so they need no phrases of their own.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from assistant.coach import routine, yamldoc
from assistant.coach.phrasing import (
    DEFAULT_FILLERS,
    Alt,
    Fillers,
    Lists,
    Phrase,
    Rules,
    expand,
    parse_template,
    rule_problem,
)
from assistant.coach.phrasing import normalise as normalise  # the matcher's, for its callers
from assistant.errors import ConfigError

log = logging.getLogger(__name__)

MAX_PHRASES = 20_000  # a template set that expands further is a mistake in the file


# -- the intent set ----------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """A recognised command: its name and slot values."""

    name: str
    slots: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IntentSet:
    """All intents of one language, expanded, plus the coach's response texts."""

    language: str
    names: tuple[str, ...]
    table: Mapping[str, Intent]  # normalised phrase -> intent
    surface: Mapping[str, tuple[str, ...]]  # intent -> phrases as written, for grammars
    responses: Mapping[str, str]
    barge_in: frozenset[str]  # normalised phrases that count while the coach speaks
    source: yamldoc.Doc = field(repr=False, compare=False)  # the file, for errors found later
    # Said around a command without changing it; not in `phrases()`: a recogniser that
    # wants them around its phrases adds them itself.
    fillers: Fillers = DEFAULT_FILLERS
    longest: int = 0  # words in the longest phrase: a longer core is no command

    def match(self, text: str) -> Intent | None:
        """The intent `text` says, or None when it is no command: the text itself or, with
        fillers taken off its ends, the longest core that is a phrase."""
        hit = next(self._hits(text), None)
        log.debug("match %r -> %s", text, hit[1].name if hit else None)
        return hit[1] if hit else None

    def is_barge_in(self, text: str) -> bool:
        """Whether `text` is a barge-in phrase (fillers around it allowed): one that counts
        while the coach speaks."""
        hit = next(self._hits(text), None)
        return hit is not None and hit[0] in self.barge_in

    def _hits(self, text: str) -> Iterator[tuple[str, Intent]]:
        for core in self.fillers.cores(normalise(text), self.longest):
            hit = self.table.get(core)
            if hit is not None:
                yield core, hit

    def names_barge_in(self, text: str) -> bool:
        """Whether `text` contains a barge-in phrase ("...you can say pause, ... or stop.")."""
        return _contains_any(text, self.barge_in)

    def phrases(self) -> list[str]:
        """Every phrase of every intent, lower case, as a recogniser should hear it."""
        return sorted({p for group in self.surface.values() for p in group})

    def complete_phrases(self) -> list[str]:
        """The phrases a recogniser may act on as soon as it has heard them: those that no
        longer phrase of another intent begins with ("start", but not when "start it again"
        means repeat, for the user may not have finished)."""
        phrases = self.phrases()
        meaning = {p: self.match(p) for p in phrases}
        continued: dict[tuple[str, ...], list[Intent | None]] = {}  # prefix -> meanings after it
        for phrase in phrases:
            words = tuple(phrase.split())
            for n in range(1, len(words)):
                continued.setdefault(words[:n], []).append(meaning[phrase])
        return [p for p in phrases if all(m == meaning[p] for m in continued.get(tuple(p.split()), []))]

    def vocabulary(self) -> list[str]:
        return sorted({w for p in self.phrases() for w in p.split()})

    def say(self, key: Reply, **values: object) -> str:
        """A response text with its placeholders filled."""
        return routine.fill(self.responses[key], {name: str(v) for name, v in values.items()})

    def error(self, path: yamldoc.PathKey, message: str) -> ConfigError:
        """An error in this intents file at `path` (its file and line named), found after
        loading: by the dialogue, which knows the intents it answers."""
        return self.source.error(path, message)


@functools.lru_cache(maxsize=1024)
def _contains_any(text: str, phrases: frozenset[str]) -> bool:
    # Cached: the listener asks this of the same few cue texts for every hypothesis.
    words = normalise(text).split()
    return any(words[i : i + len(p.split())] == p.split() for p in phrases for i in range(len(words)))


# Every reply the dialogue asks for (dialogue.py names them by these keys, and mypy holds it
# to them), with the placeholders it fills for each: an intents file must give exactly these
# responses, using only those placeholders, so a wrong one fails at load, not mid-session.
# tests/coach/test_dialogue.py drives the dialogue through every one.
Reply = Literal[
    "hint",
    "not_running",
    "paused",
    "already_paused",
    "resuming",
    "already_running",
    "slower",
    "faster",
    "slowest",
    "fastest",
    "status",
    "status_paused",
    "status_idle",
    "help",
    "help_idle",
    "louder",
    "quieter",
    "loudest",
    "quietest",
    "skip",
    "skip_last",
    "offer",
    "cannot_save",
    "cannot_save_full",
]
WHERE = frozenset({"set", "sets", "side", "rep", "reps"})  # where the session stands
RESPONSES: Mapping[Reply, frozenset[str]] = {
    "hint": frozenset(),
    "not_running": frozenset(),
    "paused": frozenset(),
    "already_paused": WHERE,
    "resuming": WHERE,
    "already_running": WHERE,
    "slower": frozenset({"inhale", "exhale"}),
    "faster": frozenset({"inhale", "exhale"}),
    "slowest": frozenset(),
    "fastest": frozenset(),
    "status": WHERE | {"minutes"},
    "status_paused": WHERE | {"minutes"},
    "status_idle": frozenset({"minutes"}),
    "help": frozenset(),
    "help_idle": frozenset(),
    "louder": frozenset(),
    "quieter": frozenset(),
    "loudest": frozenset(),
    "quietest": frozenset(),
    "skip": frozenset(),
    "skip_last": frozenset(),
    "offer": WHERE,
    "cannot_save": frozenset(),
    "cannot_save_full": frozenset(),
}


def default_path(language: str = "en") -> Path:
    return Path(str(importlib.resources.files("assistant.lang") / f"{language}.yaml"))


def load(path: Path | None = None) -> IntentSet:
    """Load and expand an intents file (the bundled English one by default)."""
    return from_doc(yamldoc.load(path or default_path()))


def from_doc(doc: yamldoc.Doc) -> IntentSet:
    """Expand and check an intents file. Which intents it must have is the dialogue's to
    say (dialogue.check_intents); the responses it must have are RESPONSES."""
    doc.mapping((), ("language", "fillers", "rules", "lists", "intents", "barge_in", "responses"))
    rules = _rules(doc)
    lists: dict[str, list[tuple[Alt, str]]] = {}
    for name in doc.mapping(("lists",)):
        values = []
        for i, _entry in enumerate(doc.sequence(("lists", name))):
            doc.mapping(("lists", name, i), ("in", "out"))
            values.append((_parse(doc, ("lists", name, i, "in")), doc.text(("lists", name, i, "out"))))
        lists[name] = values
    grammar = (lists, rules)
    table: dict[str, Intent] = {}
    surface: dict[str, tuple[str, ...]] = {}
    intents = doc.mapping(("intents",))
    for name in intents:
        said: list[str] = []
        for i, _ in enumerate(doc.sequence(("intents", name))):
            path = ("intents", name, i)
            for phrase in _expand(doc, path, grammar):
                key = normalise(phrase.text)
                if not key:
                    raise doc.error(path, "a template may not allow an empty phrase")
                other = table.get(key)
                if other is not None and other.name != name:
                    raise doc.error(path, f"{phrase.text!r} already means {other.name!r}")
                table[key] = Intent(name, dict(phrase.slots))
                said.append(phrase.text)
            if len(table) > MAX_PHRASES:
                raise doc.error(path, f"templates expand to over {MAX_PHRASES} phrases")
        surface[name] = tuple(dict.fromkeys(said))
    log.debug("%d intents, %d phrases", len(surface), len(table))
    return IntentSet(
        language=doc.text(("language",), "en"),
        names=tuple(intents),
        table=table,
        surface=surface,
        responses=_responses(doc),
        barge_in=_barge_in(doc, grammar, table),
        source=doc,
        fillers=_fillers(doc),
        longest=max((len(key.split()) for key in table), default=0),
    )


def _rules(doc: yamldoc.Doc) -> Rules:
    """The named rules, parsed, each expandable: no unknown rule, no rule through itself."""
    rules = {name: _parse(doc, ("rules", name)) for name in doc.mapping(("rules",))}
    problem = rule_problem(rules)
    if problem is not None:
        name, message = problem
        raise doc.error(("rules", name), message)
    return rules


def _fillers(doc: yamldoc.Doc) -> Fillers:
    """The fillers before and after a command (the single words of FILLERS when the file
    names none)."""
    if doc.get(("fillers",)) is None:
        return DEFAULT_FILLERS
    doc.mapping(("fillers",), ("before", "after"))
    sides = []
    for side in ("before", "after"):
        texts = [doc.text(("fillers", side, i)) for i, _ in enumerate(doc.sequence(("fillers", side)))]
        for i, text in enumerate(texts):
            if not normalise(text):
                raise doc.error(("fillers", side, i), "a filler must have a word")
        sides.append(texts)
    return Fillers.of(*sides)


def _barge_in(doc: yamldoc.Doc, grammar: tuple[Lists, Rules], table: Mapping[str, Intent]) -> frozenset[str]:
    """The barge-in phrases, normalised: per intent, templates of some of its own phrases."""
    if doc.get(("barge_in",)) is None:
        raise doc.error(
            ("barge_in",),
            "is missing; list, per intent, the phrases that count "
            "while the coach speaks (as in the bundled en.yaml)",
        )
    out: set[str] = set()
    for name in doc.mapping(("barge_in",)):
        for i, _ in enumerate(doc.sequence(("barge_in", name))):
            path = ("barge_in", name, i)
            for phrase in _expand(doc, path, grammar):
                key = normalise(phrase.text)
                hit = table.get(key)
                if hit is None or hit.name != name:
                    raise doc.error(
                        path,
                        f"{phrase.text!r} is not a phrase of the intent {name!r}; "
                        "a barge-in phrase must be one of its intent's own",
                    )
                out.add(key)
    return frozenset(out)


def _responses(doc: yamldoc.Doc) -> dict[str, str]:
    """Every response of RESPONSES, and no other, each with only its own placeholders."""
    out: dict[str, str] = {}
    doc.mapping(("responses",), tuple(RESPONSES))  # a response nothing asks for: unknown key
    for key, allowed in RESPONSES.items():
        path = ("responses", key)
        text = " ".join(doc.text(path).split())
        problem = routine.template_problem(text, sorted(allowed))
        if problem is not None:
            raise doc.error(path, problem)
        out[key] = text
    return out


def _expand(doc: yamldoc.Doc, path: yamldoc.PathKey, grammar: tuple[Lists, Rules]) -> list[Phrase]:
    try:
        return list(expand(_parse(doc, path), *grammar))
    except ValueError as exc:
        raise doc.error(path, str(exc)) from exc


def _parse(doc: yamldoc.Doc, path: yamldoc.PathKey) -> Alt:
    template = doc.text(path)
    try:
        return parse_template(template.lower())
    except ValueError as exc:
        raise doc.error(path, f"bad template {template!r}: {exc}") from exc
