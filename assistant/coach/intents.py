"""What the user can say: intent templates from YAML, normalisation, matching.

Templates follow the spirit of Home Assistant's hassil:

    "(start|begin) [the] back stretch"   alternatives in (), optional words in []
    "skip to the {target}"               a slot filled from a list in the same file

A template set is finite, so it expands to the complete list of phrases; that
list is both the matcher (a dictionary from normalised phrase to intent) and
the closed grammar a speech recogniser needs.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from assistant.coach import cues, routine, yamldoc
from assistant.errors import ConfigError

log = logging.getLogger(__name__)

# Words a person adds around a command without changing it ("okay, pause please").
FILLERS = frozenset({"please", "okay", "ok", "um", "uh", "erm", "hey", "so", "now", "oh", "coach"})
MAX_PHRASES = 20_000  # a template set that expands further is a mistake in the file


# -- normalisation ---------------------------------------------------------

_CONTRACTIONS = {
    "can't": "can not",
    "cannot": "can not",
    "won't": "will not",
    "let's": "let us",
    "i'm": "i am",
    "it's": "it is",
    "that's": "that is",
    "what's": "what is",
    "where's": "where is",
    "how's": "how is",
    "there's": "there is",
}
_SPELLABLE_DIGITS = len(str(cues.SPELL_MAX))
_SUFFIXES = (("n't", " not"), ("'re", " are"), ("'ve", " have"), ("'ll", " will"), ("'d", " would"))


def normalise(text: str) -> str:
    """Lower case, contractions expanded, punctuation gone, numbers as words."""
    text = text.lower().replace("\u2019", "'").replace("-", " ")
    words: list[str] = []
    for raw in re.findall(r"[a-z0-9']+", text):
        word = raw.strip("'")
        if word in _CONTRACTIONS:
            word = _CONTRACTIONS[word]
        else:
            for suffix, expansion in _SUFFIXES:
                if word.endswith(suffix):
                    word = word[: -len(suffix)] + expansion
                    break
        # Digits are read as words when they can be (a bounded length: Python refuses to
        # convert over 4,300 digits, and no one says a number that long to the coach).
        if word.isdigit() and len(word) <= _SPELLABLE_DIGITS:
            word = cues.spell(int(word))
        words.extend(word.replace("'", "").split())
    return " ".join(words)


def strip_fillers(normalised: str) -> str:
    """`normalised` without filler words at either end."""
    words = normalised.split()
    while words and words[0] in FILLERS:
        words.pop(0)
    while words and words[-1] in FILLERS:
        words.pop()
    return " ".join(words)


# -- templates ---------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    text: str


@dataclass(frozen=True)
class Slot:
    name: str


@dataclass(frozen=True)
class Alt:
    options: tuple[Seq, ...]
    optional: bool = False


@dataclass(frozen=True)
class Seq:
    items: tuple[Words | Slot | Alt, ...]


_TOKEN = re.compile(r"\s*(\(|\)|\[|\]|\||\{[a-z_]+\}|[^\s()\[\]|{}]+)")


def parse_template(template: str) -> Alt:
    """Parse a template into a tree; raises ValueError with the problem."""
    tokens = _TOKEN.findall(template)
    if "".join(tokens) != re.sub(r"\s+", "", template):
        raise ValueError("unexpected character (only words, ( | ) [ ] and {slot} are allowed)")
    pos = 0

    def alternatives(closing: str | None) -> tuple[Seq, ...]:
        nonlocal pos
        options: list[Seq] = []
        items: list[Words | Slot | Alt] = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok in "([":
                inner = alternatives(")" if tok == "(" else "]")
                items.append(Alt(inner, optional=tok == "["))
            elif tok == "|":
                options.append(Seq(tuple(items)))
                items = []
            elif tok in ")]":
                if tok != closing:
                    raise ValueError(f"unbalanced {tok!r}")
                options.append(Seq(tuple(items)))
                return tuple(options)
            elif tok.startswith("{"):
                items.append(Slot(tok[1:-1]))
            else:
                items.append(Words(tok))
        if closing is not None:
            raise ValueError(f"missing {closing!r}")
        options.append(Seq(tuple(items)))
        return tuple(options)

    tree = Alt(alternatives(None))
    return tree


@dataclass(frozen=True)
class Phrase:
    """One concrete phrase: its surface words, and the slots its list words fill."""

    text: str
    slots: tuple[tuple[str, str], ...] = ()


def expand(node: Alt | Seq, lists: Mapping[str, Sequence[tuple[Alt, str]]]) -> Iterator[Phrase]:
    """Every phrase a template tree allows."""
    if isinstance(node, Alt):
        if node.optional:
            yield Phrase("")
        for option in node.options:
            yield from expand(option, lists)
        return
    parts: list[list[Phrase]] = []
    for item in node.items:
        if isinstance(item, Words):
            parts.append([Phrase(item.text)])
        elif isinstance(item, Slot):
            if item.name not in lists:
                raise ValueError(f"unknown list {{{item.name}}}")
            parts.append(
                [
                    Phrase(p.text, ((item.name, value),))
                    for tree, value in lists[item.name]
                    for p in expand(tree, lists)
                ]
            )
        else:
            parts.append(list(expand(item, lists)))
    for combo in itertools.product(*parts):
        text = " ".join(p.text for p in combo if p.text)
        yield Phrase(text, tuple(s for p in combo for s in p.slots))


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

    def match(self, text: str) -> Intent | None:
        """The intent `text` says, or None when it is no command."""
        key = normalise(text)
        hit = self.table.get(key) or self.table.get(strip_fillers(key))
        log.debug("match %r -> %s", text, hit.name if hit else None)
        return hit

    def is_barge_in(self, text: str) -> bool:
        """Whether `text` is a barge-in phrase (fillers around it allowed): one that counts
        while the coach speaks."""
        return strip_fillers(normalise(text)) in self.barge_in

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
        by_words = [(p, p.split()) for p in phrases]
        out = []
        for phrase, words in by_words:
            longer = (q for q, w in by_words if len(w) > len(words) and w[: len(words)] == words)
            if all(meaning[q] == meaning[phrase] for q in longer):
                out.append(phrase)
        return out

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
    doc.mapping((), ("language", "intents", "barge_in", "lists", "responses"))
    lists: dict[str, list[tuple[Alt, str]]] = {}
    for name in doc.mapping(("lists",)):
        values = []
        for i, _entry in enumerate(doc.sequence(("lists", name))):
            doc.mapping(("lists", name, i), ("in", "out"))
            values.append((_parse(doc, ("lists", name, i, "in")), doc.text(("lists", name, i, "out"))))
        lists[name] = values
    table: dict[str, Intent] = {}
    surface: dict[str, tuple[str, ...]] = {}
    intents = doc.mapping(("intents",))
    for name in intents:
        said: list[str] = []
        for i, _ in enumerate(doc.sequence(("intents", name))):
            path = ("intents", name, i)
            for phrase in _expand(doc, path, lists):
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
        barge_in=_barge_in(doc, lists, table),
        source=doc,
    )


def _barge_in(
    doc: yamldoc.Doc, lists: Mapping[str, Sequence[tuple[Alt, str]]], table: Mapping[str, Intent]
) -> frozenset[str]:
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
            for phrase in _expand(doc, path, lists):
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


def _expand(
    doc: yamldoc.Doc, path: yamldoc.PathKey, lists: Mapping[str, Sequence[tuple[Alt, str]]]
) -> list[Phrase]:
    try:
        return list(expand(_parse(doc, path), lists))
    except ValueError as exc:
        raise doc.error(path, str(exc)) from exc


def _parse(doc: yamldoc.Doc, path: yamldoc.PathKey) -> Alt:
    template = doc.text(path)
    try:
        return parse_template(template.lower())
    except ValueError as exc:
        raise doc.error(path, f"bad template {template!r}: {exc}") from exc
