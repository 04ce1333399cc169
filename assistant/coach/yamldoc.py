"""YAML files read with their line numbers, so every error can name file, line and key.

`load()` parses with the safe loader and keeps, for each key path, the line it
stands on; `Doc` hands out typed values by dotted path and raises `ConfigError`
lines such as ``config.yaml:7: pace.inhale_s: expected a number, got 'slow'``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assistant.errors import ConfigError

log = logging.getLogger(__name__)

PathKey = tuple[str | int, ...]


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
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
            raise self.error(path, f"must be between {low:g} and {high:g}, got {value:g}")
        return float(value)

    def integer(self, path: PathKey, default: int, low: int, high: int) -> int:
        value = self.get(path)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"expected a whole number, got {_kind(value)}")
        if not low <= value <= high:
            raise self.error(path, f"must be between {low} and {high}, got {value}")
        return int(value)


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def parse(text: str, name: str) -> Doc:
    """Parse YAML `text`; `name` is what error messages call the file."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{name}{line}: broken YAML ({problem}); fix the syntax at that line") from exc
    if root is None:
        return Doc(name, {}, {(): 1})
    lines: dict[PathKey, int] = {}
    try:
        data = _construct(yaml.SafeLoader(""), root, (), lines)
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: unreadable YAML ({exc}); fix the file") from exc
    return Doc(name, data, lines)


def load(path: Path) -> Doc:
    """Read and parse the YAML file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file; check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc}); check the file") from exc
    log.debug("loaded %s", path)
    return parse(text, str(path))


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(loader.construct_object(key_node))
            out[key] = _construct(loader, value_node, (*path, key), lines)
            # A key's own line beats its value's (a nested mapping starts below it).
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node)
