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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.coach.events import State
from assistant.coach.intents import IntentSet
from assistant.coach.session import Session
from assistant.errors import ScriptError
from assistant.hear.align import LiveEcho
from assistant.hear.capture import Chunk
from assistant.hear.echo import FRAME_SAMPLES, Canceller, EchoJudge
from assistant.hear.listen import Listener
from assistant.pcm import RATE_HZ
from assistant.speak.render import OutputTrack

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


STAMP_S = 1000.0  # the stamps LiveEcho is given for the session's 0 s (a stamp of 0 is "no time")


class OfflineEcho:
    """Echo cancellation on the virtual clock: the reference is the coach's own output as
    the session renders it (`output`, a sink of the session at 16 kHz), so a recording of
    a live session, or a simulated room, has the coach's voice taken out.

    The capture goes through in 10 ms frames, each with the reference one frame earlier:
    when a frame is cleaned the session has run to its start, so every sample of that
    reference has been decided (a cue starting within the frame is not known yet). The
    canceller finds the real delay itself; one frame less is still causal for any device
    latency over 10 ms. It runs through the live path's `LiveEcho` (assistant/hear/align.py),
    given the output as it is decided and the capture's frames, both stamped by the virtual
    clock: so a recording on another clock than the session's (a USB microphone's, up to
    +-200 ppm) has its drift followed as live. As live, the capture is heard as it is until
    the canceller has learnt the echo (`EchoJudge`)."""

    def __init__(self, canceller: Canceller, output: OutputTrack) -> None:
        if output.rate_hz != RATE_HZ:
            raise ValueError(f"the echo reference must be at {RATE_HZ} Hz, not {output.rate_hz}")
        self.output = output
        self.live = LiveEcho(canceller, ahead_s=-FRAME_SAMPLES / RATE_HZ, offline=True)
        self._pending = np.zeros(0, np.int16)
        self._done = 0  # samples of capture handed out
        self._given = 0  # samples of output handed to `live`

    @property
    def judge(self) -> EchoJudge:
        return self.live.judge

    def frames(self, chunk: Chunk) -> Iterator[Chunk]:
        """`chunk` in whole 10 ms frames (the rest waits for the next chunk), uncleaned."""
        self._pending = np.concatenate([self._pending, chunk.samples])
        whole = len(self._pending) - len(self._pending) % FRAME_SAMPLES
        frames, self._pending = self._pending[:whole], self._pending[whole:]
        for i in range(0, whole, FRAME_SAMPLES):
            self._done += FRAME_SAMPLES
            yield Chunk(frames[i : i + FRAME_SAMPLES], self._done / RATE_HZ)

    def clean(self, frame: Chunk) -> Chunk:
        """`frame` (from `frames`) with the coach's echo removed; call it once the session
        has run to the frame's start."""
        start = round(frame.end_s * RATE_HZ) - FRAME_SAMPLES
        if start > self._given:  # the output decided since: up to the frame's start
            stamp = STAMP_S + self._given / RATE_HZ
            self.live.played(stamp, stamp, self.output.samples(self._given, start), RATE_HZ, self._given)
            self.output.forget_before(start)
            self._given = start
        stamp = STAMP_S + start / RATE_HZ
        heard = self.live.clean(Chunk(frame.samples, frame.end_s, stamp, stamp))
        return heard if heard.cancelled else frame


def run_audio(
    session: Session, listener: Listener, chunks: Iterable[Chunk], echo: OfflineEcho | None = None
) -> None:
    """Recorded audio as the microphone, on the virtual clock its samples define; then
    the session runs to its end. With `echo`, the coach's own voice is cancelled first."""
    end = 0.0
    for chunk in chunks:
        for piece in [chunk] if echo is None else echo.frames(chunk):
            heard = piece if echo is None else echo.clean(piece)
            for command in listener.feed(heard):
                session.hear(command.text, command.fired_s, command.speech_end_s)
            session.run_until(piece.end_s)
            end = piece.end_s
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
