"""The piper voices `backstretch voices download` can fetch, each file pinned by SHA-256.

The catalogue is `assistant/data/voices.yaml`. `$BACKSTRETCH_VOICES_URL` replaces
its base URL (a mirror, or a server on 127.0.0.1 in the tests); the pins stay.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from assistant import yamldoc
from assistant.download import install_files
from assistant.progress import Progress
from assistant.voices import VoiceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pinned:
    """One file to fetch: where from, its SHA-256 and size in bytes."""

    url: str
    sha256: str
    size: int


def _doc() -> yamldoc.Doc:
    return yamldoc.load(Path(str(importlib.resources.files("assistant") / "data" / "voices.yaml")))


def names() -> list[str]:
    return sorted(_doc().mapping(("voices",)))


def files(name: str) -> dict[str, Pinned]:
    """The two files of voice `name`: `<name>.onnx` and `<name>.onnx.json`."""
    doc = _doc()
    if name not in doc.mapping(("voices",)):
        known = ", ".join(names())
        raise VoiceError(f"no voice {name!r} in the download catalogue; known: {known}")
    base = os.environ.get("BACKSTRETCH_VOICES_URL") or doc.text(("base_url",))
    language, speaker, quality = name.split("-", 2)
    folder = f"{base.rstrip('/')}/{language.split('_')[0]}/{language}/{speaker}/{quality}"
    out: dict[str, Pinned] = {}
    for kind, suffix in (("onnx", ".onnx"), ("json", ".onnx.json")):
        path = ("voices", name, kind)
        doc.mapping(path, ("sha256", "size"))
        out[name + suffix] = Pinned(
            f"{folder}/{name}{suffix}",
            doc.text((*path, "sha256")),
            doc.integer((*path, "size"), 0, 1, 10**10),
        )
    return out


def download(name: str, target_dir: Path, progress: Progress) -> Path:
    """Fetch voice `name` into `target_dir` (both files or neither); returns the .onnx path."""
    pinned = files(name)
    log.info("downloading voice %s into %s", name, target_dir)
    install_files({f: (p.url, p.sha256, p.size) for f, p in pinned.items()}, target_dir, progress)
    return target_dir / f"{name}.onnx"
