"""The endpointer (hear/endpoint.py): onset, hangover, early end, noise tracking, denoising.

Timing tests use a synthetic voiced sound (harmonics of 150 Hz, like a held vowel)
switched on and off at known samples over quiet room noise, so every boundary is
known to the frame; the rest use fixed renderings of the bundled voice.
"""

from __future__ import annotations

import numpy as np
import pytest

from assistant.hear import endpoint
from assistant.hear.endpoint import Endpointer, Segment, VadSettings
from assistant.pcm import RATE_HZ
from tests.kit import speech

FRAME_S = VadSettings().frame_s


def vowel(seconds: float, dbfs: float = -20.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE_HZ)) / RATE_HZ
    x = sum(np.sin(2 * np.pi * 150.0 * k * t + k) / k for k in range(1, 24))
    return np.asarray(x * (32768 * 10 ** (dbfs / 20) / np.sqrt(np.mean(x**2))))


def room(
    length_s: float, bursts: list[tuple[float, float]], noise_rms: float = 20.0, syllables_hz: float = 0.0
) -> speech.Samples:
    """`length_s` of white noise at `noise_rms` with the vowel from start to end of each
    burst; with `syllables_hz`, its loudness rises and falls like syllables (a steady
    vowel held for seconds is, to the noise tracker, a new noise)."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, noise_rms, round(length_s * RATE_HZ))
    for start, end in bursts:
        a, b = round(start * RATE_HZ), round(end * RATE_HZ)
        burst = vowel((b - a) / RATE_HZ)
        if syllables_hz:
            burst *= 0.5 - 0.5 * np.cos(2 * np.pi * syllables_hz * np.arange(b - a) / RATE_HZ)
        x[a:b] += burst
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def feed(
    endpointer: Endpointer, samples: speech.Samples, chunk_s: float = 0.03, t0: float = 0.0
) -> list[Segment]:
    step = max(1, round(chunk_s * RATE_HZ))
    out: list[Segment] = []
    for i in range(0, len(samples), step):
        chunk = samples[i : i + step]
        out += endpointer.feed(chunk, t0 + (i + len(chunk)) / RATE_HZ)
    return out


def test_an_utterance_is_found_to_the_frame_with_its_rolls() -> None:
    s = VadSettings()
    (seg,) = feed(Endpointer(), room(3.0, [(1.0, 1.6)]))
    assert seg.speech_start_s == pytest.approx(1.0, abs=FRAME_S)
    assert seg.speech_end_s == pytest.approx(1.6, abs=FRAME_S)
    assert seg.start_s == pytest.approx(seg.speech_start_s - s.pre_roll_s, abs=1e-9)
    assert len(seg.samples) / RATE_HZ == pytest.approx(
        seg.speech_end_s + s.post_roll_s - seg.start_s, abs=FRAME_S
    )
    assert seg.ended_s == pytest.approx(seg.speech_end_s + s.hangover_s)  # the hangover, exactly
    assert seg.speech_s == pytest.approx(0.6, abs=2 * FRAME_S)


def test_the_utterance_begins_once_the_onset_has_enough_speech() -> None:
    endpointer = Endpointer()
    samples = room(2.0, [(1.0, 1.5)])
    onset = VadSettings().onset_s
    feed(endpointer, samples[: round((1.0 + onset - 2 * FRAME_S) * RATE_HZ)], chunk_s=FRAME_S)
    assert not endpointer.in_speech  # not yet: too little speech
    feed(endpointer, samples[round((1.0 + onset - 2 * FRAME_S) * RATE_HZ) : round(1.2 * RATE_HZ)],
         chunk_s=FRAME_S, t0=1.0 + onset - 2 * FRAME_S)  # fmt: skip
    assert endpointer.in_speech


@pytest.mark.parametrize(("burst_s", "found"), [(0.04, False), (0.065, False), (0.2, True)])
def test_clicks_and_coughs_are_not_utterances(burst_s: float, found: bool) -> None:
    segments = feed(Endpointer(), room(2.0, [(1.0, 1.0 + burst_s)]))
    assert bool(segments) is found


def test_a_pause_shorter_than_the_hangover_does_not_split_an_utterance() -> None:
    hangover = VadSettings().hangover_s
    together = feed(Endpointer(), room(4.0, [(1.0, 1.4), (1.4 + hangover - 0.1, 2.0)]))
    apart = feed(Endpointer(), room(4.0, [(1.0, 1.4), (1.4 + hangover + 0.1, 2.0)]))
    assert len(together) == 1 and together[0].speech_end_s == pytest.approx(2.0, abs=FRAME_S)
    assert len(apart) == 2


def test_a_whole_command_ends_early_with_the_same_audio() -> None:
    s = VadSettings()
    samples = room(3.0, [(1.0, 1.5)])
    asked: list[Segment] = []

    def whole(segment: Segment) -> bool:
        asked.append(segment)
        return True

    early = Endpointer(complete=whole)
    (seg,) = feed(early, samples)
    (late,) = feed(Endpointer(complete=lambda segment: False), samples)
    assert seg.ended_s == pytest.approx(seg.speech_end_s + s.early_s)
    assert late.ended_s == pytest.approx(late.speech_end_s + s.hangover_s)
    assert np.array_equal(seg.samples, late.samples)  # the post-roll is shorter than early_s
    assert asked == [seg] and early.ended_early == 1


def test_an_utterance_longer_than_the_longest_command_is_cut() -> None:
    s = VadSettings()
    segments = feed(Endpointer(), room(12.0, [(1.0, 11.0)], syllables_hz=4.0))
    assert segments[0].ended_s - segments[0].start_s == pytest.approx(s.max_segment_s, abs=FRAME_S)


def test_the_chunk_size_does_not_matter_and_times_follow_the_stamps() -> None:
    samples = room(4.0, [(0.5, 1.1), (2.0, 2.3)])
    reference = feed(Endpointer(), samples, chunk_s=0.03)
    for chunk_s, t0 in ((0.007, 0.0), (0.25, 0.0), (0.03, 100.0)):
        other = feed(Endpointer(), samples, chunk_s=chunk_s, t0=t0)
        times = [t for o in other for t in (o.speech_start_s - t0, o.ended_s - t0)]
        assert times == pytest.approx([t for r in reference for t in (r.speech_start_s, r.ended_s)])
        assert all(np.array_equal(o.samples, r.samples) for o, r in zip(other, reference, strict=True))


def test_flush_closes_the_utterance_and_reset_drops_it() -> None:
    samples = room(1.5, [(1.0, 1.5)])  # speech to the very end
    endpointer = Endpointer()
    assert feed(endpointer, samples) == [] and endpointer.in_speech
    (seg,) = endpointer.flush(1.5)
    assert seg.ended_s == 1.5 and not endpointer.in_speech and endpointer.flush(1.5) == []
    feed(endpointer, samples[: round(1.3 * RATE_HZ)], t0=2.0)
    noise = endpointer.noise_dbfs
    endpointer.reset()
    assert not endpointer.in_speech and endpointer.noise_dbfs == noise  # the room is remembered
    assert feed(endpointer, room(1.0, []), t0=4.0) == []


@pytest.mark.parametrize("rms", [20.0, 300.0, 3000.0])
def test_the_noise_level_is_tracked_and_steady_noise_is_no_speech(rms: float) -> None:
    endpointer = Endpointer()
    assert feed(endpointer, room(6.0, [], noise_rms=rms)) == []
    assert endpointer.noise_dbfs == pytest.approx(20 * np.log10(rms / 32768), abs=2.0)


def test_utterances_end_in_continuous_noise() -> None:
    """pocketsphinx's own endpointer never closes a segment in 10 dB white noise."""
    clips = [(t, speech.piper(t, varied=False)) for t in ("pause", "keep going", "where am i")]
    stream = speech.build_stream(clips, snr_db=10.0, seed=1)
    endpointer = Endpointer()
    segments = feed(endpointer, stream.samples)
    assert len(segments) == 3
    for seg, clip in zip(segments, stream.clips, strict=True):
        assert clip.start_s - 0.1 < seg.speech_start_s < seg.speech_end_s < clip.end_s + 0.1
        assert seg.ended_s < clip.end_s + 0.6
    assert -32 < endpointer.noise_dbfs < -20  # white noise 10 dB under the speech


def test_noise_that_starts_during_speech_ends_it() -> None:
    """Noise switched on while the detector hears speech: the floor catches up and it ends."""
    loud = speech.add_white_noise(speech.silence(5.0), 1000.0**2, seed=2)
    endpointer = Endpointer()
    ends = [s.ended_s for s in feed(endpointer, np.concatenate([speech.silence(1.0), loud]))]
    assert not endpointer.in_speech
    assert len(ends) <= 1 and all(t < 1.0 + VadSettings().noise_window_s + 0.6 for t in ends)


def test_denoise_keeps_speech_and_lowers_noise() -> None:
    clean = np.concatenate([speech.silence(0.5), speech.piper("hold on", varied=False), speech.silence(0.5)])
    noisy = speech.add_white_noise(clean, 300.0**2, seed=3)
    out = endpoint.denoise(noisy, np.full(endpoint.PSD_BINS, 300.0**2))
    lead = slice(0, round(0.4 * RATE_HZ))
    assert np.std(out[lead]) < np.std(noisy[lead]) / 10  # at least 20 dB off the noise
    err_before = np.mean((noisy.astype(float) - clean) ** 2)
    err_after = np.mean((out.astype(float) - clean) ** 2)
    assert err_after < err_before / 3
    assert len(out) == len(noisy)


def test_denoise_uses_the_noise_the_endpointer_measured() -> None:
    """The segment carries the room's spectrum from before it began: denoising with it
    lowers the noise in the pre-roll as a known spectrum does."""
    samples = speech.add_white_noise(room(3.0, [(1.5, 2.0)], noise_rms=0.0), 300.0**2, seed=4)
    (seg,) = feed(Endpointer(), samples)
    assert np.median(seg.noise_psd[20:200]) == pytest.approx(300.0**2, rel=0.5)
    out = endpoint.denoise(seg.samples, seg.noise_psd)
    pre = slice(0, round(0.1 * RATE_HZ))
    assert np.std(out[pre]) < np.std(seg.samples[pre]) / 5
