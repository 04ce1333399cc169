"""Synthesis with piper (speak/tts.py): the bundled voice, for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import VoiceError
from assistant.speak import voices
from assistant.speak.tts import SpeechSettings, Synthesizer

TWO_SENTENCES = "Breathe out, and pull your thigh toward your chest. One."


@pytest.fixture(scope="module")
def joe() -> voices.VoiceInfo:
    return voices.resolve(voices.DEFAULT_VOICE)


@pytest.fixture(scope="module")
def fixed(joe: voices.VoiceInfo) -> Synthesizer:
    return Synthesizer(joe, SpeechSettings(varied=False))


def test_synthesis_is_real_speech_at_the_voice_rate(fixed: Synthesizer) -> None:
    audio = fixed.synthesize("Breathe in.")
    assert audio.rate_hz == fixed.rate_hz == 22050
    assert 0.4 < audio.duration_s < 2.5
    assert np.abs(audio.samples).max() > 5000  # not silence
    assert fixed.synthesize("").samples.size == 0


def test_fixed_renderings_are_the_same_every_time_and_varied_ones_are_not(
    fixed: Synthesizer, joe: voices.VoiceInfo
) -> None:
    """Why tests that need the same audio every run ask for `varied=False`."""
    assert np.array_equal(fixed.synthesize("Stay.").samples, fixed.synthesize("Stay.").samples)
    varied = Synthesizer(joe, SpeechSettings())
    first, second = (varied.synthesize("Breathe in, and relax.").samples for _ in range(2))
    assert len(first) != len(second) or not np.array_equal(first, second)


def test_the_sentence_pause_is_exact(fixed: Synthesizer, joe: voices.VoiceInfo) -> None:
    """Sentences are synthesised one by one and joined by `sentence_pause_s` of silence."""
    short = fixed.synthesize(TWO_SENTENCES).samples  # the default pause, 0.2 s
    long = (
        Synthesizer(joe, SpeechSettings(varied=False, sentence_pause_s=1.2)).synthesize(TWO_SENTENCES).samples
    )
    assert len(long) - len(short) == round(1.2 * 22050) - round(0.2 * 22050)
    gap = np.flatnonzero(long[: len(short)] != short)[0]  # where the second sentence begins in `short`
    assert not long[gap : gap + round(1.0 * 22050)].any()  # the extra second is silence


def test_speech_rate_stretches_the_speech(fixed: Synthesizer, joe: voices.VoiceInfo) -> None:
    slow = Synthesizer(joe, SpeechSettings(varied=False, speech_rate=0.7))
    pause_s = 0.2  # the pause between the two sentences is not stretched
    normal_s = fixed.synthesize(TWO_SENTENCES).duration_s - pause_s
    slow_s = slow.synthesize(TWO_SENTENCES).duration_s - pause_s
    assert slow_s / normal_s == pytest.approx(1 / 0.7, rel=0.15)


def test_settings_that_shape_the_audio_are_in_its_key() -> None:
    keys = {
        SpeechSettings().key(),
        SpeechSettings(speaker=1).key(),
        SpeechSettings(speech_rate=0.8).key(),
        SpeechSettings(sentence_pause_s=0.5).key(),
        SpeechSettings(varied=False).key(),
    }
    assert len(keys) == 5


def test_a_speaker_the_voice_lacks(joe: voices.VoiceInfo) -> None:
    with pytest.raises(
        VoiceError, match=r"voice en_US-joe-medium has 1 speaker\(s\); voice.speaker must be below"
    ):
        Synthesizer(joe, SpeechSettings(speaker=3))


def test_damaged_voice_is_one_clear_error(tmp_path: Path, joe: voices.VoiceInfo) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"this is not an onnx model")
    shutil.copy(joe.config, tmp_path / "broken.onnx.json")
    synth = Synthesizer(voices.resolve(str(model)), SpeechSettings())
    with pytest.raises(VoiceError, match=r"voice broken: cannot load .* the file is damaged"):
        synth.synthesize("hello")
