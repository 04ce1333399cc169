"""Where session events go: a JSON Lines timeline and a readable transcript.

Each event is a dict with `t` (seconds since the session started) and `event`
(`heard`, `intent`, `say`, `cut`, `volume`, `state`); sinks receive them in time order.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import IO

from assistant.coach.events import Event
from assistant.errors import BackstretchError

log = logging.getLogger(__name__)


class TimelineFile:
    """Writes events as JSON Lines, flushed per line so a crash keeps what happened."""

    def __init__(self, path: Path) -> None:
        try:
            self._file: IO[str] = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise BackstretchError(
                f"{path}: cannot write the timeline ({exc.strerror}); check the path"
            ) from exc

    def write(self, event: Event) -> None:
        # Full float precision: a renderer places cues at round(t * rate), to the sample.
        self._file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def clock_text(t: float) -> str:
    minutes, seconds = divmod(max(t, 0.0), 60)
    return f"{int(minutes):2d}:{seconds:04.1f}"


class Transcript:
    """Prints what is said and heard, one line each, with session times."""

    def __init__(self, out: IO[str], states: bool = False) -> None:
        self.out = out
        self.states = states

    def write(self, event: Event) -> None:
        kind = event["event"]
        when = clock_text(event["t"])
        if kind == "say":
            line = f"{when}  coach  {event['text']}"
        elif kind == "heard":
            line = f"{when}  you    {event['text']}"
        elif kind == "intent":
            line = f"{when}         -> {event['name']}" + (f" {event['slots']}" if event["slots"] else "")
        elif kind == "cut":
            line = f"{when}         (cut off)"
        elif kind == "volume":
            line = f"{when}         (volume {event['volume']:.1f})"
        elif self.states or event["state"] != "running":
            line = f"{when}         [{event['state']}, done {event['done']}]"
        else:
            return
        print(line, file=self.out, flush=True)

    def close(self) -> None:
        pass
