"""Speech models `backstretch models download` can install, each archive pinned by SHA-256.

A model is one zip with one top folder (`vosk-model-small-en-us-0.15/am/...`),
unpacked as `$XDG_DATA_HOME/backstretch/models/<name>/`, where `stt_vosk.find_model`
looks for it. The network and unpacking are `download.fetch` and `download.install_zip`:
the zip streams into a `.part`, is verified, is unpacked into a hidden staging
folder beside the target (members escaping it are refused) and is swapped in
with one rename, so a model folder is either complete or absent, and an
interrupted run is simply started over by the next one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from assistant.download import fetch, install_zip
from assistant.progress import Progress, TerminalProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    """One downloadable model archive."""

    name: str  # the archive's top folder, and the installed folder's name
    url: str
    sha256: str  # of the zip
    size: int | None = None  # of the zip in bytes, when known; None: checked by SHA-256 alone
    description: str = ""


# The pin is the one public install scripts use for this archive (the official
# site publishes no checksums); the size is left to the SHA-256.
SMALL_EN_US = ModelEntry(
    name="vosk-model-small-en-us-0.15",
    url="https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip",
    sha256="30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
    description="vosk, US English, small (a 40 MB download)",
)

CATALOGUE = {entry.name: entry for entry in (SMALL_EN_US,)}


def user_model_dir() -> Path:
    """Where downloaded models live: `$XDG_DATA_HOME/backstretch/models`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "backstretch" / "models"


def download(
    entry: ModelEntry = SMALL_EN_US, target_root: Path | None = None, progress: Progress | None = None
) -> Path:
    """Install `entry` as `target_root/<name>` (default: the user model dir), replacing any
    older copy; returns the model folder. `progress` defaults to a bar on stderr."""
    root = target_root if target_root is not None else user_model_dir()
    # The archive sits hidden beside the models (same file system, so fetch's rename
    # is atomic) and is removed once unpacked: the model folder is what is kept.
    archive = root / f".{entry.name}.zip"
    log.info("downloading model %s into %s", entry.name, root)
    fetch(entry.url, archive, entry.sha256, entry.size, progress or TerminalProgress())
    try:
        target = install_zip(archive, root / entry.name, expect_top=entry.name)
    finally:
        # Kept or not, a failed unpack of a verified archive (a full disk, an unsafe
        # member) is not fixed by keeping 40 MB around, so it goes either way.
        archive.unlink(missing_ok=True)
    return target
