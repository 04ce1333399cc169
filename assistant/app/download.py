"""Fetching voices and models over HTTP(S): the only module that touches the network.

Every file is pinned by its SHA-256. A download streams into `NAME.part` next to
its destination, is checked, and only then renamed into place, so a destination
either is complete and verified or does not exist. Archives are unpacked beside
their target and swapped in whole. An interrupted run leaves at most a `.part`
or a hidden staging folder, which the next run discards before starting over.

A transfer is given up when it is too slow (`Limits`: a server that sends a byte
every few seconds never trips the socket timeout) and an archive when it would
unpack to too much (`MAX_UNPACKED_BYTES`, `MAX_RATIO`, `MAX_MEMBERS`: a zip bomb).
`$BACKSTRETCH_MODELS_URL` points model downloads at a mirror, as
`$BACKSTRETCH_VOICES_URL` does for voices; the pins stay.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import stat
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from assistant import __version__
from assistant.app.progress import NullProgress, Progress, TerminalProgress
from assistant.errors import DownloadError
from assistant.hear.vosk_engine import SMALL_EN_US, ModelEntry, user_model_dir
from assistant.speak import voices

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
ENV_MODELS_URL = "BACKSTRETCH_MODELS_URL"
# What an archive may unpack to: the vosk model is a 40 MB zip of 30 files, 68 MB unpacked.
MAX_UNPACKED_BYTES = 1_000_000_000
MAX_RATIO = 50  # unpacked size over archive size; model files compress about 2 to 1
MAX_MEMBERS = 10_000


@dataclass(frozen=True)
class Limits:
    """How long a transfer may take: a whole one (a 63 MB voice at 17 kB/s), and how slow
    it may be over any window (the socket timeout only catches a server that goes silent)."""

    deadline_s: float = 3600.0
    min_rate_bps: float = 4096.0  # bytes a second, over each window
    window_s: float = 30.0


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _is_pinned(path: Path, sha256: str) -> bool:
    return path.is_file() and _sha256_of(path) == sha256


def _network_error(url: str, exc: BaseException, timeout_s: float) -> DownloadError:
    if isinstance(exc, urllib.error.HTTPError):
        exc.close()  # it holds the response's socket
        return DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; check the address, or try again later")
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return DownloadError(f"{url}: no answer within {timeout_s:g} s; check the network and try again")
    return DownloadError(f"{url}: cannot download ({reason}); check the network and disk space, try again")


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _check_in_the_way(dest: Path) -> None:
    """Refuse before fetching anything when a folder (or a device...) holds dest or its .part."""
    for path in (dest, _part(dest)):
        if path.exists() and not path.is_file():
            kind = "a folder" if path.is_dir() else "something that is no file"
            raise DownloadError(f"{path}: {kind} is in the way; move it away and try again")


class _Pace:
    """Gives a transfer up past its deadline, or when a window of it was too slow."""

    def __init__(self, url: str, limits: Limits, total: int | None) -> None:
        self.url, self.limits, self.total = url, limits, total
        self.started = self.window_start = time.monotonic()
        self.window_bytes = 0

    def check(self, received: int, n: int) -> None:
        now, limits = time.monotonic(), self.limits
        so_far = f"{received} of {self.total} bytes" if self.total is not None else f"{received} bytes"
        if now - self.started > limits.deadline_s:
            raise DownloadError(
                f"{self.url}: not done within {limits.deadline_s:g} s ({so_far}); "
                "check the network and try again"
            )
        self.window_bytes += n
        if now - self.window_start >= limits.window_s:
            if self.window_bytes < limits.min_rate_bps * (now - self.window_start):
                raise DownloadError(
                    f"{self.url}: slower than {limits.min_rate_bps / 1000:g} kB/s for {limits.window_s:g} s "
                    f"({so_far}); check the network, or try again later"
                )
            self.window_start, self.window_bytes = now, 0


def _download(
    url: str, dest: Path, sha256: str, size: int | None, progress: Progress, timeout_s: float, limits: Limits
) -> Path:
    """Stream `url` into dest's `.part` and verify it; return the `.part`, or remove it and raise."""
    part = _part(dest)
    if part.exists():
        log.info("discarding %s left by an interrupted run", part)
    request = urllib.request.Request(url, headers={"User-Agent": f"backstretch/{__version__}"})
    digest = hashlib.sha256()
    received = 0
    expected: int | None = None  # bytes the server announced
    try:
        try:
            # "wb" truncates any stale .part, so an interrupted run is simply started over.
            with urllib.request.urlopen(request, timeout=timeout_s) as response, part.open("wb") as out:
                announced = response.headers.get("Content-Length")
                if announced and announced.isdigit():
                    expected = int(announced)
                progress.start(size if size is not None else expected, dest.name)
                pace = _Pace(url, limits, size if size is not None else expected)
                # read1: what has arrived, at once; read(n) would wait for all n bytes, and a
                # server that drips would never let the pace be checked.
                while chunk := response.read1(CHUNK_BYTES):
                    received += len(chunk)
                    pace.check(received, len(chunk))
                    if size is not None and received > size:
                        raise DownloadError(
                            f"{url}: larger than the pinned {size} bytes, so it was discarded: report it"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                    progress.advance(len(chunk))
                out.flush()
                os.fsync(out.fileno())  # the rename must never expose a file whose data is not on disk
        except (OSError, http.client.HTTPException) as exc:
            raise _network_error(url, exc, timeout_s) from exc
        progress.finish()
        # http.client ends a short body quietly (read() gives b""), so the count is checked here.
        if expected is not None and received < expected:
            raise DownloadError(f"{url}: transfer cut off after {received} of {expected} bytes; try again")
        if size is not None and received != size:
            raise DownloadError(
                f"{url}: got {received} bytes, expected {size}; the file is not what was pinned, "
                "so it was discarded: try again later or report it"
            )
        got = digest.hexdigest()
        if got != sha256:
            raise DownloadError(
                f"{url}: checksum mismatch (expected {sha256[:12]}…, got {got[:12]}…); the file is not "
                "what was pinned, so it was discarded: try again later or report it"
            )
    except BaseException:  # including KeyboardInterrupt: never leave a half file behind
        part.unlink(missing_ok=True)
        raise
    return part


def _check_args(url: str, sha256: str) -> str:
    # Pins come from our own catalogues, so a malformed one is a bug, not a user error.
    if not _SHA256.fullmatch(sha256.lower()):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"{url}: only http:// and https:// addresses can be downloaded")
    return sha256.lower()


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{folder}: cannot create the folder ({exc.strerror}); check the path") from exc


def _move_in(parts: Mapping[Path, Path]) -> None:
    """Rename each verified `.part` onto its destination; on a failure remove what is left."""
    try:
        for dest, part in parts.items():
            try:
                os.replace(part, dest)
            except OSError as exc:
                raise DownloadError(
                    f"{dest}: cannot put it in place ({exc.strerror}); check the folder"
                ) from exc
    finally:
        for part in parts.values():
            part.unlink(missing_ok=True)


def fetch(
    url: str,
    dest: Path,
    sha256: str,
    size: int | None = None,
    progress: Progress | None = None,
    timeout_s: float = 30.0,
    limits: Limits = Limits(),
) -> Path:
    """Make `dest` the file at `url` with this SHA-256 (and size in bytes); no network if it already is."""
    sha256 = _check_args(url, sha256)
    if _is_pinned(dest, sha256):
        log.debug("%s is present and verified", dest)
        return dest
    _check_in_the_way(dest)
    log.info("downloading %s to %s", url, dest)
    _make_folder(dest.parent)
    _move_in({dest: _download(url, dest, sha256, size, progress or NullProgress(), timeout_s, limits)})
    return dest


def install_files(
    files: Mapping[str, tuple[str, str, int | None]],
    target_dir: Path,
    progress: Progress | None = None,
    timeout_s: float = 30.0,
    limits: Limits = Limits(),
) -> list[Path]:
    """Fetch name -> (url, sha256, size) into `target_dir`: all are verified before any is renamed in."""
    pinned = {}
    for name, (url, sha256, size) in files.items():
        if Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        pinned[name] = (url, _check_args(url, sha256), size)
    for name in pinned:
        _check_in_the_way(target_dir / name)
    _make_folder(target_dir)
    parts: dict[Path, Path] = {}
    try:
        for name, (url, sha256, size) in pinned.items():
            dest = target_dir / name
            if not _is_pinned(dest, sha256):
                log.info("downloading %s to %s", url, dest)
                parts[dest] = _download(
                    url, dest, sha256, size, progress or NullProgress(), timeout_s, limits
                )
    except BaseException:
        for part in parts.values():
            part.unlink(missing_ok=True)
        raise
    _move_in(parts)
    return [target_dir / name for name in pinned]


def _check_member(info: zipfile.ZipInfo, root: Path, archive: Path) -> None:
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        problem = "is a symbolic link"
    elif name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        problem = "has an absolute path"
    elif not (root / name).resolve().is_relative_to(root):
        problem = "would land outside the install folder"
    else:
        return
    raise DownloadError(f"{archive}: member {name!r} {problem}; the archive is unsafe, nothing was installed")


def _check_size(members: list[zipfile.ZipInfo], archive: Path) -> None:
    """Refuse an archive that unpacks to too much. The sizes are those its directory
    declares; zipfile writes no more than that of a member (and then fails its CRC)."""
    unpacked = sum(info.file_size for info in members)
    ratio = unpacked / max(archive.stat().st_size, 1)
    if len(members) > MAX_MEMBERS:
        problem = f"{len(members)} files, over {MAX_MEMBERS}"
    elif unpacked > MAX_UNPACKED_BYTES:
        problem = f"unpacks to {unpacked / 1e6:.1f} MB, over {MAX_UNPACKED_BYTES / 1e6:.1f} MB"
    elif ratio > MAX_RATIO:
        problem = f"expands {ratio:.0f} times its size (over {MAX_RATIO})"
    else:
        return
    raise DownloadError(f"{archive}: {problem}; the archive is unsafe, nothing was installed")


def install_zip(archive: Path, target_dir: Path, expect_top: str | None = None) -> Path:
    """Unpack `archive` as `target_dir` (its single top folder if it has one), replacing any old one."""
    parent = target_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    # Staging folders are hidden and next to the target: same file system, so the renames are atomic.
    prefix = f".{target_dir.name}."
    for stale in parent.glob(f"{prefix}*.staging"):
        log.info("removing %s left by an interrupted install", stale)
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, suffix=".staging", dir=parent))
    try:
        unpacked = work / "unpacked"
        unpacked.mkdir()
        root = unpacked.resolve()
        try:
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                _check_size(members, archive)
                for info in members:  # all checked before anything is written
                    _check_member(info, root, archive)
                zf.extractall(unpacked)
        except (OSError, zipfile.BadZipFile) as exc:
            raise DownloadError(f"{archive}: cannot unpack ({exc}); delete it and download again") from exc
        top = list(unpacked.iterdir())
        source = top[0] if len(top) == 1 and top[0].is_dir() else unpacked
        if expect_top is not None and (source is unpacked or source.name != expect_top):
            found = ", ".join(sorted(p.name for p in top)) or "nothing"
            raise DownloadError(
                f"{archive}: expected one folder {expect_top!r} inside, found {found}; report it"
            )
        old = work / "old"
        if target_dir.exists():
            os.replace(target_dir, old)
        try:
            os.replace(source, target_dir)
        except OSError as exc:
            if old.exists():
                os.replace(old, target_dir)
            raise DownloadError(f"{target_dir}: cannot install ({exc}); check permissions") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("installed %s (%d members) as %s", archive.name, len(members), target_dir)
    return target_dir


# -- what can be downloaded ---------------------------------------------------------


def download_voice(name: str, target_dir: Path, progress: Progress) -> Path:
    """Fetch voice `name` from the catalogue into `target_dir` (both files or neither);
    returns the .onnx path."""
    pinned = voices.files(name)
    log.info("downloading voice %s into %s", name, target_dir)
    install_files({f: (p.url, p.sha256, p.size) for f, p in pinned.items()}, target_dir, progress)
    return target_dir / f"{name}.onnx"


def download_model(
    entry: ModelEntry = SMALL_EN_US, target_root: Path | None = None, progress: Progress | None = None
) -> Path:
    """Install vosk model `entry` as `target_root/<name>` (default: the user model dir),
    replacing any older copy; returns the model folder.

    The zip streams into a `.part` beside the models (same file system, so the rename is
    atomic), is verified, is unpacked into a hidden staging folder beside the target
    (members escaping it are refused) and is swapped in with one rename: a model folder
    is either complete or absent, and an interrupted run is started over by the next.
    `$BACKSTRETCH_MODELS_URL` replaces the folder the zip is fetched from (a mirror)."""
    root = target_root if target_root is not None else user_model_dir()
    archive = root / f".{entry.name}.zip"
    mirror = os.environ.get(ENV_MODELS_URL)
    url = f"{mirror.rstrip('/')}/{entry.url.rsplit('/', 1)[-1]}" if mirror else entry.url
    log.info("downloading model %s from %s into %s", entry.name, url, root)
    fetch(url, archive, entry.sha256, entry.size, progress or TerminalProgress())
    try:
        target = install_zip(archive, root / entry.name, expect_top=entry.name)
    finally:
        # Kept or not, a failed unpack of a verified archive (a full disk, an unsafe
        # member) is not fixed by keeping 40 MB around, so it goes either way.
        archive.unlink(missing_ok=True)
    return target
