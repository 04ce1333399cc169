"""The live supervisor: microphone, recogniser, dialogue and voice together, in real time.

Threads rather than asyncio: PortAudio calls back on its own threads, and the
recognisers and piper do their work in C with the GIL released; none of them is
async. Who does what:

    output callback (PortAudio)   mixes the scheduled cues; holds a lock for microseconds
    input callback (PortAudio)    copies each 30 ms block into a queue, nothing more
    listening thread              queue -> resampling -> recogniser -> Listener -> commands
    stdin thread (--text)         typed lines -> commands
    main thread                   the only one that touches the dialogue: commands in the
                                  order they came, from one queue; the clock; the watchdogs

Ctrl-C and SIGTERM reach the main thread as KeyboardInterrupt: the session falls
silent, keeps its place (saved by the store), and the program ends cleanly.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import IO

from assistant.capture import Microphone
from assistant.errors import DeviceError
from assistant.listen import Listener
from assistant.playback import Player
from assistant.script import Utterance
from assistant.session import Heard, Session, run_live
from assistant.store import ProgressStore

log = logging.getLogger(__name__)

MIC_RETRY_S = 1.0  # how often to try a vanished microphone again


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
) -> bool:
    """Run a live session until it ends, the input ends, or the user interrupts.
    Returns True when it was interrupted with the session still under way."""
    commands: queue.Queue[Heard | None] = queue.Queue()
    previous = signal.signal(signal.SIGTERM, _sigterm)
    microphone = None
    try:
        if store is not None:
            saved = store.load()
            if store.notice:
                say(store.notice)
            if saved is not None:
                session.offer(saved.position, 0.0)
        if listener is not None:
            microphone = Microphone(input_device)
            microphone.open()
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
            listener.offset_s = clock() - microphone.now_s()  # microphone time -> session time
            threading.Thread(
                target=_listen, args=(microphone, listener, commands, clock), name="listen", daemon=True
            ).start()
        try:
            if listener is not None and microphone is not None:
                say("Listening: say start back stretch.")
            unknown = lambda text: say(f"({text!r} is no command; type help)")  # noqa: E731
            run_live(session, commands, clock, script, on_unknown=unknown, watchdog=watchdog)
        except KeyboardInterrupt:
            pass  # run_live has ended the session, keeping its place
    finally:
        signal.signal(signal.SIGTERM, previous)
        if microphone is not None:
            microphone.close()
    interrupted = session.dialogue.state.value == "paused"
    if interrupted and store is not None:
        store.interrupted()
        say("Stopped for now: the next `backstretch run` offers to carry on from here.")
    return interrupted


def _read(stream: IO[str], commands: queue.Queue[Heard | None]) -> None:
    for line in stream:
        commands.put(Heard(line.rstrip("\n")))
    commands.put(None)


def _listen(
    microphone: Microphone,
    listener: Listener,
    commands: queue.Queue[Heard | None],
    clock: Callable[[], float],
) -> None:
    """The listening thread. A microphone that vanishes is tried again every second;
    the session goes on meanwhile (typed commands and the coach are unaffected)."""
    warned = False
    for chunk in microphone.chunks(timeout_s=MIC_RETRY_S):
        if chunk is not None:
            for command in listener.feed(chunk):
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
        listener.offset_s = clock() - microphone.now_s()
        log.warning("the microphone is back")
        warned = False
