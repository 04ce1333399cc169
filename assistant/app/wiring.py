"""One wiring: the pipeline of a session, built the same way for every way of running one.

    voice -> cue cache -> dialogue (speech lengths from the voice) -> session -> sinks
    recogniser -> listener (gated by the session's speech track) -> session

`build()` is the only place the parts are put together: `backstretch run` live, with
`--text`, `--script` or `--in`, `backstretch demo`, and the bench all call it with a
`Needs` saying what the run takes. Nothing is loaded that the run does not need: no
voice when muted, no device when offline, no recogniser when commands are typed.

The cue cache is filled before an offline run (a render must not wait on the voice),
but in the background of a live one: the coach speaks and listens at once, the cache's
worker makes the cues in the order the session says them, and a line asked for before
it is made is synthesised on demand, ahead of the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from assistant.app.offline import OfflineEcho
from assistant.app.progress import MilestoneProgress, Progress, TerminalProgress
from assistant.app.settings import Settings
from assistant.app.store import ProgressStore, StateLock, state_dir
from assistant.app.supervisor import GREETING
from assistant.app.timeline import TimelineFile, Transcript
from assistant.coach.dialogue import Dialogue, estimate_speech_s, in_order_of_use
from assistant.coach.events import Sink
from assistant.coach.intents import IntentSet
from assistant.coach.routine import Routine
from assistant.coach.session import Session
from assistant.errors import DeviceError
from assistant.hear.align import LiveEcho
from assistant.hear.capture import Microphone
from assistant.hear.duplex import open_devices
from assistant.hear.echo import open_canceller
from assistant.hear.engines import open_recognizer
from assistant.hear.listen import Listener
from assistant.hear.recognizer import Recognizer
from assistant.pcm import RATE_HZ
from assistant.speak import voices
from assistant.speak.cache import CueCache
from assistant.speak.playback import Player
from assistant.speak.render import OutputTrack, WavRenderer
from assistant.speak.tts import SpeechSettings, Synthesizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Needs:
    """What a run takes. A voice is needed to speak or render; without one the dialogue
    estimates how long its words take."""

    voice: bool = False  # synthesise the cues (their real lengths time the dialogue)
    speaker: bool = False  # play them on the output device, in real time
    listen: bool = False  # a recogniser on the microphone or a recording
    store: bool = False  # keep the place across restarts, and the history
    out: Path | None = None  # render the coach's voice into this WAV
    timeline: Path | None = None  # every event as JSON Lines
    transcript: IO[str] | None = None  # what is said and heard, as it happens
    # Cancel the coach's own voice in what is heard (needs `voice`): live, the blocks the
    # player hands the device; offline, the coach's rendered output.
    echo: bool = False
    # The bench brings a recogniser of its own (to measure the model's memory apart, say).
    recognizer: Callable[[Sequence[str]], Recognizer] | None = field(default=None, compare=False)


@dataclass
class Pipeline:
    """The parts of one session, built and connected."""

    dialogue: Dialogue
    session: Session
    cache: CueCache | None = None
    player: Player | None = None
    listener: Listener | None = None
    store: ProgressStore | None = None
    echo: OfflineEcho | None = None  # with Needs.echo, offline: hand it to run_audio
    live_echo: LiveEcho | None = None  # with Needs.echo, live: the player's tap; hand it to the supervisor
    # Live with a speaker: made with the player (on its duplex stream when one device does
    # both, hear/duplex.py); hand it to the supervisor, which starts listening.
    microphone: Microphone | None = None

    def close(self) -> None:
        """Stop the cue cache's worker (idempotent; a session's end closes it too)."""
        if self.cache is not None:
            self.cache.close()


def open_voice(config: Settings) -> CueCache:
    """The configured voice behind its cue cache: where every voice is created."""
    speech = SpeechSettings(config.speaker, config.speech_rate, config.sentence_pause_s)
    return CueCache(Synthesizer(voices.resolve(config.voice), speech))


def prepare_cues(cache: CueCache, texts: Iterable[str], progress: Progress | None = None) -> int:
    """Synthesise the cues not cached yet, with progress; returns how many."""
    missing = cache.missing(texts)
    if missing and progress is not None:
        progress.start(len(missing), f"preparing {len(missing)} cues in voice {cache.synth.voice.name}")
    done = cache.warm(missing, (lambda: progress.advance(1)) if progress is not None else lambda: None)
    if missing and progress is not None:
        progress.finish()
    return done


def prepare_in_background(cache: CueCache, texts: Sequence[str], progress: Progress | None = None) -> int:
    """Start making the cues not cached yet on the cache's worker, in the order of
    `texts`; `progress` follows them, whoever makes them. Returns how many."""
    todo = len(cache.unfiled(texts))
    if not todo or progress is None:
        cache.prepare(texts)
        return todo
    progress.start(todo, f"preparing {todo} cues in voice {cache.synth.voice.name}")

    def advance(left: int) -> None:
        progress.advance(1)
        if not left:
            progress.finish()

    cache.prepare(texts, advance)
    return todo


def build(config: Settings, routine: Routine, language: IntentSet, needs: Needs) -> Pipeline:
    """The session a run needs, every part connected; devices are opened here (the output
    first, so a missing speaker is reported before the user waits for the cues; before it,
    the state folder's lock, so a second coach is turned away at once)."""
    lock = StateLock.take(state_dir()) if needs.store else None
    try:
        return _build(config, routine, language, needs, lock)
    except BaseException:  # (_build has stopped the cue worker it started)
        if lock is not None:
            lock.release()
        raise


def _build(
    config: Settings, routine: Routine, language: IntentSet, needs: Needs, lock: StateLock | None
) -> Pipeline:
    cache = open_voice(config) if needs.voice or needs.speaker or needs.out is not None else None
    speech_s = cache.duration_s if cache is not None else estimate_speech_s
    # First: the dialogue checks the intents file against its handlers, before any wait.
    dialogue = Dialogue(routine, language, config.verbosity, config.volume, speech_s)
    player = microphone = None
    if needs.speaker and cache is not None:
        player = Player(cache, config.output_device, config.volume, config.output_rate_hz)
        if needs.listen:  # live, both ways: one duplex stream when one device does both
            microphone = Microphone(config.input_device)
            open_devices(player, microphone, config.duplex)
        else:
            player.open()
    if cache is not None:
        texts = in_order_of_use(routine, language, config.verbosity)
        if player is not None:  # live: the greeting first, then the session's cues in order
            prepare_in_background(cache, [language.say(GREETING), *texts], MilestoneProgress())
        else:  # a render, or a script on the virtual clock: every cue before the first
            prepare_cues(cache, texts, TerminalProgress(unit="cues"))
    try:
        return _connect(config, language, needs, dialogue, cache, player, lock, microphone)
    except BaseException:  # no cue worker left synthesising when the program ends
        if player is not None:
            player.close()
        elif cache is not None:
            cache.close()
        raise


def _connect(
    config: Settings,
    language: IntentSet,
    needs: Needs,
    dialogue: Dialogue,
    cache: CueCache | None,
    player: Player | None,
    lock: StateLock | None,
    microphone: Microphone | None = None,
) -> Pipeline:
    sinks: list[Sink] = []
    if needs.transcript is not None:
        sinks.append(Transcript(needs.transcript))
    if needs.timeline is not None:
        sinks.append(TimelineFile(needs.timeline))
    if needs.out is not None and cache is not None:
        sinks.append(WavRenderer(needs.out, cache, config.volume))
    store = ProgressStore(dialogue, lock=lock) if needs.store else None
    if store is not None:
        sinks.append(store)
    echo = live_echo = None
    if needs.echo and needs.listen and player is not None:
        live_echo = open_live_echo()
        player.tap = live_echo
    elif needs.echo and needs.listen and cache is not None:
        # A sink before the session is made: the session keeps its own copy of the list.
        output = OutputTrack(cache, config.volume, RATE_HZ)
        sinks.append(output)
        echo = OfflineEcho(open_canceller(), output)
    session = Session(
        dialogue, language, sinks,
        schedulers=[player] if player is not None else [],
        prefetch=player.cache.prefetch if player is not None else lambda texts: None,
    )  # fmt: skip
    listener = None
    if needs.listen:
        make = needs.recognizer or (
            lambda phrases: open_recognizer(config.stt_engine, phrases, config.vosk_model)
        )
        listener = Listener(make(language.phrases()), language, session.track, config.wake_word)
    return Pipeline(dialogue, session, cache, player, listener, store, echo, live_echo, microphone)


def open_live_echo() -> LiveEcho | None:
    """The live echo canceller, or None, with a warning, when it cannot be had: the coach
    still works, but hears only commands said between its cues (and barge-in phrases
    louder than its own voice)."""
    try:
        return LiveEcho(open_canceller())
    except DeviceError as exc:
        log.warning("%s; until then, say commands between the coach's cues", exc)
        return None
