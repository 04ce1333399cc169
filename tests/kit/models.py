"""The English vosk model for tests and bench: vosk-model-small-en-us-0.15 from the AAR
that Alpha Cephei publishes on Maven Central, unpacked by `make vosk-model`
(tools/vosk_model.py) into ~/.cache/backstretch-dev, or wherever
$BACKSTRETCH_TEST_VOSK_MODEL points.

The place is worked out when this module is imported: the tests' session fixture points
$XDG_CACHE_HOME at a private folder later, and the model is not in there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "BACKSTRETCH_TEST_VOSK_MODEL"
FETCH = "make vosk-model"
VERSION = "0.3.45"


def _default() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "backstretch-dev" / f"vosk-model-en-{VERSION}"


ENGLISH: Path = Path(os.environ[ENV]) if os.environ.get(ENV) else _default()


def english_model() -> Path | None:
    """The unpacked English model, or None where it has not been fetched."""
    return ENGLISH if (ENGLISH / "am" / "final.mdl").is_file() else None


def require_english_model() -> Path:
    """The English model; where it is missing, a failure in CI (which fetches it) and
    elsewhere a skip that names the one command that fetches it."""
    model = english_model()
    if model is not None:
        return model
    message = f"the English vosk model is not at {ENGLISH}: run `{FETCH}`"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)
