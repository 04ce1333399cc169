"""How commands are phrased: normalised text, fillers around a command, and templates.

The stages, in the order text meets them:

    normalise("Okay, I'm done!")      -> "okay i am done"
    Fillers.cores("okay i am done")   -> "okay i am done", "i am done", ...
    parse_template / expand           -> the phrases a template allows

Templates follow the spirit of Home Assistant's hassil:

    "(start|begin) [the] back stretch"   alternatives in (), optional words in []
    "skip to the {target}"               a slot filled from a list of the intents file
    "<slow> [down]"                      a named rule of the intents file, in its place

Fillers are what a person adds around a command without changing it ("okay, pause
please", "can you slow down a bit"): the matcher looks a text up with fillers taken off
either end, so templates name only the command itself and the grammar stays small.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from assistant.coach import cues

# Words a person adds around a command without changing it ("okay, pause please"): the
# fillers of an intents file that names none.
FILLERS = frozenset({"please", "okay", "ok", "um", "uh", "erm", "hey", "so", "now", "oh", "coach"})

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


# -- fillers -----------------------------------------------------------------


@dataclass(frozen=True)
class Fillers:
    """What may stand before and after a command without changing it, each a normalised
    run of words ("can you", "for now"), longest first."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    # As written, lower case ("let's", not "let us"): what a recogniser's grammar may hear
    # before (`said_before`) and after (`said_after`) a phrase.
    said_before: tuple[str, ...] = ()
    said_after: tuple[str, ...] = ()

    @classmethod
    def of(cls, before: Iterable[str], after: Iterable[str]) -> Fillers:
        """Fillers from texts as written ("let's" is kept as "let us")."""
        before, after = tuple(before), tuple(after)

        def clean(texts: Iterable[str]) -> tuple[str, ...]:
            found = {normalise(t) for t in texts} - {""}
            return tuple(sorted(found, key=lambda f: (-len(f.split()), f)))

        def said(texts: Iterable[str]) -> tuple[str, ...]:
            return tuple(sorted({" ".join(t.lower().split()) for t in texts if normalise(t)}))

        return cls(clean(before), clean(after), said(before), said(after))

    def core(self, text: str, phrases: Mapping[str, str]) -> str:
        """The phrase `text` says with fillers around it: `phrases` maps a normalised
        phrase to the phrase as a recogniser says it; "" when no core is one."""
        for core in self.cores(normalise(text)):
            if core in phrases:
                return phrases[core]
        return ""

    def cores(self, normalised: str, longest: int | None = None) -> Iterator[str]:
        """`normalised`, then what is left of it with fillers taken off either end, longest
        first (so "pause for a bit" is tried before "pause"); cores over `longest` words,
        which can be no phrase, are left out."""
        words = normalised.split()
        n = len(words)
        ends = {n - i for i in _reachable(words[::-1], self._after_reversed)}
        span = n if longest is None else longest
        pairs = [
            (i, j)
            for i in _reachable(words, self.before)
            for j in range(min(n, i + span), i, -1)
            if j in ends
        ]
        seen: set[str] = set()
        for i, j in sorted(pairs, key=lambda p: (p[0] - p[1], p[0])):
            core = " ".join(words[i:j])
            if core not in seen:
                seen.add(core)
                yield core

    def stripped(self, normalised: str) -> str:
        """`normalised` with every filler it can lose taken off the start, then the end."""
        words = normalised.split()
        words = words[max(_reachable(words, self.before)) :]
        return " ".join(words[: len(words) - max(_reachable(words[::-1], self._after_reversed))])

    @property
    def _after_reversed(self) -> tuple[str, ...]:
        # The end of a text, read backwards, begins with an after-filler read backwards.
        return tuple(" ".join(f.split()[::-1]) for f in self.after)


DEFAULT_FILLERS = Fillers.of(FILLERS, FILLERS)


def _reachable(words: Sequence[str], fillers: Sequence[str]) -> list[int]:
    """The positions a run of `fillers` from the start of `words` can end at, 0 included."""
    runs = [f.split() for f in fillers]
    seen = [False] * (len(words) + 1)
    seen[0] = True
    for i in range(len(words)):
        if seen[i]:
            for run in runs:
                if words[i : i + len(run)] == run:
                    seen[i + len(run)] = True
    return [i for i, ok in enumerate(seen) if ok]


def strip_fillers(normalised: str, fillers: Fillers = DEFAULT_FILLERS) -> str:
    """`normalised` without filler words at either end."""
    return fillers.stripped(normalised)


# -- templates ---------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    text: str


@dataclass(frozen=True)
class Slot:
    name: str


@dataclass(frozen=True)
class Rule:
    """A reference to a named rule: `<name>` stands for that rule's template."""

    name: str


@dataclass(frozen=True)
class Alt:
    options: tuple[Seq, ...]
    optional: bool = False


@dataclass(frozen=True)
class Seq:
    items: tuple[Words | Slot | Rule | Alt, ...]


Lists = Mapping[str, Sequence[tuple[Alt, str]]]  # slot name -> (template of its words, value)
Rules = Mapping[str, Alt]  # rule name -> its template

_TOKEN = re.compile(r"\s*(\(|\)|\[|\]|\||\{[a-z_]+\}|<[a-z_]+>|[^\s()\[\]|{}<>]+)")


def parse_template(template: str) -> Alt:
    """Parse a template into a tree; raises ValueError with the problem."""
    tokens = _TOKEN.findall(template)
    if "".join(tokens) != re.sub(r"\s+", "", template):
        raise ValueError("unexpected character (only words, ( | ) [ ], {slot} and <rule> are allowed)")
    pos = 0

    def alternatives(closing: str | None) -> tuple[Seq, ...]:
        nonlocal pos
        options: list[Seq] = []
        items: list[Words | Slot | Rule | Alt] = []
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
            elif tok.startswith("<"):
                items.append(Rule(tok[1:-1]))
            else:
                items.append(Words(tok))
        if closing is not None:
            raise ValueError(f"missing {closing!r}")
        options.append(Seq(tuple(items)))
        return tuple(options)

    return Alt(alternatives(None))


def rules_used(node: Alt | Seq) -> Iterator[str]:
    """The names of the rules a template tree refers to, in order."""
    for seq in node.options if isinstance(node, Alt) else (node,):
        for item in seq.items:
            if isinstance(item, Rule):
                yield item.name
            elif isinstance(item, Alt):
                yield from rules_used(item)


def rule_problem(rules: Rules) -> tuple[str, str] | None:
    """The first rule that refers to an unknown rule or, through others, to itself, and
    what is wrong with it; None when every rule can be expanded."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> str | None:
        if name in path:
            loop = " -> ".join(f"<{n}>" for n in [*path[path.index(name) :], name])
            return f"refers to itself ({loop})"
        if name in done:
            return None
        for used in rules_used(rules[name]):
            if used not in rules:
                return f"refers to an unknown rule <{used}>" + ("" if not path else f" (in <{name}>)")
            problem = visit(used, [*path, name])
            if problem is not None:
                return problem
        done.add(name)
        return None

    for name in rules:
        problem = visit(name, [])
        if problem is not None:
            return name, problem
    return None


@dataclass(frozen=True)
class Phrase:
    """One concrete phrase: its surface words, and the slots its list words fill."""

    text: str
    slots: tuple[tuple[str, str], ...] = ()


def expand(node: Alt | Seq, lists: Lists, rules: Rules | None = None) -> Iterator[Phrase]:
    """Every phrase a template tree allows (its rules checked by `rule_problem` first: a
    rule that refers to itself would never end)."""
    rules = rules or {}
    if isinstance(node, Alt):
        if node.optional:
            yield Phrase("")
        for option in node.options:
            yield from expand(option, lists, rules)
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
                    for p in expand(tree, lists, rules)
                ]
            )
        elif isinstance(item, Rule):
            if item.name not in rules:
                raise ValueError(f"unknown rule <{item.name}>")
            parts.append(list(expand(rules[item.name], lists, rules)))
        else:
            parts.append(list(expand(item, lists, rules)))
    for combo in itertools.product(*parts):
        text = " ".join(p.text for p in combo if p.text)
        yield Phrase(text, tuple(s for p in combo for s in p.slots))
