"""Listening: the self-hearing gate, the wake word, and `run --in` end to end.

The gate and wake-word tests drive the Listener with scripted hypotheses at the
Recognizer seam (what they test is the listener's own logic); the `--in` tests
use real piper speech and the real pocketsphinx recogniser.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant.app.cli import main
from assistant.coach.events import Say, SayKind
from assistant.coach.intents import IntentSet
from assistant.coach.phrasing import Fillers
from assistant.coach.track import SpeechTrack
from assistant.errors import RecognizerError
from assistant.hear.capture import CHUNK_FRAMES, Chunk
from assistant.hear.listen import TAIL_S, Listener
from assistant.hear.recognizer import Complete, Hypothesis
from assistant.hear.sphinx_engine import SphinxRecognizer
from assistant.pcm import Audio
from assistant.speak import voices
from assistant.speak.tts import SpeechSettings, Synthesizer
from assistant.speak.wav import write_wav


class Scripted:
    """A recogniser that returns given hypotheses when the audio clock passes their final_s."""

    name = "scripted"

    def __init__(self, hypotheses: Sequence[Hypothesis]) -> None:
        self.pending = list(hypotheses)
        self.phrases: list[str] = []

    def set_phrases(
        self,
        phrases: Sequence[str],
        complete: Complete | None = None,
        fillers: Fillers | None = None,
        favoured: Collection[str] = (),
    ) -> None:
        self.phrases = list(phrases)
        self.complete = complete
        self.favoured = set(favoured)

    def knows(self, word: str) -> bool:
        return True

    def feed(self, samples: np.ndarray, end_s: float) -> list[Hypothesis]:
        due = [h for h in self.pending if h.final_s <= end_s]
        self.pending = [h for h in self.pending if h.final_s > end_s]
        return due

    def flush(self, end_s: float) -> list[Hypothesis]:
        due, self.pending = self.pending, []
        return due

    def reset(self) -> None:
        self.pending = []


def _listen(listener: Listener, until_s: float) -> list[str]:
    heard = []
    silence = np.zeros(CHUNK_FRAMES, np.int16)
    for i in range(1, round(until_s / 0.03) + 1):
        heard += [c.text for c in listener.feed(Chunk(silence, i * 0.03))]
    return heard


def coach_saying(*spans: tuple[float, float, str]) -> SpeechTrack[Say]:
    """A speech track with the coach saying these (start, end, text)."""
    track: SpeechTrack[Say] = SpeechTrack()
    for start, end, text in spans:
        track.add(start, end, Say(start, text, end - start, SayKind.REPLY))
    return track


def test_the_gate_follows_the_track_with_its_tail(lang: IntentSet) -> None:
    coach = coach_saying((1.0, 3.0, "x"), (5.0, 9.0, "You can say pause, or stop."))
    coach.cut(6.0)
    listener = Listener(Scripted([]), lang, coach)
    assert listener._speaking(2.9, 3.5) and listener._speaking(3.0 + TAIL_S - 0.01, 4.0)
    assert not listener._speaking(3.0 + TAIL_S + 0.01, 4.9) and not listener._speaking(
        6.0 + TAIL_S + 0.01, 8.0
    )
    assert listener._speaking(5.5, 5.8, strict_only=True) and not listener._speaking(
        2.0, 2.5, strict_only=True
    )


def test_nothing_counts_over_the_coach_naming_a_barge_in_phrase(lang: IntentSet) -> None:
    """The help line says "pause" and "stop": heard through the microphone, they must not
    count; said by the user after it, they do."""
    coach = coach_saying((0.0, 5.0, lang.say("help")))
    hypotheses = [Hypothesis("stop", 4.2, 4.6, 4.9), Hypothesis("pause", 6.0, 6.5, 6.8)]
    listener = Listener(Scripted(hypotheses), lang, coach)
    assert _listen(listener, 8.0) == ["pause"]


def test_only_barge_in_commands_count_over_the_coach(lang: IntentSet) -> None:
    coach = coach_saying((0.0, 10.0, "Breathe in, and relax."))
    hypotheses = [
        Hypothesis("how many more", 2.0, 2.8, 3.1),  # over a cue: ignored
        Hypothesis("hold on", 4.0, 4.5, 4.8),  # over a cue, but a barge-in: heard
        Hypothesis("slow down", 11.0, 11.6, 11.9),  # between cues: heard
        Hypothesis("", 12.0, 12.5, 12.8),  # rejected by the recogniser
    ]
    listener = Listener(Scripted(hypotheses), lang, coach)
    assert _listen(listener, 13.0) == ["hold on", "slow down"]
    assert (listener.gated, listener.rejected) == (1, 1)


def test_a_barge_in_phrase_the_coach_is_saying_itself_does_not_count(lang: IntentSet) -> None:
    """ "Paused." decodes as "pause" where the echo is not cancelled (offline, before the
    canceller had learnt the room, the coach paused itself again over its own reply): over a
    sentence with a word that a barge-in phrase begins, that phrase does not count; the
    others do, and so does the phrase between sentences."""
    coach = coach_saying((0.0, 2.5, lang.say("paused")), (3.0, 8.0, "Hold your knee, and breathe on."))
    hypotheses = [
        Hypothesis("pause", 0.2, 0.6, 0.9),  # the coach's own "Paused": ignored
        Hypothesis("stop", 1.4, 1.8, 2.1),  # the user, over it: heard
        Hypothesis("hold on", 4.0, 4.5, 4.8),  # "hold ... on" is not "hold on": heard
        Hypothesis("pause", 9.0, 9.4, 9.7),  # after it: heard
    ]
    listener = Listener(Scripted(hypotheses), lang, coach)
    assert _listen(listener, 10.0) == ["stop", "hold on", "pause"]
    assert listener.gated == 1


def test_an_engine_deaf_over_a_cancelled_echo_takes_barge_in_phrases_over_raw_audio_only(
    lang: IntentSet,
) -> None:
    """pocketsphinx (`hears_over_cancelled_echo` False): "hold on" over a cue counts where the
    microphone came as it is (headphones, or a canceller not yet learnt), not where it came
    out of the echo canceller (its residue once sounded like "hang on"); between cues it
    counts either way. vosk's barge-in counts over cancelled audio too."""
    from assistant.hear.sphinx_engine import SphinxRecognizer
    from assistant.hear.vosk_engine import VoskRecognizer

    assert SphinxRecognizer.hears_over_cancelled_echo is False
    assert VoskRecognizer.hears_over_cancelled_echo is True
    coach = coach_saying((0.0, 10.0, "Breathe in, and relax."), (20.0, 30.0, "Breathe out."))
    said = [Hypothesis("hold on", 4.0, 4.5, 4.8), Hypothesis("hold on", 11.0, 11.5, 11.8),
            Hypothesis("hold on", 24.0, 24.5, 24.8)]  # fmt: skip
    for deaf, heard in ((True, ["hold on", "hold on"]), (False, ["hold on"] * 3)):
        recognizer = Scripted(list(said))
        recognizer.hears_over_cancelled_echo = not deaf  # type: ignore[attr-defined]
        listener = Listener(recognizer, lang, coach)
        # Cancelled from 20 s on (the canceller learnt the echo during the first cue).
        chunks = [
            Chunk(np.zeros(480, np.int16), (i + 1) * 0.03, cancelled=i * 0.03 >= 20.0) for i in range(1100)
        ]
        out = [c.text for chunk in chunks for c in listener.feed(chunk)]
        assert out == heard
        assert listener.gated == deaf


def test_what_a_deaf_engine_leaves_undecoded_is_gated_not_rejected(lang: IntentSet) -> None:
    """The Listener hands an engine that does not hear over a cancelled echo its `_deaf`
    test: true over the coach in cancelled audio only; what comes back undecoded counts
    as gated (said over the coach), not as a rejection."""
    coach = coach_saying((0.0, 10.0, "Breathe in, and relax."))
    recognizer = Scripted([Hypothesis("", 4.0, 4.5, 4.8, undecoded=True)])
    recognizer.hears_over_cancelled_echo = False  # type: ignore[attr-defined]
    given: list[object] = []
    recognizer.set_ignored = given.append  # type: ignore[attr-defined]
    listener = Listener(recognizer, lang, coach)
    (deaf,) = given
    chunks = [Chunk(np.zeros(480, np.int16), (i + 1) * 0.03, cancelled=i >= 100) for i in range(400)]
    assert [c.text for chunk in chunks for c in listener.feed(chunk)] == []
    assert (listener.gated, listener.rejected) == (1, 0)
    assert callable(deaf) and deaf(4.0, 4.5) and not deaf(1.0, 2.0) and not deaf(11.0, 11.5)


def test_a_command_may_end_early_only_when_whole_and_the_coach_is_quiet(lang: IntentSet) -> None:
    coach = coach_saying((0.0, 2.0, "Paused."))
    recognizer = Scripted([])
    Listener(recognizer, lang, coach)
    assert recognizer.complete is not None
    assert recognizer.complete("pause", 3.0, 3.5)
    assert not recognizer.complete("pause", 1.0, 1.5)  # "Paused." in the coach's voice sounds like it
    assert not recognizer.complete("pause", 2.1, 2.2)  # within the coach's tail
    assert not recognizer.complete("start", 3.0, 3.5)  # "start it again" means repeat: wait for the end
    assert not recognizer.complete("hello there", 3.0, 3.5)


def test_starting_takes_more_than_a_lone_word(lang: IntentSet) -> None:
    """A misheard "stop" decodes as "start" now and then: alone, it starts nothing; a
    phrase of two words or more does, and a lone "stop" still stops."""
    hypotheses = [
        Hypothesis("start", 1.0, 1.4, 1.6),
        Hypothesis("begin", 2.0, 2.4, 2.6),
        Hypothesis("start back stretch", 3.0, 3.9, 4.1),
        Hypothesis("let's begin", 5.0, 5.6, 5.8),
        Hypothesis("stop", 7.0, 7.4, 7.6),
        Hypothesis("okay start please", 8.0, 8.6, 8.8),  # fillers are no evidence
    ]
    assert getattr(lang.match("start"), "name", None) == "start"  # a phrase of the intent, typed
    listener = Listener(Scripted(hypotheses), lang)
    assert _listen(listener, 9.0) == ["start back stretch", "let us begin", "stop"]
    assert listener.rejected == 3


def test_starting_gives_way_to_a_stop_nearly_as_likely(lang: IntentSet) -> None:
    """vosk decoded the bundled voice's "stop the session" as "start the session" with "stop
    the session" 1.5 behind (bench section 6, stop 23): a command that starts something gives
    way to a stop or pause among the recogniser's close alternatives, and to nothing else."""
    hypotheses = [
        Hypothesis("start the session", 1.0, 1.8, 2.0, alternatives=("stop the session",)),
        Hypothesis("start back stretch", 3.0, 3.9, 4.1, alternatives=("start the stretch", "faster")),
        Hypothesis("let's begin", 5.0, 5.6, 5.8, alternatives=("louder", "okay pause please")),
        Hypothesis("faster", 7.0, 7.4, 7.6, alternatives=("stop",)),  # starts nothing: as heard
        Hypothesis("start", 8.0, 8.4, 8.6, alternatives=("stop",)),  # a lone word: refused as before
    ]
    listener = Listener(Scripted(hypotheses), lang)
    assert _listen(listener, 9.0) == ["stop the session", "start back stretch", "okay pause please", "faster"]
    assert listener.rejected == 1


def test_the_one_word_barge_in_phrases_are_favoured(lang: IntentSet) -> None:
    recognizer = Scripted([])
    Listener(recognizer, lang)
    assert recognizer.favoured == {"stop", "pause", "wait"}
    Listener(recognizer, lang, wake_word="Hey coach")  # "hey coach stop": no lone word to favour
    assert recognizer.favoured == set()


def test_wake_word(lang: IntentSet) -> None:
    recognizer = Scripted([Hypothesis("pause", 1.0, 1.5, 1.8), Hypothesis("hey coach pause", 3.0, 3.5, 3.8)])
    listener = Listener(recognizer, lang, wake_word="Hey coach")
    assert all(p.startswith("hey coach ") for p in recognizer.phrases)
    assert len(recognizer.phrases) == len(lang.phrases())
    assert _listen(listener, 5.0) == ["pause"]  # only the one said after the wake word
    assert recognizer.complete is not None and recognizer.complete("hey coach pause", 1.0, 1.5)
    assert not recognizer.complete("pause", 1.0, 1.5)


def test_session_time_offset(lang: IntentSet) -> None:
    listener = Listener(Scripted([Hypothesis("pause", 1.0, 1.5, 1.8)]), lang, offset_s=10.0)
    silence = np.zeros(CHUNK_FRAMES, np.int16)
    commands = [c for i in range(1, 100) for c in listener.feed(Chunk(silence, i * 0.03))]
    assert [(c.speech_end_s, c.fired_s) for c in commands] == [(11.5, 11.8)]


# -- run --in, end to end with real speech and pocketsphinx -------------------------


@pytest.fixture(scope="module")
def joe() -> Synthesizer:
    """The user's voice: fixed renderings, so these end-to-end runs are the same every
    time (the accuracy suite is where the voice varies)."""
    return Synthesizer(voices.resolve(voices.DEFAULT_VOICE), SpeechSettings(speech_rate=0.9, varied=False))


def _recording(path: Path, joe: Synthesizer, said: Sequence[tuple[float, str]], length_s: float) -> None:
    rate = joe.rate_hz
    out = np.zeros(round(length_s * rate), np.int16)
    for t, text in said:
        clip = joe.synthesize(text).samples
        out[round(t * rate) : round(t * rate) + len(clip)] = clip
    noise = np.random.default_rng(7).normal(0, 20, len(out))  # a quiet room, not digital silence
    write_wav(path, Audio(np.clip(out + noise, -32768, 32767).astype(np.int16), rate))


def _events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # no vosk model: pocketsphinx
    monkeypatch.delenv("BACKSTRETCH_VOSK_MODEL", raising=False)
    return tmp_path


def test_run_in_turns_spoken_commands_into_intents(home: Path, joe: Synthesizer) -> None:
    wav, timeline = home / "commands.wav", home / "t.jsonl"
    said = [
        (1.0, "start back stretch"),
        (40.0, "pause"),
        (50.0, "keep going"),
        (100.0, "stop"),
    ]  # over cues: barge-in
    _recording(wav, joe, said, 110.0)
    assert main(["run", "--in", str(wav), "--mute", "--timeline", str(timeline), "--quiet"]) == 0
    events = _events(timeline)
    intents = [e for e in events if e["event"] == "intent"]
    assert [e["name"] for e in intents] == ["start", "pause", "resume", "stop"]
    for event, (t, _) in zip(intents, said, strict=True):
        assert t < float(event["speech_end"]) < t + 2.5  # type: ignore[arg-type]
        assert 0.0 < float(event["fired"]) - float(event["speech_end"]) < 1.0  # type: ignore[arg-type]
        assert event["t"] == event["fired"]
    heard = [e for e in events if e["event"] == "heard"]
    assert len(heard) == 4 and all("speech_end" in e and "fired" in e for e in heard)


def test_run_in_fires_nothing_on_chatter(home: Path, joe: Synthesizer) -> None:
    wav, timeline = home / "chatter.wav", home / "t.jsonl"
    chatter = [(1.0, "I think it is going to rain tomorrow afternoon."),
               (6.0, "The cat has been asleep on the sofa all morning."),
               (12.0, "Lie flat on the bed in the most relaxed position possible."),
               (18.0, "The main thing is to stretch the joints, not to stay long.")]  # fmt: skip
    # Not "Breathe in, and relax your arms...": read aloud by a person while the coach is
    # quiet, "Breathe in" then a pause ends early as "repeat that" (the coach's own voice
    # is never ended early; see Listener.complete).
    _recording(wav, joe, chatter, 25.0)
    assert main(["run", "--in", str(wav), "--mute", "--timeline", str(timeline), "--quiet"]) == 0
    assert [e for e in _events(timeline) if e["event"] in ("heard", "intent")] == []


def test_unreadable_in_file_is_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = home / "bad.wav"
    bad.write_bytes(b"not a wav")
    assert main(["run", "--in", str(bad), "--mute"]) == 2
    err = capsys.readouterr().err
    assert "bad.wav: not a readable WAV file" in err and err.count("\n") == 1


# -- the wake word must be something the recogniser can hear ----------------------


@pytest.fixture(scope="module")
def sphinx(lang: IntentSet) -> SphinxRecognizer:
    return SphinxRecognizer(lang.phrases())


@pytest.mark.parametrize(
    ("wake", "message"),
    [
        ("xyzzyq", r"^stt\.wake_word 'xyzzyq': pocketsphinx cannot hear 'xyzzyq' \(not in its dictionary\)"),
        ("coach zqxj", r"^stt\.wake_word 'coach zqxj': pocketsphinx cannot hear 'zqxj'"),
        ("!!!", r"^stt\.wake_word '!!!' has no word in it"),
    ],
)
def test_a_wake_word_the_recogniser_cannot_hear_is_refused(
    sphinx: SphinxRecognizer,
    lang: IntentSet,
    caplog: pytest.LogCaptureFixture,
    wake: str,
    message: str,
) -> None:
    with pytest.raises(RecognizerError, match=message) as caught:
        Listener(sphinx, lang, wake_word=wake)
    assert "\n" not in str(caught.value)
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []  # not one per phrase


def test_a_known_wake_word_keeps_every_phrase(
    sphinx: SphinxRecognizer, lang: IntentSet, caplog: pytest.LogCaptureFixture
) -> None:
    Listener(sphinx, lang, wake_word="Computer")
    assert len(sphinx._phrases) == len(lang.phrases())
    assert all(words[0] == "computer" for words in sphinx._phrases)
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []
    sphinx.set_phrases(lang.phrases())


def test_run_with_an_unknown_wake_word_is_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "c.yaml").write_text("stt:\n  engine: pocketsphinx\n  wake_word: xyzzyq\n")
    wav = home / "quiet.wav"
    write_wav(wav, Audio(np.zeros(16000, np.int16), 16000))
    assert main(["--config", str(home / "c.yaml"), "run", "--in", str(wav), "--mute", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("backstretch: stt.wake_word 'xyzzyq': pocketsphinx cannot hear")
        and err.count("\n") == 1
    )
