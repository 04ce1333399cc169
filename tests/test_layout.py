"""The layout shows the pipeline: four rooms that import in one direction, and no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import assistant

PACKAGE = Path(assistant.__file__).parent
# A room may import the rooms before it, never the ones after: the coach is pure and
# knows no device; speaking needs the coach's events; hearing needs the coach's speech
# track (its gate) and the speaker's devices; the app puts them all together.
ROOMS = ("coach", "speak", "hear", "app")
BASE = {"assistant", "assistant.errors", "assistant.pcm"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports (at any level,
    TYPE_CHECKING blocks and function bodies included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, as the list of modules around it, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycle() -> None:
    assert find_cycle(import_graph()) == []


def test_rooms_import_in_one_direction() -> None:
    wrong = []
    for module, imports in import_graph().items():
        parts = module.split(".")
        room = parts[1] if len(parts) > 2 else None
        if room is None:
            continue
        allowed = set(ROOMS[: ROOMS.index(room) + 1])
        for target in imports:
            if target in BASE:
                continue
            target_room = target.split(".")[1]
            if target_room not in allowed:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_shared_audio_types_import_nothing_of_the_project() -> None:
    assert import_graph()["assistant.pcm"] == set()
    assert import_graph()["assistant.errors"] == set()


def test_ls_assistant_shows_the_stages() -> None:
    entries = {p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__"))}
    assert {"coach", "hear", "speak", "app"} <= entries
    assert {p for p in entries if p.endswith(".py")} == {"__init__.py", "__main__.py", "errors.py", "pcm.py"}
