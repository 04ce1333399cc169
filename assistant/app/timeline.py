"""Where session events go: a JSON Lines timeline and a readable transcript.

The timeline is the one place events become JSON: one object per line, with `t`
(seconds since the session started) and `event` (`heard`, `intent`, `say`, `cut`,
`volume`, `state`), in time order. `record` is the format; README lists its fields.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import IO, Any

from assistant.coach.events import Cut, Event, Heard, Say, State, StateChange, Understood, Volume
from assistant.errors import BackstretchError

log = logging.getLogger(__name__)


def record(event: Event) -> dict[str, Any]:
    """The timeline's JSON object for `event`."""
    match event:
        case Say(t, text, duration_s, kind):
            return {"t": t, "event": "say", "text": text, "duration": duration_s, "kind": kind.value}
        case Cut(t):
            return {"t": t, "event": "cut"}
        case Volume(t, volume):
            return {"t": t, "event": "volume", "volume": volume}
        case StateChange(t, state, set_no, side, rep, done):
            return {"t": t, "event": "state", "state": state.value, "set": set_no, "side": side,
                    "rep": rep, "done": done}  # fmt: skip
        case Heard(t, text, speech_end_s):
            return {"t": t, "event": "heard", "text": text, **_times(t, speech_end_s)}
        case Understood(t, name, slots, speech_end_s):
            return {"t": t, "event": "intent", "name": name, "slots": dict(slots), **_times(t, speech_end_s)}


def _times(t: float, speech_end_s: float | None) -> dict[str, float]:
    """A recognised command's timing: where the speech ended, and when it fired (`t`)."""
    return {} if speech_end_s is None else {"speech_end": speech_end_s, "fired": t}


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
        self._file.write(json.dumps(record(event), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def clock_text(t: float) -> str:
    """`m:ss.s`; rounded to the tenth first, so 59.96 s is 1:00.0, not 0:60.0."""
    minutes, tenths = divmod(round(max(t, 0.0) * 10), 600)
    return f"{minutes:2d}:{tenths / 10:04.1f}"


class Transcript:
    """Prints what is said and heard, one line each, with session times."""

    def __init__(self, out: IO[str], states: bool = False) -> None:
        self.out = out
        self.states = states

    def write(self, event: Event) -> None:
        when = clock_text(event.t)
        match event:
            case Say(text=text):
                line = f"{when}  coach  {text}"
            case Heard(text=text):
                line = f"{when}  you    {text}"
            case Understood(name=name, slots=slots):
                line = f"{when}         -> {name}" + (f" {dict(slots)}" if slots else "")
            case Cut():
                line = f"{when}         (cut off)"
            case Volume(volume=volume):
                line = f"{when}         (volume {volume:.1f})"
            case StateChange(state=state, done=done) if self.states or state is not State.RUNNING:
                line = f"{when}         [{state.value}, done {done}]"
            case _:
                return
        print(line, file=self.out, flush=True)

    def close(self) -> None:
        pass
