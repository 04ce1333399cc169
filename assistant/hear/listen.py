"""Listening: recogniser hypotheses become commands, and the coach never obeys itself.

Design (see README, "It never obeys itself"):
- The coach's cues share no command phrase (a test checks every cue), and the
  recogniser has a rejection path, so a cue picked up by the microphone decodes
  to nothing, or to a rejection.
- On top of that, speech that overlaps the coach's own speech (plus a short tail
  for the room and the device latency) is gated: it counts only when it is a
  barge-in phrase, "pause", "wait", "hold on" or "stop" and a few more (the
  intents file lists them, under barge_in). The coach says those only when
  listing the commands (help): over such a sentence nothing counts at all.
  Commands said between cues are always heard.
- With a wake word set, a command counts only after it ("coach, pause"). Every word
  of it must be in the recogniser's vocabulary, or no command could ever be heard.
- A command that starts something needs more evidence than one that pauses or stops:
  heard as a lone word ("start", "begin"), it does not count. A real "stop" sometimes
  decodes as "start" (2 of 116 real speakers' clips with pocketsphinx, 1 with vosk,
  tests/hear/test_real_speech.py), and that would begin a whole session, or resume a
  paused one. "Start back stretch", "let's begin" count; typed commands are not affected.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from assistant.coach.events import Say
from assistant.coach.intents import IntentSet, normalise
from assistant.coach.track import SpeechTrack
from assistant.errors import RecognizerError
from assistant.hear.capture import Chunk
from assistant.hear.recognizer import Hypothesis, Recognizer
from assistant.pcm import RATE_HZ

log = logging.getLogger(__name__)

RESIDUE_KEEP_S = 30.0  # where the audio was cancelled is kept this long (longer than an utterance)
TAIL_S = 0.3  # the coach's voice lingers this long after its last sample (room, latency)
STARTING = frozenset({"start"})  # intents that start something: a lone word is not enough
START_MIN_WORDS = 2
SAFER = frozenset({"stop", "pause"})  # what a command that starts something gives way to (`_safer`)


def _check_wake_word(wake_word: str, recognizer: Recognizer) -> str:
    """The wake word as the recogniser hears it; RecognizerError when it cannot."""
    wake = normalise(wake_word)
    if not wake:
        raise RecognizerError(f"stt.wake_word {wake_word!r} has no word in it; use a word like 'coach'")
    unknown = [w for w in wake.split() if not recognizer.knows(w)]
    if unknown:
        raise RecognizerError(
            f"stt.wake_word {wake_word!r}: {recognizer.name} cannot hear "
            f"{', '.join(repr(w) for w in unknown)} (not in its dictionary), so it would hear no "
            "command; choose a common English word, like 'coach'"
        )
    return wake


@dataclass(frozen=True)
class Command:
    """A command heard: its text (wake word removed) and, in session time, when the
    speech ended and when the recogniser had it (the intent fires then)."""

    text: str
    speech_end_s: float
    fired_s: float


class Listener:
    """A recogniser with the closed phrase list, the self-hearing gate and the wake word."""

    def __init__(
        self,
        recognizer: Recognizer,
        intents: IntentSet,
        coach: SpeechTrack[Say] | None = None,
        wake_word: str | None = None,
        offset_s: float = 0.0,
    ) -> None:
        self.recognizer = recognizer
        self.intents = intents
        self.coach = coach
        self.wake = _check_wake_word(wake_word, recognizer) if wake_word is not None else None
        self.offset_s = offset_s  # session time = audio time + offset
        phrases, complete = intents.phrases(), intents.complete_phrases()
        if self.wake:
            phrases = [f"{self.wake} {p}" for p in phrases]
            complete = [f"{self.wake} {p}" for p in complete]
        self._complete = frozenset(complete)
        # Fillers around a command ("okay, stop please"); not with a wake word, which must
        # come first.
        # The one-word barge-in phrases (stop, pause, wait) favoured where the engine has a
        # prior (vosk_engine.FAVOURED_COPIES): said alone, they lost to longer commands' words.
        favoured = [] if self.wake else [p for p in intents.barge_in if len(p.split()) == 1]
        recognizer.set_phrases(phrases, self.complete, None if self.wake else intents.fillers, favoured)
        # While the coach speaks only a barge-in phrase can count (the gate below), so a
        # recogniser that can decode those utterances with the barge-in phrases alone does
        # (vosk: over the residual of a cancelled echo that hears far more, vosk_engine.py).
        # And its endpointer takes the canceller's residual of the coach for speech only when
        # well above it (endpoint.py, echo_threshold_db).
        set_echo = getattr(recognizer, "set_echo", None)
        if coach is not None and set_echo is not None:
            set_echo(self._speaking_audio)
        set_barge_in = getattr(recognizer, "set_barge_in", None)
        if coach is not None and set_barge_in is not None and not self.wake:
            set_barge_in(sorted(intents.barge_in), self._speaking_audio)
        # An engine that cannot tell the user from the echo canceller's residue of the coach
        # takes nothing said over the coach in cancelled audio (pocketsphinx:
        # sphinx_engine.SphinxRecognizer.hears_over_cancelled_echo); where it was cancelled,
        # as audio times, the latest last, kept for RESIDUE_KEEP_S.
        self.over_residue = bool(getattr(recognizer, "hears_over_cancelled_echo", True))
        self._cancelled: deque[tuple[float, float]] = deque()
        self._warned = False
        set_ignored = getattr(recognizer, "set_ignored", None)
        if coach is not None and not self.over_residue and set_ignored is not None:
            set_ignored(self._deaf)  # what it would hear there is gated anyway: not decoded
        self.rejected = 0
        self.gated = 0

    def complete(self, phrase: str, speech_start_s: float, speech_end_s: float) -> bool:
        """May the recogniser end an utterance as soon as it has heard `phrase`? When no
        longer command of another intent begins with it, and the coach was quiet: the
        coach's sentences have pauses, and "Paused." alone sounds like "pause"."""
        if phrase not in self._complete:
            return False
        start, end = speech_start_s + self.offset_s, speech_end_s + self.offset_s
        return not self._speaking(start, end)

    def feed(self, chunk: Chunk) -> list[Command]:
        if chunk.cancelled and not self.over_residue:
            start = chunk.end_s - len(chunk.samples) / RATE_HZ
            if self._cancelled and self._cancelled[-1][1] >= start - 1e-6:
                start = self._cancelled.pop()[0]  # one span while it stays cancelled
            self._cancelled.append((start, chunk.end_s))
            while self._cancelled and self._cancelled[0][1] < chunk.end_s - RESIDUE_KEEP_S:
                self._cancelled.popleft()
        found = [self._accept(h) for h in self.recognizer.feed(chunk.samples, chunk.end_s)]
        return [c for c in found if c is not None]

    def flush(self, end_s: float) -> list[Command]:
        found = [self._accept(h) for h in self.recognizer.flush(end_s)]
        return [c for c in found if c is not None]

    def _speaking(self, start: float, end: float, strict_only: bool = False) -> bool:
        """Was the coach speaking between `start` and `end` (session time), or up to TAIL_S
        before? With `strict_only`, a sentence that itself names a barge-in phrase."""
        if self.coach is None:
            return False
        spans = self.coach.overlapping(start - TAIL_S, end)
        return any(not strict_only or self.intents.names_barge_in(span.item.text) for span in spans)

    def _speaking_audio(self, start: float, end: float) -> bool:
        """`_speaking` for times in audio seconds, as the recogniser has them."""
        return self._speaking(start + self.offset_s, end + self.offset_s)

    def _gated(self, text: str, start: float, end: float) -> bool:
        if not self._speaking(start, end):
            return False
        if self._deaf(start - self.offset_s, end - self.offset_s):
            self._say_deaf()
            return True
        if not self.intents.is_barge_in(text) or self._speaking(start, end, strict_only=True):
            return True
        return self._echoed(text, start, end)

    def _echoed(self, text: str, start: float, end: float) -> bool:
        """Was the coach saying something that sounds like `text` then ("Paused." is no
        "pause", but heard with the echo not cancelled it decodes as one: the coach paused
        itself once, offline, right after the user's own "pause", before the canceller had
        learnt the room): its words begin words of the sentence, one after another."""
        assert self.coach is not None  # (only asked where it was speaking)
        said = text.split()
        for span in self.coach.overlapping(start - TAIL_S, end):
            words = normalise(span.item.text).split()
            for i in range(len(words) - len(said) + 1):
                if all(w.startswith(s) for w, s in zip(words[i : i + len(said)], said, strict=True)):
                    return True
        return False

    def _safer(self, alternatives: tuple[str, ...]) -> str | None:
        """Of the phrases the recogniser found nearly as likely, the first that stops or
        pauses (SAFER): the bundled voice's "stop the session" was decoded as "start the
        session" 2 or 3 times in 144 (bench section 6, stop 23), "stop the session" 1.5 behind
        it; heard wrongly, stopping costs a repeat, starting a session the user is stopping."""
        for alternative in alternatives:
            said = self._without_wake(normalise(alternative))
            intent = self.intents.match(said) if said is not None else None
            if intent is not None and intent.name in SAFER:
                return said
        return None

    def _without_wake(self, text: str) -> str | None:
        """`text` with the wake word taken off its front; None when a wake word is set and
        `text` does not begin with it."""
        if not self.wake:
            return text
        return text[len(self.wake) + 1 :] if text.startswith(self.wake + " ") else None

    def _say_deaf(self) -> None:
        if not self._warned:
            self._warned = True
            log.info("%s takes no command over the coach's voice once its echo is cancelled: "
                     "vosk does (`backstretch models download`)", self.recognizer.name)  # fmt: skip

    def _deaf(self, start: float, end: float) -> bool:
        """Would nothing said from `start` to `end` (audio seconds) count? Over the coach's
        voice in cancelled audio, for a recogniser that does not hear there (the one rule:
        the gate applies it, and the recogniser is told it so as not to decode there)."""
        if self.over_residue or not any(a < end and start < b for a, b in self._cancelled):
            return False
        return self._speaking_audio(start, end)

    def _accept(self, hyp: Hypothesis) -> Command | None:
        start, end, fired = (hyp.speech_start_s + self.offset_s, hyp.speech_end_s + self.offset_s,
                             hyp.final_s + self.offset_s)  # fmt: skip
        if hyp.undecoded:
            self.gated += 1
            self._say_deaf()
            log.info("%.2f-%.2f s: speech over the coach's cancelled voice, not decoded", start, end)
            return None
        text = normalise(hyp.text)
        if not text:
            self.rejected += 1
            log.info("%.2f-%.2f s: speech that is no command", start, end)
            return None
        command = self._without_wake(text)
        if command is None:
            log.info("%.2f s: %r without the wake word", end, text)
            return None
        text = command
        intent = self.intents.match(text)
        if intent is None:
            self.rejected += 1
            return None
        # The phrase said, fillers aside ("let's begin" is a phrase; "start please" is "start").
        said = text if text in self.intents.table else self.intents.fillers.stripped(text)
        if intent.name in STARTING and len(said.split()) < START_MIN_WORDS:
            self.rejected += 1
            log.info("%.2f s: %r ignored: to start, a phrase like 'start back stretch'", end, text)
            return None
        if intent.name in STARTING and (safer := self._safer(hyp.alternatives)) is not None:
            log.info("%.2f s: %r taken as %r, nearly as likely: stopping goes first", end, text, safer)
            text = safer
        if self._gated(text, start, end):
            self.gated += 1
            log.info("%.2f s: %r ignored: the coach was speaking", end, text)
            return None
        log.info("%.2f s: heard %r (speech ended %.2f s)", fired, text, end)
        return Command(text, end, fired)
