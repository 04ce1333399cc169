"""Progress for long jobs (cue synthesis, downloads): a bar on a terminal, two lines elsewhere."""

from __future__ import annotations

import sys
from typing import IO, Protocol


class Progress(Protocol):
    """Told about one job at a time: its size (None if unknown), then each step of it."""

    def start(self, total: int | None, label: str) -> None: ...
    def advance(self, n: int) -> None: ...
    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing."""

    def start(self, total: int | None, label: str) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


class TerminalProgress:
    """A bar redrawn in place on a TTY; elsewhere (CI logs, pipes) just a start and a finish line.

    `unit` "bytes" shows amounts in MB; anything else shows plain counts.
    """

    def __init__(self, stream: IO[str] | None = None, width: int = 30, unit: str = "bytes") -> None:
        self._stream = stream or sys.stderr
        self._width = width
        self._unit = unit
        self._tty = self._stream.isatty()
        self._total: int | None = None
        self._label = ""
        self._done = 0
        self._drawn: int | None = None

    def _amount(self, n: int) -> str:
        return f"{n / 1e6:.1f} MB" if self._unit == "bytes" else f"{n} {self._unit}".rstrip()

    def start(self, total: int | None, label: str) -> None:
        self._total, self._label, self._done, self._drawn = total, label, 0, None
        if self._tty:
            self._draw()
        else:
            size = f" ({self._amount(total)})" if total is not None else ""
            self._write(f"{label}: started{size}\n")

    def advance(self, n: int) -> None:
        self._done += n
        if self._tty:
            self._draw()

    def finish(self) -> None:
        self._write("\n" if self._tty else f"{self._label}: done, {self._amount(self._done)}\n")

    def _draw(self) -> None:
        # Redraw only when the figure shown changes: a 60 MB model is ~1000 chunks.
        if self._total:
            key = min(100, self._done * 100 // self._total)
            filled = self._width * key // 100
            bar = f"[{'#' * filled}{'.' * (self._width - filled)}]"
            line = f"{self._label} {bar} {key:3d}% {self._amount(self._done)}"
        else:
            key = self._done // 100_000 if self._unit == "bytes" else self._done
            line = f"{self._label} {self._amount(self._done)}"
        if key != self._drawn:
            self._drawn = key
            self._write(f"\r{line}")

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


class MilestoneProgress:
    """Whole lines at the start, at each quarter and at the end: for a job running in the
    background while other lines are printed (a bar redrawn in place would tangle with them)."""

    def __init__(self, stream: IO[str] | None = None, steps: int = 4) -> None:
        self._stream = stream or sys.stderr
        self._steps = steps
        self._total: int | None = None
        self._label = ""
        self._done = 0
        self._shown = 0  # milestones printed

    def start(self, total: int | None, label: str) -> None:
        self._total, self._label, self._done, self._shown = total, label, 0, 0
        self._write(f"{label}: started, in the background")

    def advance(self, n: int) -> None:
        self._done += n
        if self._total:
            reached = min(self._steps - 1, self._done * self._steps // self._total)
            if reached > self._shown:
                self._shown = reached
                self._write(f"{self._label}: {self._done} of {self._total}")

    def finish(self) -> None:
        self._write(f"{self._label}: done")

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()
