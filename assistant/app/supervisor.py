"""The live supervisor: microphone, recogniser, dialogue and voice together, in real time.

Threads rather than asyncio: PortAudio calls back on its own threads, and the
recognisers and piper do their work in C with the GIL released; none of them is
async. Who does what:

    output callback (PortAudio)   mixes the scheduled cues; holds a lock for microseconds
    input callback (PortAudio)    copies each 30 ms block into a queue, nothing more (when
                                  one device does both, one duplex callback does both sides,
                                  in the output's 46 ms blocks: hear/duplex.py)
    listening thread              queue -> resampling -> echo canceller -> recogniser -> Listener
                                  -> commands (the output callback hands the canceller its blocks)
    stdin thread (--text)         typed lines -> commands
    main thread                   the only one that touches the dialogue: commands in the
                                  order they came, from one queue; the clock; the watchdogs

The first words: hands-free, the coach greets (`GREETING`) as soon as it starts, unless it
offers to carry on from a saved place; the cue cache's worker makes that line first and the
rest of the cues behind it (app/wiring.py), so neither waits for the whole cache.

Ctrl-C and SIGTERM reach the main thread as KeyboardInterrupt: the session falls
silent, keeps its place (saved by the store), and the program ends cleanly.
"""

from __future__ import annotations

import logging
import math
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO, Protocol

from assistant.app.offline import Utterance
from assistant.app.store import ProgressStore
from assistant.coach.events import State
from assistant.coach.intents import Reply
from assistant.coach.session import Session
from assistant.errors import DeviceError
from assistant.hear.align import LiveEcho
from assistant.hear.capture import Microphone
from assistant.hear.listen import Listener
from assistant.speak.playback import Player

log = logging.getLogger(__name__)

MIC_RETRY_S = 1.0  # how often to try a vanished microphone again
OFFSET_WINDOW_S = 10.0  # the microphone's offset is the least lag seen in this much audio
GREETING: Reply = "hint"  # hands-free, the first thing said: how to begin


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean end as Ctrl-C


def run(
    session: Session,
    player: Player | None,
    store: ProgressStore | None,
    listener: Listener | None = None,
    input_device: str | None = None,
    script: Sequence[Utterance] = (),
    stdin: IO[str] | None = None,
    say: Callable[[str], None] = lambda text: None,
    echo: LiveEcho | None = None,
    microphone: Microphone | None = None,
) -> bool:
    """Run a live session until it ends, the input ends, or the user interrupts; with
    `echo` (the player's tap), the coach's own voice is cancelled in the microphone.
    `microphone`: one made with the player (wiring.py); else one on `input_device`.
    Returns True when it was interrupted with the session still under way."""
    commands: queue.Queue[Heard | None] = queue.Queue()
    previous = signal.signal(signal.SIGTERM, _sigterm)
    tell = unsaved_teller(store, session, say) if store is not None else lambda t: None
    try:
        if listener is not None:
            microphone = microphone if microphone is not None else Microphone(input_device)
            microphone.open()
        else:
            microphone = None
        if player is not None:
            player.start_session()
            clock, watchdog = player.now_s, player.check
        else:
            origin = time.monotonic()
            clock, watchdog = (lambda: time.monotonic() - origin), (lambda: True)
        if stdin is not None:
            threading.Thread(target=_read, args=(stdin, commands), name="stdin", daemon=True).start()
            say("Type a command (help lists them); Ctrl-D ends.")
        if listener is not None and microphone is not None:
            threading.Thread(
                target=_listen, args=(microphone, listener, commands, clock, echo), name="listen", daemon=True
            ).start()
            say("Listening: say start back stretch.")  # from the start: before the first words
        begin(session, store, listener is not None, say, tell, clock)
        try:
            unknown = lambda text: say(f"({text!r} is no command; type help)")  # noqa: E731
            run_live(session, commands, clock, script, on_unknown=unknown, watchdog=watchdog, tell=tell)
        except KeyboardInterrupt:
            pass  # run_live has ended the session, keeping its place
    finally:
        signal.signal(signal.SIGTERM, previous)
        if microphone is not None:
            microphone.close()
    interrupted = session.dialogue.state.value == "paused"
    if interrupted and store is not None:
        store.interrupted()
        if store.unsaved is None:
            say("Stopped for now: the next `backstretch run` offers to carry on from here.")
        else:
            say("Stopped for now; where you stopped could not be saved.")
    if store is not None:
        unsaved = store.take_unsaved()  # a failure at the very end: too late to say, printed
        if unsaved is not None:
            say(unsaved.text)
    return interrupted


def begin(
    session: Session,
    store: ProgressStore | None,
    listening: bool,
    say: Callable[[str], None],
    tell: Callable[[float], None],
    clock: Callable[[], float] = lambda: 0.0,
) -> None:
    """The coach's first words, now on `clock`: that progress cannot be saved (`tell`),
    then the offer to carry on from a saved place, or, hands-free, the greeting."""
    if store is not None:
        saved = store.load()
        if store.notice:
            say(store.notice)
        tell(clock())
        if saved is not None:
            session.offer(saved.position, clock())
    if listening and session.dialogue.saved is None:  # no offer made: say how to begin
        # Its audio first (the cue worker's first job; made here if not yet): then its
        # time, so it starts on its sample rather than late by the synthesis.
        session.dialogue.speech_s(session.intents.say(GREETING))
        session.tell(GREETING, clock() + ANSWER_MARGIN_S)


def unsaved_teller(
    store: ProgressStore, session: Session, say: Callable[[str], None]
) -> Callable[[float], None]:
    """What tells the user, once, that progress cannot be saved: printed with `say`, and
    spoken by the coach at the time it is called with."""

    def tell(t: float) -> None:
        unsaved = store.take_unsaved()
        if unsaved is not None:
            say(unsaved.text)
            session.tell(unsaved.key, t)

    return tell


def _read(stream: IO[str], commands: queue.Queue[Heard | None]) -> None:
    for line in stream:
        commands.put(Heard(line.rstrip("\n")))
    commands.put(None)


def _listen(
    microphone: Microphone,
    listener: Listener,
    commands: queue.Queue[Heard | None],
    clock: Callable[[], float],
    echo: LiveEcho | None = None,
) -> None:
    """The listening thread: the microphone, the coach's voice cancelled in it (`echo`),
    the listener. A microphone that vanishes is tried again every second; the session
    goes on meanwhile (typed commands and the coach are unaffected)."""
    warned = False
    offset = MicOffset()
    for chunk in microphone.chunks(timeout_s=MIC_RETRY_S):
        if chunk is not None:
            listener.offset_s = offset.update(clock() - chunk.end_s, chunk.end_s)
            for command in listener.feed(chunk if echo is None else echo.clean(chunk)):
                commands.put(Heard(command.text, command.fired_s, command.speech_end_s))
            continue
        if microphone.active():
            continue
        if not warned:
            log.warning("the microphone stopped; trying to reopen it")
            warned = True
        try:
            microphone.reopen()
        except DeviceError as exc:
            log.debug("still no microphone: %s", exc)
            continue
        listener.recognizer.reset()
        offset = MicOffset()  # its audio clock stood still while it was gone
        log.warning("the microphone is back")
        warned = False


class MicOffset:
    """Session time = microphone audio time + offset. A chunk reaches the listening thread
    some time after its last sample was captured (the device's latency, the queue behind a
    decoding), never before; so the least `lag` (session time of arrival less audio time
    of its end) seen over the last OFFSET_WINDOW_S of audio is the offset, late by the
    shortest delivery. Counting frames from the moment the stream opened was not: frames
    captured before the device delivered any, or lost to an overflow, moved every word
    the user said by that much, onto the coach's words before it (and then not heard)."""

    def __init__(self) -> None:
        self._lags: deque[tuple[float, float]] = deque()  # (audio end, lag), lags increasing
        self.offset_s: float | None = None

    def update(self, lag_s: float, audio_s: float) -> float:
        while self._lags and self._lags[-1][1] >= lag_s:
            self._lags.pop()
        self._lags.append((audio_s, lag_s))
        while self._lags[0][0] < audio_s - OFFSET_WINDOW_S:
            self._lags.popleft()
        offset = self._lags[0][1]
        if self.offset_s is None or abs(offset - self.offset_s) > 0.05:
            log.info("microphone: audio time %.2f s is session time %.2f s", audio_s, audio_s + offset)
        self.offset_s = offset
        return offset


@dataclass(frozen=True)
class Heard:
    """Something the user said; `t` is when (session time), or None for "now"; a
    recogniser also gives where the speech ended."""

    text: str
    t: float | None = None
    speech_end_s: float | None = None


class Inputs(Protocol):
    """Where the live loop takes what the user said: a queue filled by the listening and
    stdin threads (a test gives one that waits on a virtual clock)."""

    def get(self, block: bool = True, timeout: float | None = None) -> Heard | None:
        """The next line, or None at the end of input; queue.Empty after `timeout` seconds."""
        ...


LOOKAHEAD_S = 0.3  # cues are decided this far ahead, so a player gets them before their sample
ANSWER_MARGIN_S = 0.08  # a reply starts this long after the command is handled: in the
# player's hands before its first sample (more than one output block), so placed exactly
POLL_S = 0.5  # longest wait between checks of the device


def run_live(
    session: Session,
    inputs: Inputs,
    clock: Callable[[], float],
    script: Sequence[Utterance] = (),
    on_unknown: Callable[[str], None] = lambda text: None,
    watchdog: Callable[[], bool] = lambda: True,
    tell: Callable[[float], None] = lambda t: None,
) -> None:
    """Run in real time on `clock` (session seconds): typed or heard lines from `inputs`
    (None ends the input), and `script` lines at their times. `tell` is called on every
    turn with the time a reply would start, for notices from outside the dialogue.

    Ends at the end of input, or, with a script and no other input, once the script
    is played and the session is no longer running. A session still under way at
    the end keeps its place (see `Session.end`).
    """
    pending = list(script)
    session.clock = clock
    try:
        while True:
            now = clock()
            session.run_until(now + LOOKAHEAD_S)
            tell(now + ANSWER_MARGIN_S)
            while pending and pending[0].t <= now + LOOKAHEAD_S:  # known ahead: decided ahead
                said = pending.pop(0)
                session.hear(said.text, said.t)
            if script and not pending and session.dialogue.state is not State.RUNNING:
                break
            # Wake a lookahead before the next decision, so its audio is placed in time, and
            # at the next event already decided, to release it to the sinks when it happens.
            wakes = [t - LOOKAHEAD_S for t in (session.dialogue.next_wakeup(),) if t is not None]
            wakes += [t for t in (session.next_release_at(),) if t is not None]
            if pending:
                wakes.append(pending[0].t - LOOKAHEAD_S)
            timeout = min(max(min(wakes, default=math.inf) - now, 0.0), POLL_S)
            try:
                item = inputs.get(timeout=timeout)
            except queue.Empty:
                watchdog()
                continue
            if item is None:
                break
            now = clock()
            said_at = now if item.t is None else item.t
            answer_at = now + ANSWER_MARGIN_S
            if item.text.strip() and not session.hear(item.text, said_at, item.speech_end_s, answer_at):
                on_unknown(item.text)
    finally:
        session.end(clock())
        session.close()
