"""Real people (issue 12): "stop" said by real speakers is heard, and real words that are
no command fire nothing, with both engines.

The set and the split are in tests/kit/real.py: speakers whose sha256 is odd are HELD
out, fixed before anything was tuned; the bounds are on HELD clips (every "stop" clip
for "never start"). Recognition is deterministic, so each figure is the same every
run: the bounds sit below the measured figures with margin, for changes to the command
grammar (intents/en.yaml) move them a little. The bench (bench/real.py) reports all
the figures, TUNE and HELD, quiet and with a fan, with the targets.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest

from tests.kit import real
from tests.kit.models import english_model

pytestmark = pytest.mark.skipif(not real.available(), reason=f"the real-speech set is not at {real.DATA}")

# engine: (least share of HELD stops heard, most share of HELD word clips firing an intent)
BOUNDS = {
    # Measured 58/60 stops (96.7 %) and 2/263 word clips (0.8 %) before vosk was gated; gated,
    # with the grown grammar and issue 12's utterance margins (vosk_engine.VOSK_VAD): 53/60
    # (88.3 %) and 0 of the 132 word clips tested then (every other one; 0 of the 88 now
    # tested). The targets are 90 % and 2 %. Stop 19, with "stop", "pause" and "wait"
    # favoured in vosk's grammar (vosk_engine.FAVOURED_COPIES): 58/60 (96.7 %), 0 of 88.
    "vosk": (0.93, 0.03),
    # Measured 26/60 stops (43.3 %: the target, 75 %, is missed by 32 points: most misses
    # decode as garbage phones, rejected) and 16/263 word clips (6.1 %; target 2 %) with
    # the grammar of 387 phrases; with the grown one (2,117) 13 of the 88 word clips tested
    # fired (14.8 %, was 8 of 88): more phrases, more to find in a short word. Of the 44 now
    # tested (every sixth), 5 fire (11.4 %).
    "pocketsphinx": (0.33, 0.18),
}


def _chosen(engine: str) -> tuple[real.Clip, ...]:
    """vosk: every stop clip (TUNE ones too, for "never start") and every third HELD clip
    that is no command (88). pocketsphinx, twice as slow a clip: the HELD stops and every
    sixth HELD clip that is no command (44). The suite's time; the bench decodes them all."""
    if engine == "vosk":
        stops = tuple(c for c in real.clips() if c.intent == "stop")
        return stops + tuple(c for c in real.split(True) if c.intent is None)[::3]
    return (
        tuple(c for c in real.split(True) if c.intent == "stop")
        + tuple(c for c in real.split(True) if c.intent is None)[::6]
    )


@pytest.fixture(scope="module")
def heard() -> Iterator[dict[str, list[real.Heard]]]:
    engines = [e for e in real.ENGINES if e != "vosk" or english_model() is not None]
    with multiprocessing.get_context("spawn").Pool(len(engines)) as pool:
        done = pool.starmap(real.decode, [(e, _chosen(e), None, english_model()) for e in engines])
    out = dict(zip(engines, done, strict=True))
    for engine, results in out.items():
        f = real.figures([h for h in results if h.clip.held])
        print(
            f"\n{engine} HELD: stop {f.stop_heard}/{f.stops}, word clips firing {f.false}/{f.words}, "
            f"noise {f.noise_false}/{f.noises}, speakers all heard {f.speakers_all_heard}/{f.stop_speakers}"
        )
    yield out


def _figures(heard: dict[str, list[real.Heard]], engine: str) -> real.Figures:
    if engine not in heard:
        pytest.skip("the English vosk model is not fetched: `make vosk-model`")
    return real.figures([h for h in heard[engine] if h.clip.held])


@pytest.mark.parametrize("engine", real.ENGINES)
def test_real_stops_are_heard(heard: dict[str, list[real.Heard]], engine: str) -> None:
    f = _figures(heard, engine)
    assert f.stops == 60
    assert f.recall >= BOUNDS[engine][0], f


@pytest.mark.parametrize("engine", real.ENGINES)
def test_real_words_that_are_no_command_fire_nothing(heard: dict[str, list[real.Heard]], engine: str) -> None:
    f = _figures(heard, engine)
    assert f.false_rate <= BOUNDS[engine][1], f.fired
    assert f.noise_false == 0, f.fired.get("noise")


# pocketsphinx decodes one HELD clip, stop-837a0f64-2.wav, as "start over": two words, so
# the listener's rule against a lone "start" lets it through. Not fixed here: a rule made
# for that clip would be tuned on the held-out half. Strict: when it passes, drop this.
SPHINX_STARTS = pytest.mark.xfail(strict=True, reason="pocketsphinx hears one real 'stop' as 'start over'")


@pytest.mark.parametrize("engine", [pytest.param(e, marks=SPHINX_STARTS) if e == "pocketsphinx" else e
                                    for e in real.ENGINES])  # fmt: skip
def test_no_real_stop_starts_anything(heard: dict[str, list[real.Heard]], engine: str) -> None:
    """A "stop" heard as "start" would begin a whole session (or resume a paused one):
    never, on all 116 clips (pocketsphinx: the 60 HELD ones). Before the listener's rule
    (no lone "start"), vosk heard a lone "start" in 1 of them, and in 1 to 2 of the 56 TUNE
    ones with the fan."""
    if engine not in heard:
        pytest.skip("the English vosk model is not fetched: `make vosk-model`")
    stops = [h for h in heard[engine] if h.clip.intent == "stop"]
    assert len(stops) == (116 if engine == "vosk" else 60)
    assert [h.clip.file for h in stops if "start" in h.intents] == []


def test_the_split_keeps_each_speaker_on_one_side() -> None:
    sides: dict[str, set[bool]] = {}
    for clip in real.clips():
        sides.setdefault(clip.speaker or clip.file, set()).add(clip.held)
    assert all(len(s) == 1 for s in sides.values())
    held = real.split(True)
    assert (len(held), len(real.clips())) == (334, 633)
    assert sum(c.intent == "stop" for c in held) == 60
