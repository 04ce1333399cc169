"""The pocketsphinx engine on real speech from the bundled voice.

Fixed renderings (`varied=False`): the same audio every run, so a test that fails
has found a change in the code, not an unlucky draw of piper's random prosody (one
did: the reset test failed once in a full run). Voices vary in the accuracy suite
and in the one test here marked `accuracy`.
"""

from __future__ import annotations

import numpy as np
import pytest

from assistant.coach.intents import IntentSet
from assistant.errors import DeviceError, RecognizerError, SphinxError
from assistant.hear.recognizer import Hypothesis, Recognizer
from assistant.hear.sphinx_engine import SphinxRecognizer, SphinxSettings, _transitions
from assistant.pcm import RATE_HZ
from tests.kit import speech


@pytest.fixture(scope="module")
def recognizer(lang: IntentSet) -> SphinxRecognizer:
    return SphinxRecognizer(lang.phrases())


@pytest.fixture
def fresh(recognizer: SphinxRecognizer, lang: IntentSet) -> SphinxRecognizer:
    """The shared recogniser, with the full grammar and no utterance under way."""
    recognizer.set_phrases(lang.phrases())
    recognizer.reset()
    return recognizer


def test_it_is_a_recognizer(recognizer: SphinxRecognizer) -> None:
    engine: Recognizer = recognizer
    assert engine.name == "pocketsphinx"


def test_grammar_has_every_phrase_and_a_garbage_loop(recognizer: SphinxRecognizer, lang: IntentSet) -> None:
    # Every phrase of the intents is sayable, "unpause" included (a compound the dictionary lacks).
    assert sorted(recognizer._phrases.values()) == lang.phrases()
    arcs = _transitions([("pause",), ("hold", "on")], 1e-8)
    words = [a[3] for a in arcs if len(a) == 4]
    assert words[:3] == ["pause", "hold", "on"]
    assert sum(w.startswith("+g_") for w in words) == 39


def test_phrases_share_their_first_words_and_keep_equal_odds() -> None:
    phrases = [("start",), ("start", "back", "stretch"), ("start", "the", "stretch"), ("stop",)]
    arcs = _transitions(phrases, 1e-8, ["left"])
    out: dict[int, list[tuple[int, float, str]]] = {}
    for a in arcs:
        if len(a) == 4 and not a[3].startswith("+g_"):
            out.setdefault(a[0], []).append((a[1], a[2], a[3]))
    assert sorted(w for _, _, w in out[0]).count("start") == 2  # one ends "start", one goes on

    def paths(state: int, p: float, said: tuple[str, ...]) -> list[tuple[tuple[str, ...], float]]:
        found = []
        for dst, q, word in out.get(state, []):
            found += [(said + (word,), p * q)] if dst == 1 else paths(dst, p * q, said + (word,))
        return found

    odds = dict(paths(0, 1.0, ()))
    assert sorted(odds) == sorted([*phrases, ("left",)])
    assert all(abs(p - 0.5 / 5) < 1e-12 for p in odds.values())  # each as likely as the others
    assert sum(len(v) for v in out.values()) == 8  # 9 arcs as chains: "start" goes on once


def _piper(text: str) -> speech.Samples:
    return speech.piper(text, varied=False)


def _say(text: str, lead_s: float = 0.6, trail_s: float = 1.0) -> speech.Samples:
    return np.concatenate([speech.silence(lead_s), _piper(text), speech.silence(trail_s)])


def test_streaming_in_30_ms_chunks_gives_times_in_audio_seconds(fresh: SphinxRecognizer) -> None:
    stream = speech.build_stream([("start back stretch", _piper("start back stretch"))], lead_s=2.0)
    hyps = speech.run_stream(fresh, stream.samples)
    assert [h.text for h in hyps] == ["start back stretch"]
    (hyp,) = hyps
    clip = stream.clips[0]
    # piper leaves a little silence around its words; the endpointer's frames are 20 ms.
    assert clip.start_s - 0.05 <= hyp.speech_start_s < clip.start_s + 0.3
    assert clip.end_s - 0.4 < hyp.speech_end_s <= clip.end_s + 0.05
    assert hyp.speech_end_s + 0.3 <= hyp.final_s <= hyp.speech_end_s + 0.5  # the hangover
    assert hyp.final_s <= stream.samples.size / RATE_HZ


def test_each_result_comes_from_the_chunk_that_ended_the_utterance(fresh: SphinxRecognizer) -> None:
    samples = np.concatenate([_say("pause"), _say("slow down")])
    step = round(0.03 * RATE_HZ)
    seen: list[tuple[float, Hypothesis]] = []
    for i in range(0, len(samples), step):
        end_s = (i + step) / RATE_HZ
        seen += [(end_s, h) for h in fresh.feed(samples[i : i + step], end_s)]
    assert [h.text for _, h in seen] == ["pause", "slow down"]
    assert all(h.final_s == end for end, h in seen)


def test_a_whole_command_ends_its_utterance_early(fresh: SphinxRecognizer, lang: IntentSet) -> None:
    """After `early_s` of quiet, a phrase the listener approves ends the utterance; one it does
    not approve waits for the full hangover. Either way the same audio is decoded."""
    samples = np.concatenate([_say("pause"), _say("slow down"), _say("repeat")])
    asked: list[str] = []

    def complete(phrase: str, start_s: float, end_s: float) -> bool:
        asked.append(phrase)
        return phrase != "repeat"

    fresh.set_phrases(lang.phrases(), complete)
    hyps = speech.run_stream(fresh, samples)
    assert [h.text for h in hyps] == ["pause", "slow down", "repeat"]
    assert asked == ["pause", "slow down", "repeat"]
    early = fresh.settings.vad.early_s
    hangover = fresh.settings.vad.hangover_s
    for hyp in hyps[:2]:
        assert early - 1e-9 <= hyp.final_s - hyp.speech_end_s < early + 0.06
    assert hangover - 1e-9 <= hyps[2].final_s - hyps[2].speech_end_s < hangover + 0.06
    assert fresh.endpointer.ended_early == 2


def test_set_phrases_restricts_the_grammar(fresh: SphinxRecognizer, lang: IntentSet) -> None:
    fresh.set_phrases(["start back stretch"])
    hyps = speech.run_stream(fresh, np.concatenate([_say("pause"), _say("start back stretch")]))
    assert [h.text for h in hyps] == ["", "start back stretch"]
    fresh.set_phrases(lang.phrases())
    assert [h.text for h in speech.run_stream(fresh, _say("pause"))] == ["pause"]


def test_an_utterance_where_nothing_could_count_is_not_decoded(lang: IntentSet) -> None:
    """`set_ignored` (the Listener's, over the coach's cancelled voice): an utterance it says
    nothing could count in comes back undecoded, with its times; the rest is decoded."""
    recognizer = SphinxRecognizer(lang.phrases())
    first = _say("pause")
    second_s = len(first) / RATE_HZ  # where the second "pause" (and its lead silence) begins
    asked: list[tuple[float, float]] = []

    def ignored(start: float, end: float) -> bool:
        asked.append((start, end))
        return start < second_s

    recognizer.set_ignored(ignored)
    hyps = speech.run_stream(recognizer, np.concatenate([first, _say("pause")]))
    assert [(h.text, h.undecoded) for h in hyps] == [("", True), ("pause", False)]
    assert 0.5 < hyps[0].speech_start_s < hyps[0].speech_end_s < second_s and asked


def test_speech_that_is_no_command_is_rejected(fresh: SphinxRecognizer) -> None:
    sentence = "The cat is sleeping on the sofa, and the kettle has boiled."
    hyps = speech.run_stream(fresh, _say(sentence))
    assert hyps and all(h.text == "" for h in hyps)


def test_flush_finishes_an_utterance_at_the_end_of_input(fresh: SphinxRecognizer) -> None:
    samples = _say("hold on", trail_s=0.1)  # shorter than the endpointer's hangover
    step = round(0.03 * RATE_HZ)
    fed: list[Hypothesis] = []
    for i in range(0, len(samples), step):
        fed += fresh.feed(samples[i : i + step], (i + step) / RATE_HZ)
    assert fed == []
    end_s = len(samples) / RATE_HZ
    (hyp,) = fresh.flush(end_s)
    assert (hyp.text, hyp.final_s) == ("hold on", end_s)
    assert fresh.flush(end_s) == []


def test_reset_drops_the_utterance_in_progress(fresh: SphinxRecognizer) -> None:
    first = _say("start back stretch", trail_s=0.0)
    half = len(first) - len(_piper("start back stretch")) // 2
    fresh.feed(first[:half], half / RATE_HZ)
    assert fresh.endpointer.in_speech
    fresh.reset()
    rest = np.concatenate([speech.silence(0.5), _say("pause")])
    hyps = fresh.feed(rest, half / RATE_HZ + len(rest) / RATE_HZ) + fresh.flush(
        half / RATE_HZ + len(rest) / RATE_HZ
    )
    assert [h.text for h in hyps] == ["pause"]


# Short commands, each said alone to a new recogniser (its cepstral mean not yet adapted).
FIRST_WORDS = (
    "stop",
    "pause",
    "resume",
    "wait",
    "help",
    "skip",
    "slower",
    "repeat",
    "hold on",
    "how many more",
)


@pytest.mark.parametrize("varied", [False, pytest.param(True, marks=pytest.mark.accuracy)])
def test_a_command_said_first_and_alone_is_heard(lang: IntentSet, varied: bool) -> None:
    """Each command is the first utterance a fresh recogniser hears, with room noise around it
    (a user who says "stop" as the session starts); three speaking rates."""
    wrong: list[tuple[str, float, list[str]]] = []
    recognizer = SphinxRecognizer(lang.phrases())  # restarted for each: as new, without a reload
    for length_scale in (0.8, 1.0, 1.25):
        for i, text in enumerate(FIRST_WORDS):
            samples = speech.in_room(speech.piper(text, length_scale, varied=varied), seed=i)
            recognizer.restart()
            heard = [h.text for h in speech.run_stream(recognizer, samples) if h.text]
            intent = lang.match(text)
            if [m.name for h in heard if (m := lang.match(h)) is not None] != [intent and intent.name]:
                wrong.append((text, length_scale, heard))
    # Measured: fixed renderings 30 of 30; varied ones (random prosody) 27 to 30 of 30,
    # 125 to 126 of 126 over 18 commands and 7 renderings. Before cmninit: 13 of 40. With
    # issue 12's grammar and distractor words, varied: 26 of 30 once ("stop" and "skip" at
    # two rates, rejected).
    assert len(wrong) <= (0 if not varied else 5), wrong  # fixed renderings: the same every run


def test_silence_and_digital_zeros_give_nothing(fresh: SphinxRecognizer) -> None:
    assert speech.run_stream(fresh, speech.silence(3.0)) == []


def test_a_missing_model_is_one_clear_error(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(SphinxError, match="model file missing") as info:
        SphinxRecognizer(["pause"], SphinxSettings(model_dir=tmp_path))  # type: ignore[arg-type]
    assert isinstance(info.value, RecognizerError) and not isinstance(info.value, DeviceError)


def test_a_restarted_recogniser_hears_as_a_new_one(lang: IntentSet) -> None:
    """restart() forgets the noise estimate and the cepstral mean that earlier audio taught it
    (the real-speech tests rely on it to hear each clip afresh without reloading the model)."""
    first = speech.in_room(speech.espeak("I think it's going to rain tomorrow", "en-gb"), seed=1)
    clip = speech.in_room(speech.piper("hold on", varied=False), seed=2)
    used = SphinxRecognizer(lang.phrases())
    at_start = used._decoder.get_cmn(False)
    speech.run_stream(used, first)
    floor = used.settings.vad.floor_dbfs
    # the first clip taught it a cepstral mean and a noise level
    assert used._decoder.get_cmn(False) != at_start and used.endpointer.classifier.noise_dbfs != floor
    used.restart()
    assert used._decoder.get_cmn(False) == at_start and used.endpointer.classifier.noise_dbfs == floor
    again = speech.run_stream(used, clip)
    new = speech.run_stream(SphinxRecognizer(lang.phrases()), clip)
    assert [(h.text, h.speech_start_s, h.speech_end_s) for h in again] == [
        (h.text, h.speech_start_s, h.speech_end_s) for h in new
    ]
    assert used.last is not None and used.last.words
