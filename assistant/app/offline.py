"""Offline runs on the virtual clock: a `--script` of typed lines, or a recording as the microphone.

A script has lines `SECONDS TEXT`, "at that session time the user says TEXT".
Blank lines and lines starting with `#` are ignored. SECONDS is a number
(`12.5`) or minutes and seconds (`1:30`, seconds 00 to 59), in plain digits, at
most `TIME_DIGITS` before the point and after it, and at most a day (`MAX_SCRIPT_S`).
Every TEXT must be a command.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.coach.events import State
from assistant.coach.intents import IntentSet
from assistant.coach.session import Session
from assistant.errors import ScriptError
from assistant.hear.capture import Chunk
from assistant.hear.listen import Listener

log = logging.getLogger(__name__)
_LINE = re.compile(r"^\s*(\S+)\s+(\S.*?)\s*$")
# ASCII digits only (\d takes any script's), and few of them: int() refuses over 4,300.
TIME_DIGITS = 9
MAX_SCRIPT_S = 24 * 3600.0  # a session lasts hours, not years (and a WAV holds about 27 h)
_TIME = re.compile(r"(?:([0-9]+):)?([0-9]+)(?:\.([0-9]*))?")


@dataclass(frozen=True)
class Utterance:
    t: float
    text: str


def parse_time(text: str) -> float:
    """Seconds from `12.5` or `m:ss` (`1:30`, `1:30.5`); ValueError saying what is wrong."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"time {text[:20]!r} is no number of seconds")
    minutes, whole, fraction = match.groups()
    if any(len(part) > TIME_DIGITS for part in (minutes or "", whole, fraction or "")):
        raise ValueError(f"time {text[:20]!r} has over {TIME_DIGITS} digits")
    if minutes is not None and len(whole) != 2:
        raise ValueError(f"time {text!r}: the seconds of m:ss must be two digits")
    if minutes is not None and int(whole) >= 60:
        raise ValueError(f"time {text!r}: the seconds of m:ss must be 00 to 59")
    seconds = int(minutes or 0) * 60 + float(f"{whole}.{fraction or 0}")
    if seconds > MAX_SCRIPT_S:
        raise ValueError(f"time {text[:20]!r} is over {MAX_SCRIPT_S / 3600:g} hours into a session")
    return seconds


def parse(text: str, name: str, intents: IntentSet) -> list[Utterance]:
    out: list[Utterance] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match or not (match.group(1)[0].isdigit() or match.group(1)[0] in "+-."):
            shown = line.strip()[:40]
            raise ScriptError(f"{name}:{number}: expected 'SECONDS TEXT' (like '12.5 pause'), got {shown!r}")
        when, said = match.groups()
        try:
            t = parse_time(when)
        except ValueError as exc:
            raise ScriptError(f"{name}:{number}: {exc}; write SECONDS as 12.5 or m:ss as 1:30") from None
        if out and t < out[-1].t:
            raise ScriptError(f"{name}:{number}: time {t:g} s comes before the line above ({out[-1].t:g} s)")
        if intents.match(said) is None:
            raise ScriptError(
                f"{name}:{number}: {said!r} is no command; `backstretch phrases` lists what can be said"
            )
        out.append(Utterance(t, said))
    return out


def load(path: Path, intents: IntentSet) -> list[Utterance]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{path}: cannot read the script ({exc}); check the path") from exc
    return parse(text, str(path), intents)


def run_audio(session: Session, listener: Listener, chunks: Iterable[Chunk]) -> None:
    """Recorded audio as the microphone, on the virtual clock its samples define; then
    the session runs to its end."""
    end = 0.0
    for chunk in chunks:
        for command in listener.feed(chunk):
            session.hear(command.text, command.fired_s, command.speech_end_s)
        session.run_until(chunk.end_s)
        end = chunk.end_s
    for command in listener.flush(end):
        session.hear(command.text, command.fired_s, command.speech_end_s)
    session.run_until(math.inf)
    session.close()


def run_script(session: Session, script: Sequence[Utterance]) -> None:
    """Play a script on the virtual clock, then run the session to its end."""
    for said in script:
        session.hear(said.text, said.t)
    session.run_until(math.inf)
    if session.dialogue.state is State.PAUSED:
        log.info("the script ended while paused")
    session.close()
