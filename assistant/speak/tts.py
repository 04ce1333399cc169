"""Text to speech with piper: one voice, one set of speech settings, audio out.

Audio travels as `Audio` (int16 mono samples plus their rate). Volume is not
applied here: it changes during a session and is applied at playback, so the
cue cache stays valid when the user says "louder".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.errors import VoiceError
from assistant.pcm import Audio
from assistant.speak.voices import VoiceInfo

if TYPE_CHECKING:
    from piper import PiperVoice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeechSettings:
    """What shapes the synthesised audio (and so is part of the cache key)."""

    speaker: int | None = None  # for multi-speaker voices; None: the voice's default
    speech_rate: float = 1.0  # 1.0 normal; piper's length_scale is its inverse
    sentence_pause_s: float = 0.2  # silence between sentences
    varied: bool = True  # piper's random prosody; False renders a text the same every time

    def key(self) -> str:
        fixed = "" if self.varied else "|fixed"
        return f"spk={self.speaker}|rate={self.speech_rate:g}|pause={self.sentence_pause_s:g}{fixed}"


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
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig
            from piper.voice import ESPEAK_DATA_DIR  # type: ignore[attr-defined]

            # Leave a core to the audio callback: with every core busy synthesising,
            # the output stream underruns (measured here with 2 cores).
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = max(1, (os.cpu_count() or 2) - 1)
            options.inter_op_num_threads = 1
            # Basic graph optimisations only: the extended ones cost 1 to 1.5 s at every load
            # (2.2 s against 1.2 s on a loaded 2-core x86) and saved no synthesis time
            # (CPU time per cue the same to 10 %, measured here): the first words wait on it.
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
            try:
                config = PiperConfig.from_dict(json.loads(self.voice.config.read_text(encoding="utf-8")))
                session = onnxruntime.InferenceSession(
                    str(self.voice.model), sess_options=options, providers=["CPUExecutionProvider"]
                )
                self._piper = PiperVoice(session=session, config=config, espeak_data_dir=ESPEAK_DATA_DIR)
            except Exception as exc:  # onnxruntime raises its own types for a damaged model
                raise VoiceError(
                    f"voice {self.voice.name}: cannot load {self.voice.model} "
                    f"({type(exc).__name__}); the file is damaged: download or copy it again"
                ) from exc
            log.info("loaded voice %s (%s)", self.voice.name, self.voice.source)
        return self._piper

    def load(self) -> None:
        """Load the voice now rather than at the first synthesis (a second or two on a Pi)."""
        self._load()

    def synthesize(self, text: str, between: Callable[[], None] = lambda: None) -> Audio:
        """The whole of `text` as one clip, sentences joined by the configured pause.
        `between()` is called between sentences (piper has phonemised the whole text by
        then): it may wait while another synthesis goes first, or raise to give up."""
        from piper import SynthesisConfig

        voice = self._load()
        config = SynthesisConfig(
            speaker_id=self.settings.speaker,
            length_scale=1.0 / self.settings.speech_rate,
            noise_scale=None if self.settings.varied else 0.0,
            noise_w_scale=None if self.settings.varied else 0.0,
        )
        pause = np.zeros(round(self.settings.sentence_pause_s * self.rate_hz), dtype=np.int16)
        parts: list[Any] = []
        for chunk in voice.synthesize(text, config):
            if chunk.sample_rate != self.rate_hz:
                raise VoiceError(
                    f"voice {self.voice.name} produced {chunk.sample_rate} Hz, not its stated rate"
                )
            if parts:
                between()
                parts.append(pause)
            parts.append(chunk.audio_int16_array.reshape(-1))
        samples = np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)
        log.debug("synthesised %.2f s for %r", len(samples) / self.rate_hz, text)
        return Audio(samples, self.rate_hz)
