"""The generated speech sets of the recogniser tests and the bench (tests/test_accuracy.py,
bench/accuracy.py): command phrases, speech that is no command, and their decoding.

The set: 4 phrases per intent (the canonical one and three natural variants, 48 in
all) spoken by the bundled piper voice at length_scale 0.8, 1.0 and 1.25, clean
and under continuous white noise at 10 dB SNR, and by four espeak-ng voices. Out
of vocabulary: sentences of the routine text, every cue the coach can say, and
ordinary chatter, which must fire no intent at all.

Each condition is one continuous stream fed in 30 ms chunks to a fresh recogniser,
as a microphone would, so endpointing, the noise tracker and the decoder's
cepstral mean all work as they do in a session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from assistant.coach import intents, routine
from assistant.coach.dialogue import foreseeable_texts
from assistant.coach.intents import IntentSet
from assistant.coach.routine import VERBOSITIES
from assistant.hear.listen import Listener
from assistant.hear.recognizer import Recognizer
from assistant.pcm import RATE_HZ
from tests.kit import speech

COMMANDS: dict[str, tuple[str, ...]] = {
    "start": ("start back stretch", "let's begin", "begin the exercise", "start the routine"),
    "pause": ("pause", "hold on", "wait a moment", "i need a break"),
    "resume": ("resume", "keep going", "i'm ready", "continue"),
    "stop": ("stop", "i'm done", "that's enough", "stop the session"),
    "slower": ("slower", "slow down", "a bit slower", "too fast"),
    "faster": ("faster", "speed up", "a little faster", "too slow"),
    "repeat": ("repeat", "say that again", "what did you say", "i didn't catch that"),
    "status": ("where am i", "how many more", "how many left", "how long is left"),
    "skip": ("skip", "next side", "switch legs", "skip to the next set"),
    "help": ("help", "what can i say", "list the commands", "what are the commands"),
    "louder": ("louder", "speak up", "volume up", "i can't hear you"),
    "quieter": ("quieter", "volume down", "too loud", "turn it down"),
}

# From shared/seed/knee-hug-routine.txt (copied: the tests must not need ../shared).
ROUTINE_TEXT = (
    "Stretching while lying down can relieve back pain! Isn't it super simple?",
    "The causes of back pain are often different depending on age.",
    "For example, young people are usually caused by wrong posture.",
    "Lie flat on the bed in the most relaxed position possible.",
    "Relax and straighten one foot, and bend the other foot.",
    "Hold your knees with your hands and take a deep breath.",
    "During the process of exhaling, lift the thighs as close as possible to the chest and abdomen.",
    "After doing 20 reps on one side, switch feet.",
    "Doing both sides counts as one set, and do at least three sets of cycles each time.",
    "You can stay for a deep breath each time, or you can adjust it according to your personal situation.",
    "The main thing is to stretch to the joints, not to stay as long as possible.",
)

CHATTER = (
    "I think it's going to rain tomorrow.",
    "The cat is sleeping on the sofa.",
    "What time is dinner tonight?",
    "My back feels a bit better today.",
    "Did you remember to buy milk?",
    "The phone is ringing in the kitchen.",
    "Can you pass me the remote?",
    "We should call your mother this weekend.",
    "I left my glasses upstairs.",
    "That movie was really long.",
    "Good morning, how did you sleep?",
)

PIPER_RATES = (0.8, 1.0, 1.25)
ESPEAK_VOICES = ("en-us", "en-us+m3", "en-us+f3", "en-gb")
NOISE_SNR_DB = 10.0


def coach_texts(lang: IntentSet) -> list[str]:
    """Everything the coach can say: every cue and fixed reply at every verbosity, and
    the replies with values filled in as a session fills them."""
    plan = routine.load()
    texts: set[str] = set()
    for verbosity in VERBOSITIES:
        texts |= foreseeable_texts(plan, lang, verbosity)
    where = {"set": "two", "sets": "three", "side": "left", "rep": "seven", "reps": "twenty"}
    texts |= {
        lang.say("already_paused", **where),
        lang.say("resuming", **where),
        lang.say("already_running", **where),
        lang.say("status", **where, minutes="twelve minutes"),
        lang.say("status_paused", **where, minutes="five minutes"),
        lang.say("status_idle", minutes="eighteen minutes"),
    }
    return sorted(texts)


@dataclass(frozen=True)
class Item:
    text: str  # what was said
    expected: str | None  # the intent, or None for speech that is no command
    heard: tuple[str, ...]  # the intents fired (hypotheses matched to intents)
    said: tuple[str, ...] = ()  # the texts of those hypotheses


@dataclass(frozen=True)
class Result:
    condition: str
    items: tuple[Item, ...]
    audio_s: float
    cpu_s: float
    latencies_s: tuple[float, ...]  # final_s minus the clip's true end, for correct commands

    @property
    def correct(self) -> int:
        return sum(1 for i in self.items if i.expected is not None and i.heard == (i.expected,))

    @property
    def commands(self) -> int:
        return sum(1 for i in self.items if i.expected is not None)

    @property
    def false_intents(self) -> int:
        """Intents fired on speech that is no command."""
        return sum(len(i.heard) for i in self.items if i.expected is None)

    @property
    def accuracy(self) -> float:
        return self.correct / self.commands if self.commands else 1.0

    def summary(self) -> dict[str, object]:
        lat = sorted(self.latencies_s)
        return {
            "condition": self.condition,
            "commands": self.commands,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 4),
            "oov_items": len(self.items) - self.commands,
            "false_intents": self.false_intents,
            "rtf": round(self.cpu_s / self.audio_s, 4),
            "latency_median_s": round(lat[len(lat) // 2], 3) if lat else None,
            "latency_max_s": round(lat[-1], 3) if lat else None,
            "errors": [asdict(i) for i in self.items if (i.heard != ((i.expected,) if i.expected else ()))],
        }


def conditions() -> list[str]:
    out = [f"piper {r:g}" for r in PIPER_RATES]
    out += [f"piper {r:g} +{NOISE_SNR_DB:g}dB" for r in PIPER_RATES]
    out += [f"espeak {v}" for v in ESPEAK_VOICES]
    out += ["oov routine", "oov chatter", "oov cues", "oov espeak", "oov routine+chatter +10dB"]
    return out


def _clips(
    condition: str, lang: IntentSet
) -> tuple[list[tuple[str, str | None]], list[tuple[str, speech.Samples]]]:
    kind, _, rest = condition.partition(" ")
    commands = [(p, name) for name, phrases in COMMANDS.items() for p in phrases]
    if kind == "piper":
        rate = float(rest.split()[0])
        labelled: list[tuple[str, str | None]] = list(commands)
        return labelled, [(t, speech.piper(t, rate)) for t, _ in labelled]
    if kind == "espeak":
        labelled = list(commands)
        return labelled, [(t, speech.espeak(t, rest)) for t, _ in labelled]
    sentences = {
        "routine": ROUTINE_TEXT,
        "chatter": CHATTER,
        "cues": tuple(coach_texts(lang)),
        "espeak": ROUTINE_TEXT + CHATTER,
        "routine+chatter": ROUTINE_TEXT + CHATTER,
    }[rest.split()[0]]
    labelled = [(t, None) for t in sentences]
    if rest == "espeak":
        return labelled, [(t, speech.espeak(t, "en-us")) for t, _ in labelled]
    return labelled, [(t, speech.piper(t)) for t, _ in labelled]


def evaluate(
    condition: str, settings: object = None, make: Callable[[Sequence[str]], Recognizer] | None = None
) -> Result:
    """Decode one condition's stream with a fresh recogniser: pocketsphinx with `settings`,
    or what `make(phrases)` returns."""
    from assistant.hear.sphinx_engine import SphinxRecognizer, SphinxSettings

    lang = intents.load()
    labelled, clips = _clips(condition, lang)
    noisy = "dB" in condition
    stream = speech.build_stream(clips, snr_db=NOISE_SNR_DB if noisy else None, seed=len(condition))
    if make is not None:
        recognizer: Recognizer = make(lang.phrases())
    else:
        sphinx = settings if isinstance(settings, SphinxSettings) else SphinxSettings()
        recognizer = SphinxRecognizer(lang.phrases(), sphinx)
    if condition != "oov cues":
        # The phrases as a session's Listener sets them: whole commands may end early, as
        # between the coach's sentences; over them (the coach's own cues reaching the
        # microphone) an utterance is never ended early.
        Listener(recognizer, lang)
    started = time.process_time()
    hyps = speech.run_stream(recognizer, stream.samples)
    cpu_s = time.process_time() - started
    items: list[Item] = []
    latencies: list[float] = []
    for (text, expected), clip, heard in zip(
        labelled, stream.clips, speech.assign(stream, hyps), strict=True
    ):
        matched = [(h.text, m.name) for h in heard if (m := lang.match(h.text)) is not None]
        items.append(Item(text, expected, tuple(n for _, n in matched), tuple(t for t, _ in matched)))
        if expected is not None and items[-1].heard == (expected,):
            latencies.append(heard[0].final_s - clip.end_s)
    return Result(condition, tuple(items), len(stream.samples) / RATE_HZ, cpu_s, tuple(latencies))


def evaluate_all(conditions: list[str]) -> list[Result]:
    """`evaluate` each condition in turn, in one process (its synthesis cache shared)."""
    return [evaluate(condition) for condition in conditions]
