"""The pocketsphinx engine: closed-set command recognition with rejection, fully offline.

The acoustic model and dictionary are the English ones in the pocketsphinx
wheel. Utterances are found by `assistant.hear.endpoint.Endpointer` (pocketsphinx's own
endpointer never closes an utterance in continuous noise) and each is decoded
whole against a finite-state grammar built at runtime from the phrase list:

    start --(any command phrase)--> end
    start --(garbage: one-phone pseudo-words, looped)--> end
    start --(a distractor: a common English word that is no command)--> end

Speech that is no command is cheaper to explain as a string of garbage phones
than as a phrase, so it comes out as garbage and is rejected. The garbage
branch cannot catch everything: pocketsphinx's silence filler is so cheap that
"Switch legs. Keep your left leg straight..." decodes as "<sil> switch legs
<sil>", the silences swallowing seconds of speech. So a second check rejects
an utterance when frames the endpointer called speech fall inside what the
decoder labelled silence for more than `max_unexplained_s` ("unexplained speech").

The decoder starts from a cepstral mean of real speech (`SphinxSettings.cmninit`),
not the model's default: with that, the very first command a new recogniser
hears (a user who says "stop" as the session starts) is recognised as well as
later ones.

The knobs and their measured trade-offs are in `SphinxSettings`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.coach.phrasing import Fillers, normalise
from assistant.errors import SphinxError
from assistant.hear.endpoint import Endpointer, Segment, VadSettings, denoise
from assistant.hear.recognizer import Complete, Hypothesis, Ignored, Speaking, distractors

log = logging.getLogger(__name__)

# The context-independent phones of the default en-us model, less SIL: one garbage word each.
PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()
# The probability of a filler's path on the state it loops on (shared by the fillers of
# that side): small, so that a filler is decoded only where words were said.
FILLER_P = 0.05
GARBAGE_PREFIX = "+g_"  # '+' words are never in the dictionary nor a phrase
FRAME_S = 0.01  # pocketsphinx's frame rate (frate 100)


@dataclass(frozen=True)
class SphinxSettings:
    """The engine's knobs (measured on piper, espeak-ng and 10 dB noise; see tests/test_accuracy.py)."""

    model_dir: Path | None = None  # an acoustic model folder; None: the wheel's en-us
    dictionary: Path | None = None  # a pronunciation dictionary; None: the wheel's cmudict
    garbage_p: float = 1e-8  # per-phone probability in the garbage loop: lower accepts more
    noisy_garbage_p: float = 1e-10  # the same in noise, where garbage phones fit distorted speech
    noisy_above_dbfs: float = -45.0  # noise above this level counts as noisy
    max_unexplained_s: float = 0.15  # speech the decoder calls silence, beyond which we reject
    fill_gaps_s: float = 0.2  # count gaps this short between speech frames as speech (noise)
    dither_lsb: int = 2  # added noise: exact digital silence upsets the front end
    remove_noise: bool = False  # pocketsphinx's own noise suppression in the front end
    denoise_above_dbfs: float | None = -60.0  # Wiener-filter utterances when the noise is louder
    denoise_floor_db: float = -30.0  # the most the Wiener filter takes off
    # Fillers around a phrase in the grammar ("okay, stop please"). Off: measured on the
    # DEV wordings spoken by piper they lift recall from 29 to 39 of 42, but the routine's
    # text and chatter (piper and espeak-ng en-us) then fire 20 of 44 sentences instead of
    # 3, whatever the fillers' probability (0.05 to 1e-3): the filler words explain
    # stretches of any speech, and a short phrase between them is found. vosk hears them.
    hear_fillers: bool = False
    # The cepstral mean the decoder starts from, as pocketsphinx's `cmninit` (13 numbers).
    # The model's own ("40,3,-1") is far from real speech: until the live mean has adapted,
    # the silence model fits nothing, room noise decodes as garbage "f" phones and a first
    # "stop" is rejected (13 of 40 isolated first commands right). This is the mean the live
    # estimate settles on for the bundled voice; with it 125-126 of 126 are right (18 commands,
    # 7 renderings; 39-40 of 40 with the microphone 12 dB quieter or 6 dB louder), and the
    # live mean still adapts from there to the speaker and the room.
    cmninit: str | None = "46.4,-4.7,-2.9,1.6,-2.5,-3.5,-0.1,-8.5,-2.4,3.1,-0.2,1.5,-6.5"
    vad: VadSettings = field(default_factory=VadSettings)
    # Distractor words (recognizer.distractors()) in the grammar, the most frequent first:
    # each a one-word path beside the phrases; decoded, it is a rejection. 0: none. On the
    # TUNE speakers of the real-speech set (tests/kit/real.py), 300 took the word clips that
    # fire an intent from 16.2 % to 5.1 %, and "stop" heard from 37.5 % to 32.1 %.
    decoys: int = 300


@dataclass(frozen=True)
class Decoded:
    """What the decoder made of one segment, before the decision."""

    words: tuple[str, ...]  # dictionary words, fillers and garbage included
    phrase: str  # the phrase the words spell ("" when none)
    unexplained_s: float


class SphinxRecognizer:
    """`stt.Recognizer` on pocketsphinx: feed 16 kHz chunks, get one `Hypothesis` per utterance."""

    name = "pocketsphinx"
    # Over the coach's voice, nothing it hears in the echo canceller's output counts
    # (listen.Listener): live, over the canceller's residue of the coach, it once heard the
    # barge-in phrase "hang on" and the coach paused itself (the PulseAudio barge-in test, 1
    # run in about 17); it has no echo-aware decoding (vosk_engine: the barge-in grammar, the
    # echo-aware endpointer). Where the microphone does not hear the coach (headphones) or
    # the canceller has not learnt it, its barge-in phrases count as before.
    hears_over_cancelled_echo = False

    def __init__(self, phrases: Sequence[str], settings: SphinxSettings | None = None) -> None:
        self.settings = settings or SphinxSettings()
        self._decoder = _make_decoder(self.settings)
        for i, phone in enumerate(PHONES):
            self._decoder.add_word(f"{GARBAGE_PREFIX}{phone.lower()}", phone, update=i == len(PHONES) - 1)
        self.endpointer = Endpointer(self.settings.vad, complete=self._is_complete)
        self._complete: Complete | None = None  # may a phrase end its utterance early?
        self._early: tuple[Segment, Decoded] | None = None  # the decoding that ended one
        self._rng = np.random.default_rng(0)
        self._searches = 0
        self._phrases: dict[tuple[str, ...], str] = {}
        self._fillers: Fillers | None = None
        self._by_normal: dict[str, str] = {}  # normalised phrase -> phrase, with fillers
        self.last: Decoded | None = None  # for logs and tests
        self._cmn_at_start = self._decoder.get_cmn(False)
        self._grammar_key: tuple[object, ...] | None = None
        self._ignored: Ignored | None = None
        self.set_phrases(phrases)

    # -- stt.Recognizer --------------------------------------------------------

    def set_phrases(
        self,
        phrases: Sequence[str],
        complete: Complete | None = None,
        fillers: Fillers | None = None,
        favoured: Collection[str] = (),
    ) -> None:
        """Restrict recognition to `phrases`; a phrase with a word the dictionary lacks is left
        out with a warning (compounds of two known words, like "unpause", are added). An
        utterance decoded as a phrase `complete` approves ends after `VadSettings.early_s`
        of quiet. `fillers` may come before and after a phrase, and are taken off.
        `favoured` is not used: every phrase here is as likely as the others (measured for
        vosk only, where the grammar's prior is what made a lone "stop" lose)."""
        table: dict[tuple[str, ...], str] = {}
        for phrase in phrases:
            words = tuple(phrase.lower().split())
            if words and all(self._known(w) for w in words):
                table.setdefault(words, phrase)
            elif words:
                log.warning("pocketsphinx cannot say %r: a word is not in its dictionary", phrase)
        if not self.settings.hear_fillers:
            fillers = None
        key = (tuple(phrases), fillers)
        if key == self._grammar_key:  # the same grammar again (a new Listener): keep it
            self._complete = complete
            return
        before, after = (
            [tuple(f.split()) for f in said if all(self._known(w) for w in f.split())]
            for said in ((fillers.said_before, fillers.said_after) if fillers else ((), ()))
        )
        used = {w for words in [*table, *before, *after] for w in words}
        decoys = [
            w
            for w in distractors()[: self.settings.decoys]
            if w not in used and self._decoder.lookup_word(w) is not None
        ]
        self._searches += 1
        names = (f"quiet{self._searches}", f"noisy{self._searches}")
        try:
            for name, garbage_p in zip(
                names, (self.settings.garbage_p, self.settings.noisy_garbage_p), strict=True
            ):
                arcs = _transitions(list(table), garbage_p, decoys, before, after)
                fsg = self._decoder.create_fsg(name, 0, 1, arcs)
                self._decoder.add_fsg(name, fsg)
            self._decoder.activate_search(names[0])
        except (RuntimeError, ValueError) as exc:
            raise SphinxError(f"pocketsphinx rejected the command grammar ({exc})") from exc
        self._phrases = table
        self._grammar_key = key
        self._fillers = fillers if before or after else None
        self._by_normal = {normalise(" ".join(w)): p for w, p in table.items()} if self._fillers else {}
        self._complete = complete
        self._search_names = names
        log.debug("pocketsphinx grammars %s: %d phrases", names, len(table))

    def knows(self, word: str) -> bool:
        return self._known(word)

    def feed(self, samples: npt.NDArray[np.int16], end_s: float) -> list[Hypothesis]:
        return [self._hypothesis(seg, end_s) for seg in self.endpointer.feed(samples, end_s)]

    def flush(self, end_s: float) -> list[Hypothesis]:
        return [self._hypothesis(seg, end_s) for seg in self.endpointer.flush(end_s)]

    def restart(self) -> None:
        """Forget everything learned from audio (the noise estimate, the cepstral mean, an
        utterance in progress), keeping the grammar: as a new recogniser would be, without
        loading the model again (the real-speech tests hear each clip this way)."""
        self.endpointer = Endpointer(self.settings.vad, complete=self._is_complete, echo=self.endpointer.echo)
        self._decoder.set_cmn(self._cmn_at_start)
        self._rng = np.random.default_rng(0)
        self._early = None

    def reset(self) -> None:
        self.endpointer.reset()

    def set_ignored(self, ignored: Ignored) -> None:
        """Utterances `ignored` says nothing could count in are not decoded (listen.py: over
        the coach's cancelled voice, where the Listener takes nothing from pocketsphinx):
        decoding the canceller's residue was 85 % of the hear path's instructions there
        (bench section 10)."""
        self._ignored = ignored

    def set_echo(self, speaking: Speaking) -> None:
        """When the coach spoke (audio time): the endpointer's echo-aware threshold."""
        self.endpointer.echo = speaking

    # -- decoding ----------------------------------------------------------------

    def decode(self, segment: Segment) -> Decoded:
        """Decode one utterance and say which phrase, if any, it is."""
        samples = segment.samples
        noise_dbfs = _level_dbfs(segment.noise_psd)
        limit = self.settings.denoise_above_dbfs
        if limit is not None and noise_dbfs > limit:
            samples = denoise(samples, segment.noise_psd, self.settings.denoise_floor_db)
        noisy = noise_dbfs > self.settings.noisy_above_dbfs
        x = samples.astype(np.int32)
        if self.settings.dither_lsb:
            x = x + self._rng.integers(-self.settings.dither_lsb, self.settings.dither_lsb + 1, len(x))
        pcm = np.clip(x, -32768, 32767).astype("<i2").tobytes()
        dec = self._decoder
        try:
            dec.activate_search(self._search_names[noisy])
            dec.start_utt()
            # One call, full_utt=False: the live cepstral mean carries over from earlier
            # utterances, adapting to the speaker and the room (measured better on espeak).
            dec.process_raw(pcm, no_search=False, full_utt=False)
            dec.end_utt()
            hyp = dec.hyp()
            segs = [(s.word, s.start_frame, s.end_frame) for s in dec.seg()] if hyp is not None else []
        except RuntimeError as exc:
            raise SphinxError(f"pocketsphinx failed to decode ({exc})") from exc
        words = tuple(w for w, _, _ in segs)
        spoken = tuple(_base(w) for w in words if not _is_filler(w))
        phrase = self._phrases.get(spoken, "")
        if not phrase and spoken and self._fillers is not None:
            phrase = self._fillers.core(" ".join(spoken), self._by_normal)
        unexplained = _unexplained_s(segment, segs, self.settings.fill_gaps_s if noisy else 0.0)
        decoded = Decoded(words, phrase, unexplained)
        self.last = decoded
        return decoded

    def _accepted(self, decoded: Decoded) -> str:
        """The phrase a decoding stands for, or "" when it is rejected."""
        if decoded.phrase and decoded.unexplained_s > self.settings.max_unexplained_s:
            log.debug("rejected %r: %.2f s of speech heard as silence", decoded.phrase, decoded.unexplained_s)
            return ""
        return decoded.phrase

    def _is_complete(self, segment: Segment) -> bool:
        """The endpointer asks, `early_s` into a pause: is this a whole command already?
        If not, the decoder's cepstral mean is put back, so that the utterance, decoded
        again when it does end, counts once in it."""
        if self._complete is None or self._is_ignored(segment):
            return False
        mean = self._decoder.get_cmn(False)
        decoded = self.decode(segment)
        text = self._accepted(decoded)
        if text and self._complete(text, segment.speech_start_s, segment.speech_end_s):
            self._early = (segment, decoded)
            return True
        self._decoder.set_cmn(mean)
        return False

    def _is_ignored(self, segment: Segment) -> bool:
        return self._ignored is not None and self._ignored(segment.speech_start_s, segment.speech_end_s)

    def _hypothesis(self, segment: Segment, end_s: float) -> Hypothesis:
        early, self._early = self._early, None
        if early is None and self._is_ignored(segment):
            return Hypothesis("", segment.speech_start_s, segment.speech_end_s,
                              max(end_s, segment.ended_s), undecoded=True)  # fmt: skip
        decoded = early[1] if early is not None and early[0] is segment else self.decode(segment)
        text = self._accepted(decoded)
        log.debug(
            "utterance %.2f-%.2f s: %r -> %r",
            segment.speech_start_s,
            segment.speech_end_s,
            decoded.words,
            text,
        )
        return Hypothesis(text, segment.speech_start_s, segment.speech_end_s, max(end_s, segment.ended_s))

    def _known(self, word: str) -> bool:
        if self._decoder.lookup_word(word) is not None:
            return True
        # A compound of two dictionary words ("unpause" = "un" + "pause").
        for cut in range(2, len(word) - 1):
            head, tail = self._decoder.lookup_word(word[:cut]), self._decoder.lookup_word(word[cut:])
            if head is not None and tail is not None:
                self._decoder.add_word(word, f"{head} {tail}", update=True)
                return True
        return False


def _make_decoder(settings: SphinxSettings) -> Any:
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError as exc:
        raise SphinxError("pocketsphinx is not installed: pip install 'pocketsphinx>=5,<6'") from exc
    hmm = settings.model_dir or Path(get_model_path("en-us/en-us"))
    dictionary = settings.dictionary or Path(get_model_path("en-us/cmudict-en-us.dict"))
    for path in (hmm / "mdef", dictionary):
        if not path.is_file():
            raise SphinxError(
                f"pocketsphinx model file missing: {path}; reinstall pocketsphinx or fix the path"
            )
    extra: dict[str, Any] = {"cmninit": settings.cmninit} if settings.cmninit is not None else {}
    try:
        return Decoder(
            hmm=str(hmm),
            dict=str(dictionary),
            lm=None,
            # bestpath (the default) builds a lattice in hyp(): up to seconds per utterance
            # with the garbage loop, for nothing we use.
            bestpath=False,
            loglevel="ERROR",
            # Even at ERROR it prints "Final result does not match the grammar" for noise.
            logfn=os.devnull,
            remove_noise=settings.remove_noise,
            **extra,
        )
    except (RuntimeError, ValueError) as exc:
        raise SphinxError(f"pocketsphinx cannot load its model from {hmm} ({exc}); reinstall it") from exc


def _transitions(
    phrases: list[tuple[str, ...]],
    garbage_p: float,
    decoys: Sequence[str] = (),
    before: Sequence[tuple[str, ...]] = (),
    after: Sequence[tuple[str, ...]] = (),
) -> list[tuple[Any, ...]]:
    """FSG arcs (from, to, probability[, word]); a 3-tuple is an epsilon arc. Each phrase
    and each decoy word is a path of its own, all equally likely; the phrases share their
    first words (a prefix tree, so every path keeps its probability: 2,117 phrases took 7,863
    arcs as separate chains, 3,032 as a tree, which decoded the same words on 211 real clips
    with a third of the CPU and built in a quarter of the time). Fillers `before` loop on
    the start state; the phrases end in a state on which the fillers `after` loop, with an
    epsilon arc on to the final state."""
    start, final, next_state = 0, 1, 2
    arcs: list[tuple[Any, ...]] = []
    enter = 0.5 / max(1, len(phrases) + len(decoys))  # half the mass to the words, half to garbage
    arcs += [(start, final, enter, word) for word in decoys]
    end = final
    if after:
        end, next_state = next_state, next_state + 1
        arcs.append((end, final, 1.0))

    def branch(state: int, group: list[tuple[str, ...]], depth: int) -> None:
        """Arcs out of `state`, which the phrases of `group` share up to word `depth`."""
        nonlocal next_state
        by_word: dict[str, list[tuple[str, ...]]] = {}
        for words in group:
            by_word.setdefault(words[depth], []).append(words)
        scale = enter if depth == 0 else 1.0 / len(group)  # each phrase keeps `enter` in all
        for word, sub in by_word.items():
            going = [w for w in sub if len(w) > depth + 1]
            if len(going) < len(sub):
                arcs.append((state, end, scale * (len(sub) - len(going)), word))
            if going:
                dst, next_state = next_state, next_state + 1
                arcs.append((state, dst, scale * len(going), word))
                branch(dst, going, depth + 1)

    def chain(first: int, last: int, words: tuple[str, ...], p: float) -> None:
        nonlocal next_state
        prev = first
        for i, word in enumerate(words):
            if i == len(words) - 1:
                dst = last
            else:
                dst, next_state = next_state, next_state + 1
            arcs.append((prev, dst, p if i == 0 else 1.0, word))
            prev = dst

    branch(start, phrases, 0)
    for state, fillers in ((start, before), (end, after)):
        for words in fillers:
            chain(state, state, words, FILLER_P / len(fillers))
    loop_in, loop_out = next_state, next_state + 1
    arcs.append((start, loop_in, 0.5))
    arcs += [(loop_in, loop_out, garbage_p, f"{GARBAGE_PREFIX}{p.lower()}") for p in PHONES]
    arcs += [(loop_out, loop_in, 1.0), (loop_out, final, 1.0)]
    return arcs


def _base(word: str) -> str:
    """A dictionary word without its alternative-pronunciation mark ("the(2)" -> "the")."""
    return word.split("(", 1)[0]


def _is_filler(word: str) -> bool:
    return (
        word.startswith("<")
        or word.startswith("[")
        or (word.startswith("+") and not word.startswith(GARBAGE_PREFIX))
    )


def _unexplained_s(segment: Segment, segs: list[tuple[str, int, int]], fill_gaps_s: float) -> float:
    """Seconds of endpointer speech frames inside decoder silence or fillers (or outside
    every decoded word, as when nothing was decoded at all)."""
    speech = segment.speech.copy()
    gap = round(fill_gaps_s / segment.frame_s)
    if gap:
        # In noise the endpointer hears the vowels only; the consonants between are speech too.
        where = np.flatnonzero(speech)
        for a, b in zip(where[:-1], where[1:], strict=True):
            if 1 < b - a <= gap + 1:
                speech[a:b] = True
    covered = np.zeros(len(segment.speech), dtype=bool)
    centres = (np.arange(len(segment.speech)) + 0.5) * segment.frame_s / FRAME_S
    for word, first, last in segs:
        if not _is_filler(word):
            covered |= (centres >= first) & (centres < last + 1)
    return float(np.count_nonzero(speech & ~covered)) * segment.frame_s


def _level_dbfs(noise_psd: npt.NDArray[np.float64]) -> float:
    """The level of noise with this spectrum (variance per sample and bin), in dBFS."""
    return 10.0 * float(np.log10(max(float(np.mean(noise_psd)), 1e-10) / 32768.0**2))
