"""YAML files read with their line numbers, so every error can name file, line and key.

`load()` parses with the safe loader and keeps, for each key path, the line it
stands on; `Doc` hands out typed values by dotted path and raises `ConfigError`
lines such as ``config.yaml:7: pace.inhale_s: expected a number, got 'slow'``.

Configuration, routine and intents files are small and flat, and a hostile one must
end in one such line too, not a RecursionError or gigabytes of memory: a file is read
up to `MAX_BYTES`, nested up to `MAX_DEPTH` levels, and expands (aliases included) to
at most `MAX_VALUES` values; only plain YAML tags are taken, and no merge keys.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.errors import ConfigError

log = logging.getLogger(__name__)

PathKey = tuple[str | int, ...]

# The bundled intents file, the largest, is 5 kB with 400 values. PyYAML parses in pure
# Python at about 30 kB a second at worst (a long flow list): 64 kB is 2 s.
MAX_BYTES = 64 * 1024
MAX_DEPTH = 32  # the deepest of our files (intents: lists.NAME[i].in) is 5, scalars counted
MAX_VALUES = 10_000  # after alias expansion: the "billion laughs" stops here
_SHOWN_CHARS = 40  # of a key or a value in a message


def _short(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        part = part if isinstance(part, int) else _short(part)
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


@dataclass(frozen=True)
class Doc:
    """A parsed YAML document: plain data plus the line of every key path."""

    name: str
    data: Any
    lines: Mapping[PathKey, int] = field(default_factory=dict)

    def line(self, path: PathKey) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def error(self, path: PathKey, message: str) -> ConfigError:
        return ConfigError(f"{self.name}:{self.line(path)}: {_dotted(path)}: {message}")

    def get(self, path: PathKey) -> Any:
        node = self.data
        for part in path:
            if isinstance(part, int) or isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                return None
        return node

    def mapping(self, path: PathKey, allowed: Sequence[str] | None = None) -> Mapping[str, Any]:
        """The mapping at `path` ({} when absent); unknown keys are an error."""
        value = self.get(path)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a mapping of keys, got {_kind(value)}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    hint = ", ".join(sorted(allowed))
                    raise self.error((*path, str(key)), f"unknown key; known keys here: {hint}")
        return value

    def sequence(self, path: PathKey) -> Sequence[Any]:
        value = self.get(path)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(path, f"expected a list, got {_kind(value)}")
        return value

    def text(self, path: PathKey, default: str | None = None, choices: Sequence[str] = ()) -> str:
        value = self.get(path)
        if value is None:
            if default is None:
                raise self.error(path, "is missing")
            return default
        if not isinstance(value, str):
            raise self.error(path, f"expected text, got {_kind(value)}")
        if choices and value not in choices:
            raise self.error(path, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def number(self, path: PathKey, default: float, low: float, high: float) -> float:
        value = self.get(path)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(path, f"expected a number, got {_kind(value)}")
        if not low <= value <= high:
            shown = _kind(value) if isinstance(value, int) else f"{value:g}"
            raise self.error(path, f"must be between {low:g} and {high:g}, got {shown}")
        return float(value)

    def integer(self, path: PathKey, default: int, low: int, high: int) -> int:
        value = self.get(path)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"expected a whole number, got {_kind(value)}")
        if not low <= value <= high:
            raise self.error(path, f"must be between {low} and {high}, got {_kind(value)}")
        return int(value)

    def boolean(self, path: PathKey, default: bool) -> bool:
        value = self.get(path)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return repr(_short(value))
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        # str() of a number over 4,300 digits raises, and a long one is no message anyway.
        return f"a number of {int(math.log10(abs(value))) + 1} digits"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _short(repr(value))


class _Refused(Exception):
    """A document this module does not take: its message, and the line and path it is at."""

    def __init__(self, message: str, line: int, path: PathKey | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.path = path


# libyaml when PyYAML has it: ten to a hundred times faster on a hostile file.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before composing: the composer recurses once
    per level, so 100,000 "[" would exhaust the stack. Events come without recursion."""
    loader = _Loader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark is not None else 1
                    raise _Refused(f"nested deeper than {MAX_DEPTH} levels; a configuration is flat", line)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _too_large(name: str) -> str:
    return f"{name}: larger than {MAX_BYTES // 1024} kB; a configuration is a few lines"


def parse(text: str, name: str) -> Doc:
    """Parse YAML `text`; `name` is what error messages call the file."""
    if len(text) > MAX_BYTES:
        raise ConfigError(_too_large(name))
    try:
        _check_depth(text)
        root = yaml.compose(text, Loader=_Loader)
    except _Refused as exc:
        raise ConfigError(f"{name}:{exc.line}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{name}{line}: broken YAML ({problem}); fix the syntax at that line") from exc
    if root is None:
        return Doc(name, {}, {(): 1})
    lines: dict[PathKey, int] = {}
    try:
        data = _Builder().build(root, lines)
    except _Refused as exc:
        where = f"{_dotted(exc.path)}: " if exc.path else ""
        raise ConfigError(f"{name}:{exc.line}: {where}{exc}") from None
    return Doc(name, data, lines)


def load(path: Path) -> Doc:
    """Read and parse the YAML file at `path`."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # bounded: the path may name a huge file or /dev/zero
        if len(raw) > MAX_BYTES:
            raise ConfigError(_too_large(str(path)))
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file; check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc}); check the file") from exc
    log.debug("loaded %s", path)
    return parse(text, str(path))


_MERGE = "tag:yaml.org,2002:merge"
_INT = "tag:yaml.org,2002:int"
_PREFIX = "tag:yaml.org,2002:"


class _Builder:
    """Plain data from a node graph, with each path's line; the graph may share nodes
    (aliases) or even contain itself, so depth and the values made are counted."""

    def __init__(self) -> None:
        self.loader = yaml.SafeLoader("")
        self.made = 0
        self.open: set[int] = set()  # ids of the collections being built: an alias to one is a loop

    def build(self, node: yaml.Node, lines: dict[PathKey, int], path: PathKey = ()) -> Any:
        line = node.start_mark.line + 1
        lines[path] = line
        self.made += 1
        if self.made > MAX_VALUES:  # named at its top-level key: the path inside may be long
            top = path[:1]
            problem = f"over {MAX_VALUES} values, aliases expanded; a configuration holds far fewer"
            raise _Refused(problem, lines[top], top)
        self._check_tag(node, path)
        if len(path) > MAX_DEPTH:  # an alias inside its own depth, again and again
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels, aliases expanded", line, path[:1])
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.open:
            raise _Refused("an alias refers to itself", line, path)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, lines, (*path, i)) for i, item in enumerate(node.value)]
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._key(key_node)
                out[key] = self.build(value_node, lines, (*path, key))
                # A key's own line beats its value's (a nested mapping starts below it).
                lines[(*path, key)] = key_node.start_mark.line + 1
            return out
        finally:
            self.open.discard(id(node))

    def _check_tag(self, node: yaml.Node, path: PathKey) -> None:
        if node.tag in self.loader.yaml_constructors:
            return
        line = node.start_mark.line + 1
        if node.tag == _MERGE:
            raise _Refused("merge keys (<<) are not supported; write the keys out in full", line)
        tag = "!!" + node.tag[len(_PREFIX) :] if node.tag.startswith(_PREFIX) else node.tag
        raise _Refused(f"the tag {_short(tag)} is not allowed; write plain values", line, path)

    def _key(self, node: yaml.Node) -> str:
        self._check_tag(node, ())
        if not isinstance(node, yaml.ScalarNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
            raise _Refused(f"a key must be plain text, got {kind}", node.start_mark.line + 1)
        return str(node.value)

    def _scalar(self, node: yaml.ScalarNode, path: PathKey) -> Any:
        if node.tag == _INT and sum(c.isdigit() for c in node.value) > 1000:
            problem = f"a number of {sum(c.isdigit() for c in node.value)} digits"
            raise _Refused(f"unreadable value ({problem})", node.start_mark.line + 1, path)
        try:
            return self.loader.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            problem = _short(str(getattr(exc, "problem", None) or exc).splitlines()[0])
            raise _Refused(f"unreadable value ({problem})", node.start_mark.line + 1, path) from exc
