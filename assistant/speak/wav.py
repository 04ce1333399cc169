"""WAV files in and out: any rate, channel count, 16-, 24- or 32-bit integer or 32-bit
float in (channels averaged, as mono int16); mono 16-bit out, written atomically."""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from assistant.errors import AudioFileError
from assistant.pcm import Audio, Samples

log = logging.getLogger(__name__)


def encode_wav(audio: Audio) -> bytes:
    """Mono 16-bit WAV bytes: the header and the samples."""
    data = audio.samples.astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, 1,
        audio.rate_hz, audio.rate_hz * 2, 2, 16, b"data", len(data),
    )  # fmt: skip
    return header + data


def write_wav(path: Path, audio: Audio) -> None:
    """Write mono 16-bit WAV atomically (a temp file renamed into place); a failed write
    (a full disk) leaves neither the file nor the temp file."""
    blob = encode_wav(audio)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; audio the user asked for is not
        os.replace(tmp, path)
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot write the WAV file ({exc.strerror}); check the path") from exc
    finally:
        if tmp is not None and os.path.lexists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)


MIN_RATE_HZ, MAX_RATE_HZ = 1000, 384_000  # what any recording or device uses
_FORMATS = {(1, 16): "<i2", (1, 24): "i24", (1, 32): "<i4", (3, 32): "<f4", (0xFFFE, 16): "<i2",
            (0xFFFE, 24): "i24", (0xFFFE, 32): "<i4"}  # fmt: skip


@dataclass(frozen=True)
class WavFormat:
    """What a WAV file's header says: how to read its samples, and where they are."""

    kind: str  # the numpy type of a sample ("i24": 3 little-endian bytes)
    channels: int
    rate_hz: int
    width: int  # bytes per sample
    data_at: int  # where the samples start in the file
    frames: int  # whole frames in the file (a size past the end, as streaming recorders write, is cut)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


def _scan(file: BinaryIO, size: int) -> WavFormat:
    """Read the chunk headers only (the samples stay on disk): ValueError when it is no WAV
    this reader takes."""
    head = file.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ValueError("no RIFF/WAVE header")
    pos, fmt, data = 12, None, None
    while pos + 8 <= size and (fmt is None or data is None):
        file.seek(pos)
        chunk, length = struct.unpack("<4sI", file.read(8))
        if chunk == b"fmt ":
            body = file.read(min(length, 64))
            fmt = struct.unpack_from("<HHIIHH", body)
            if fmt[0] == 0xFFFE and len(body) >= 26:
                fmt = (struct.unpack_from("<H", body, 24)[0], *fmt[1:])  # the sub-format's tag
        elif chunk == b"data":
            data = (pos + 8, min(length, size - pos - 8))
        pos += 8 + length + (length & 1)
    if fmt is None or data is None:
        raise ValueError("no fmt or data chunk")
    tag, channels, rate, _, _, bits = fmt
    kind = _FORMATS.get((tag, bits))
    if kind is None or channels < 1 or not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise ValueError(f"unsupported format tag {tag}, {bits} bits, {channels} channels, {rate} Hz")
    width = bits // 8
    return WavFormat(kind, channels, rate, width, data[0], data[1] // (width * channels))


def _decode(data: bytes, fmt: WavFormat) -> Samples:
    """Whole frames of `fmt` as mono int16 (channels averaged)."""
    frames = len(data) // fmt.frame_bytes
    data = data[: frames * fmt.frame_bytes]
    if fmt.kind == "<i2" and fmt.channels == 1:  # the common case, without a float copy 4 times its size
        return np.frombuffer(data, "<i2").astype(np.int16)
    if fmt.kind == "i24":
        raw = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        values = ((raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)) << 8) >> 8
        floats = values.astype(np.float64) / 8388608.0
    elif fmt.kind == "<f4":
        # NaN and infinity are no sound: silence and full scale, not a cast warning.
        floats = np.nan_to_num(
            np.frombuffer(data, "<f4").astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0
        )
    else:
        floats = np.frombuffer(data, fmt.kind).astype(np.float64) / (2 ** (fmt.width * 8 - 1))
    mono = floats.reshape(frames, fmt.channels).mean(axis=1)
    out: Samples = np.clip(np.rint(mono * 32768.0), -32768, 32767).astype(np.int16)
    return out


def _unreadable(name: str, exc: Exception) -> AudioFileError:
    return AudioFileError(
        f"{name}: not a readable WAV file ({exc}); use 16- or 32-bit PCM or 32-bit float WAV"
    )


def _read(file: BinaryIO, size: int, name: str) -> Audio:
    try:
        fmt = _scan(file, size)
        file.seek(fmt.data_at)
        return Audio(_decode(file.read(fmt.frames * fmt.frame_bytes), fmt), fmt.rate_hz)
    except (ValueError, struct.error) as exc:
        raise _unreadable(name, exc) from exc


def read_wav(path: Path) -> Audio:
    """Read a WAV file as mono int16 at its own rate."""
    try:
        with path.open("rb") as file:
            return _read(file, os.fstat(file.fileno()).st_size, str(path))
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot read it ({exc.strerror}); check the path") from exc


def decode_wav(blob: bytes, name: str) -> Audio:
    """The WAV file `blob` as mono int16 at its own rate; `name` is what errors call it."""
    return _read(io.BytesIO(blob), len(blob), name)


def stream_wav(path: Path, block_frames: int = 1 << 16) -> tuple[int, Iterator[Samples]]:
    """A WAV file's rate, and its samples as mono int16 a block at a time: memory stays flat
    however long the recording (two hours at 48 kHz stereo are 1.3 GB on disk)."""
    try:
        file = path.open("rb")
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot read it ({exc.strerror}); check the path") from exc
    try:
        fmt = _scan(file, os.fstat(file.fileno()).st_size)
    except (ValueError, struct.error) as exc:
        file.close()
        raise _unreadable(str(path), exc) from exc
    except OSError as exc:
        file.close()
        raise AudioFileError(f"{path}: cannot read it ({exc.strerror}); check the path") from exc

    def blocks() -> Iterator[Samples]:
        with file:
            file.seek(fmt.data_at)
            left = fmt.frames
            while left > 0:
                n = min(left, block_frames)
                try:
                    data = file.read(n * fmt.frame_bytes)
                except OSError as exc:
                    raise AudioFileError(f"{path}: cannot read it ({exc.strerror})") from exc
                if len(data) < fmt.frame_bytes:
                    return
                yield _decode(data, fmt)
                left -= n

    return fmt.rate_hz, blocks()


MAX_DATA_BYTES = 0xFFFFFFFF - 36  # a RIFF file's sizes are 32-bit: about 27 hours at 22,050 Hz


class WavWriter:
    """A mono 16-bit WAV written as it goes, for audio too long to hold: blocks are appended
    to a temp file beside `path`, which is renamed into place by `close()` (its sizes
    filled in), or removed by `abort()` (or any failure), so `path` is whole or untouched."""

    def __init__(self, path: Path, rate_hz: int) -> None:
        self.path = path
        self.rate_hz = rate_hz
        self.frames = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise self._error(exc) from exc
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        atexit.register(self.abort)  # a run that dies on the way (Ctrl-C) leaves no temp file
        self._write(self._header(0))

    def _header(self, data_bytes: int) -> bytes:
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, 1,
            self.rate_hz, self.rate_hz * 2, 2, 16, b"data", data_bytes,
        )  # fmt: skip

    def _error(self, exc: OSError) -> AudioFileError:
        return AudioFileError(f"{self.path}: cannot write the WAV file ({exc.strerror}); check the path")

    def _write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise self._error(exc) from exc

    def write(self, samples: Samples) -> None:
        """Append `samples` (mono int16)."""
        if (self.frames + len(samples)) * 2 > MAX_DATA_BYTES:
            self.abort()
            hours = MAX_DATA_BYTES / 2 / self.rate_hz / 3600
            raise AudioFileError(f"{self.path}: longer than a WAV file can hold ({hours:.0f} h); render less")
        self._write(np.asarray(samples, dtype="<i2").tobytes())
        self.frames += len(samples)

    def close(self) -> None:
        """Fill in the sizes and move the file into place."""
        try:
            self._file.seek(0)
            self._file.write(self._header(self.frames * 2))
            self._file.close()
            os.chmod(self._tmp, 0o644)  # mkstemp makes it private; audio the user asked for is not
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise self._error(exc) from exc
        atexit.unregister(self.abort)

    def abort(self) -> None:
        """Give up: the temp file goes, `path` is untouched."""
        atexit.unregister(self.abort)
        self._file.close()
        self._tmp.unlink(missing_ok=True)
