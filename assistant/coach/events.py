"""What a session produces: the events every sink receives, in time order.

Each event is a dict with `t` (seconds since the session started) and `event`
(`heard`, `intent`, `say`, `cut`, `volume`, `state`).
"""

from __future__ import annotations

from typing import Any, Protocol

from assistant.coach.dialogue import Action, Cut, Say, StateChange, Volume

Event = dict[str, Any]


def record(action: Action) -> Event:
    """The timeline record of a dialogue action."""
    if isinstance(action, Say):
        return {
            "t": action.t,
            "event": "say",
            "text": action.text,
            "duration": action.duration_s,
            "kind": action.kind,
        }
    if isinstance(action, Cut):
        return {"t": action.t, "event": "cut"}
    if isinstance(action, Volume):
        return {"t": action.t, "event": "volume", "volume": action.volume}
    assert isinstance(action, StateChange)
    return {
        "t": action.t,
        "event": "state",
        "state": action.state.value,
        "set": action.set_no,
        "side": action.side,
        "rep": action.rep,
        "done": action.done,
    }


class Sink(Protocol):
    def write(self, event: Event) -> None: ...

    def close(self) -> None: ...
