"""WAV files in and out: any rate, channel count, 16-, 24- or 32-bit integer or 32-bit
float in (channels averaged, as mono int16); mono 16-bit out, written atomically."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import struct
import tempfile
from pathlib import Path

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


def read_wav(path: Path) -> Audio:
    """Read a WAV file as mono int16 at its own rate."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot read it ({exc.strerror}); check the path") from exc
    return decode_wav(blob, str(path))


def decode_wav(blob: bytes, name: str) -> Audio:
    """The WAV file `blob` as mono int16 at its own rate; `name` is what errors call it."""
    try:
        return _parse_wav(blob)
    except (ValueError, struct.error) as exc:
        raise AudioFileError(
            f"{name}: not a readable WAV file ({exc}); use 16- or 32-bit PCM or 32-bit float WAV"
        ) from exc


def _parse_wav(blob: bytes) -> Audio:
    if blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError("no RIFF/WAVE header")
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(blob):
        chunk, size = struct.unpack_from("<4sI", blob, pos)
        body = blob[pos + 8 : pos + 8 + size]
        if chunk == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", body)
            if fmt[0] == 0xFFFE and len(body) >= 26:
                fmt = (struct.unpack_from("<H", body, 24)[0], *fmt[1:])  # the sub-format's tag
        elif chunk == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError("no fmt or data chunk")
    tag, channels, rate, _, _, bits = fmt
    kind = _FORMATS.get((tag, bits))
    if kind is None or channels < 1 or not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise ValueError(f"unsupported format tag {tag}, {bits} bits, {channels} channels, {rate} Hz")
    width = bits // 8
    frames = len(data) // (width * channels)
    data = data[: frames * width * channels]
    if kind == "<i2" and channels == 1:  # the common case, without a float copy 4 times its size
        return Audio(np.frombuffer(data, "<i2").astype(np.int16), rate)
    if kind == "i24":
        raw = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        values = ((raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)) << 8) >> 8
        floats = values.astype(np.float64) / 8388608.0
    elif kind == "<f4":
        # NaN and infinity are no sound: silence and full scale, not a cast warning.
        floats = np.nan_to_num(
            np.frombuffer(data, "<f4").astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0
        )
    else:
        floats = np.frombuffer(data, kind).astype(np.float64) / (2 ** (bits - 1))
    mono = floats.reshape(frames, channels).mean(axis=1)
    samples = np.clip(np.rint(mono * 32768.0), -32768, 32767).astype(np.int16)
    return Audio(samples, rate)


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
