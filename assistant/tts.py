"""Text to speech with piper: one voice, one set of speech settings, audio out.

Audio travels as `Audio` (int16 mono samples plus their rate). Volume is not
applied here: it changes during a session and is applied at playback, so the
cue cache stays valid when the user says "louder".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.audio import Audio
from assistant.voices import VoiceError, VoiceInfo

if TYPE_CHECKING:
    from piper import PiperVoice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeechSettings:
    """What shapes the synthesised audio (and so is part of the cache key)."""

    speaker: int | None = None  # for multi-speaker voices; None: the voice's default
    speech_rate: float = 1.0  # 1.0 normal; piper's length_scale is its inverse
    sentence_pause_s: float = 0.2  # silence between sentences

    def key(self) -> str:
        return f"spk={self.speaker}|rate={self.speech_rate:g}|pause={self.sentence_pause_s:g}"


class Synthesizer:
    """A loaded piper voice; `synthesize` turns text into `Audio`."""

    def __init__(self, voice: VoiceInfo, settings: SpeechSettings) -> None:
        self.voice = voice
        self.settings = settings
        self._piper: PiperVoice | None = None
        if settings.speaker is not None and settings.speaker >= voice.speakers:
            raise VoiceError(
                f"voice {voice.name} has {voice.speakers} speaker(s); voice.speaker must be below that"
            )

    @property
    def rate_hz(self) -> int:
        return self.voice.sample_rate_hz

    def _load(self) -> PiperVoice:
        if self._piper is None:
            from piper import PiperVoice

            try:
                self._piper = PiperVoice.load(self.voice.model, self.voice.config)
            except Exception as exc:  # onnxruntime raises its own types for a damaged model
                raise VoiceError(
                    f"voice {self.voice.name}: cannot load {self.voice.model} "
                    f"({type(exc).__name__}); the file is damaged: download or copy it again"
                ) from exc
            log.info("loaded voice %s (%s)", self.voice.name, self.voice.source)
        return self._piper

    def synthesize(self, text: str) -> Audio:
        """The whole of `text` as one clip, sentences joined by the configured pause."""
        from piper import SynthesisConfig

        voice = self._load()
        config = SynthesisConfig(
            speaker_id=self.settings.speaker, length_scale=1.0 / self.settings.speech_rate
        )
        pause = np.zeros(round(self.settings.sentence_pause_s * self.rate_hz), dtype=np.int16)
        parts: list[Any] = []
        for chunk in voice.synthesize(text, config):
            if chunk.sample_rate != self.rate_hz:
                raise VoiceError(
                    f"voice {self.voice.name} produced {chunk.sample_rate} Hz, not its stated rate"
                )
            if parts:
                parts.append(pause)
            parts.append(chunk.audio_int16_array.reshape(-1))
        samples = np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)
        log.debug("synthesised %.2f s for %r", len(samples) / self.rate_hz, text)
        return Audio(samples, self.rate_hz)
