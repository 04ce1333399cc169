"""The bench's report (bench/report.py): targets, misses, statistics, Markdown and JSON.

The measurements themselves run in `make bench`, never in the tests: no test asserts a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import real
from bench.context import Bench
from bench.report import Figure, Section, fmt, percentile, write
from tests.kit import real as kit
from tests.kit.models import english_model


def test_a_figure_meets_or_misses_its_target() -> None:
    assert Figure("a", "latency", 340.0, "ms", 350.0).met is True
    late = Figure("b", "latency", 420.0, "ms", 350.0)
    assert late.met is False and late.miss() == "latency: 420 ms, target 350 ms: misses by 70 ms"
    assert Figure("c", "accuracy", 90.0, "%", 95.0, higher_is_better=True).met is False
    assert Figure("d", "untargeted", 1.0).met is None
    assert Figure("e", "not measured", None, "ms", 350.0).met is None


def test_percentiles_are_observed_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([], 50) is None
    assert fmt(0.01234) == "0.012" and fmt(12.34) == "12.3" and fmt(123.4) == "123" and fmt(None) == "n/a"


def test_results_are_written_as_markdown_and_json(tmp_path: Path) -> None:
    section = Section("latency", "1. Command latency", "How it was measured.")
    section.add(Figure("ours.median_ms", "ours, median", 420.0, "ms audio", 350.0, baseline=1250.0))
    section.notes.append("The endpointer's hangover limits it.")
    md, js = write(tmp_path, [section], {"date": "2026-11-24", "machine": "test"})
    text = md.read_text()
    assert "## Targets missed" in text
    assert "ours, median: 420 ms audio, target 350 ms audio: misses by 70 ms audio" in text
    assert "| ours, median | 420 | ms audio | ≤ 350 | 1250 | **missed** |" in text
    assert "The endpointer's hangover limits it." in text
    data = json.loads(js.read_text())
    figure = data["latency"]["figures"]["ours.median_ms"]
    assert figure["value"] == 420.0 and figure["baseline"] == 1250.0 and figure["met"] is False


def test_the_real_speech_section_reports_both_sides_and_engines(tmp_path: Path) -> None:
    """bench/real.py in quick mode (a dozen clips): every figure is there, TUNE and HELD apart."""
    if not kit.available():
        pytest.skip(f"the real-speech set is not at {kit.DATA}")
    section = real.measure(Bench(tmp_path, quick=True))
    keys = {f.key for f in section.figures}
    engines = ["pocketsphinx"] + (["vosk"] if english_model() is not None else [])
    for engine in engines:
        for condition in ("quiet", "fan"):
            for side in ("tune", "held"):
                assert f"{engine}.{condition}.{side}.stop_pct" in keys
                assert f"{engine}.{condition}.{side}.false_pct" in keys
    targets = {f.key: f.target for f in section.figures if f.target is not None and f.unit == "%"}
    assert targets["pocketsphinx.quiet.held.stop_pct"] == 75.0
    assert all(".held." in key for key in targets)  # targets are held to HELD figures only
    assert any("false intents per word" in note for note in section.notes)


def test_results_read_back_as_written() -> None:
    """`python -m bench --only` keeps the other sections from results.json: they must come
    back as they were written."""
    from bench import report

    section = Section("load", "2. Load", "how", [Figure("a", "a figure", 1.5, "%", 3.0)], ["a note"], 12.0)
    meta: dict[str, object] = {"date": "2026-12-02 12:00", "partial": "real measured again"}
    sections, read_meta = report.from_json(report.to_json([section], meta))
    assert sections == [section] and read_meta == meta
    assert "Sections real measured again" in report.to_markdown(sections, read_meta)


def test_two_parts_of_one_section_measured_at_once_both_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--only echo.a,echo.b`: the second part merges into what the first left, so both
    parts' figures are in results.json and the section is written once (each merged into
    the section as it was, only the last part's stayed, and results.md had it three times)."""
    import bench.__main__ as cli
    from bench import report

    old = Section("echo", "9. Echo", "how", [Figure("echo.kept", "kept", 1.0)], [], 5.0)
    report.write(tmp_path, [old], {"date": "2026-12-02 12:00"})

    def part(key: str) -> object:
        def measure(bench: object, before: Section | None) -> Section:
            assert before is not None
            return Section("echo", "9. Echo", "how", [*before.figures, Figure(key, key, 2.0)], [], 0.0)

        return measure

    monkeypatch.setattr(cli, "PARTS", {"echo.a": part("echo.a"), "echo.b": part("echo.b")})
    assert cli._only(tmp_path, ["echo.a", "echo.b"], quick=True) == 0
    sections, _ = report.from_json((tmp_path / "results.json").read_text())
    assert [f.key for s in sections for f in s.figures] == ["echo.kept", "echo.a", "echo.b"]
    assert (tmp_path / "results.md").read_text().count("| kept |") == 1


def test_instruction_counts_become_per_second_figures_and_pi_estimates() -> None:
    """bench/instructions.py's report: rates per second of audio summed over the stages, the
    Pi shares from the stated core rates, the 10 % target on the coach-speaking total, and
    the spread between runs."""
    from bench import instructions as ins

    def run(listener: int) -> list[dict[str, object]]:
        return [
            {"input": "speech", "stage": "capture", "audio_s": 2.0, "instructions": 2_000_000},
            {"input": "speech", "stage": "listener", "audio_s": 2.0, "instructions": listener},
        ]

    speak = [[{"input": "Breathe in.", "stage": "piper", "audio_s": 0.5, "instructions": 100_000_000}]] * 2
    section = Section("instructions", "9", "how")
    largest = ins.figures(section, {"vosk": [run(398_000_000), run(402_000_000)]}, speak)
    values = {f.key: f for f in section.figures}
    assert values["vosk.speech.listener.minstr_per_s"].value == 200.0
    assert values["vosk.speech.total.minstr_per_s"].value == 201.0
    pi4 = values["vosk.speech.total.pi4_pct"]
    assert pi4.value == round(100 * 201e6 * ins.ISA_FACTOR / ins.PI4.per_s, 1) and pi4.target == 10.0
    assert pi4.met is False and values["vosk.speech.total.pi5_pct"].value < pi4.value
    assert values["piper.minstr_per_s"].value == 200.0
    assert largest == values["spread_pct"].value == pytest.approx(1.0)  # the listener: 2 M/s in 200
    assert ins.spread_pct([100.0, 100.0]) == 0.0


def test_the_hear_workload_runs_the_live_path_and_counts_each_stage(tmp_path: Path) -> None:
    """bench/workloads.py's hear workload, outside valgrind: the microphone's blocks stamped
    with ADC times and the player's with DAC times reach `LiveEcho`, which learns the echo
    in the warm-up, so the counted listener hears the cleaned microphone; a raw input has
    no echo stage. One record per counted stage, each over the audio after the warm-up."""
    import json

    import numpy as np
    import soxr

    from bench import instructions, workloads

    rng = np.random.default_rng(3)
    bursts = [np.r_[rng.normal(0, 3000, 8000), np.zeros(4800)] for _ in range(8)]  # 0.5 s on, 0.3 off
    played = np.concatenate(bursts).astype(np.int16)  # 6.4 s of the "coach", at 16 kHz
    spans = [[i * 0.8, i * 0.8 + 0.5, "Breathe in."] for i in range(8)]
    paths = []
    for name, meta in (("speech", {"warmup_s": 4.8}), ("raw", {"warmup_s": 0.0, "raw": True})):
        path = tmp_path / f"{name}.npy"
        output = soxr.resample(played, 16000, 22050)
        heard = instructions._heard(output, len(played))  # the echo, in noise
        np.save(path, (heard + rng.normal(0, 20, len(played))).astype(np.int16))
        np.save(workloads.played_path(path), output)
        meta |= {"spans": spans, "played_rate_hz": 22050}
        workloads.meta_path(path).write_text(json.dumps(meta))
        paths.append(path)
    done = workloads.hear("pocketsphinx", paths)
    assert [(d["input"], d["stage"]) for d in done] == [
        ("speech", "capture"), ("speech", "echo"), ("speech", "listener"),
        ("raw", "capture"), ("raw", "listener"),
    ]  # fmt: skip
    assert done[2]["learnt"] is True
    assert [d["audio_s"] for d in done] == [1.6] * 3 + [6.4] * 2


def test_callgrind_regions_are_no_ops_outside_valgrind_and_dumps_read_in_order(tmp_path: Path) -> None:
    """bench/callgrind.py: the client requests run on the bare CPU as no-ops; the regions'
    dump files are read in region order (10 after 9), by their summary line."""
    from bench.callgrind import Regions, parse_dumps

    regions = Regions()
    with regions.measure():
        total = sum(range(10))
    assert total == 45 and regions.under_valgrind is False
    for n, instructions in ((1, 500), (2, 7), (10, 42), (9, 3)):
        (tmp_path / f"cg.out.{n}").write_text(f"events: Ir\nsummary: {instructions}\n")
    (tmp_path / "cg.out").write_text("events: Ir\nsummary: 0\n")  # the dump at exit: no region
    assert parse_dumps(tmp_path / "cg.out") == [500, 7, 3, 42]


def test_the_speak_count_alone_replaces_pipers_figures_and_keeps_the_hear_ones() -> None:
    """`python -m bench --only instructions.speak` merges into the section results.json has:
    piper's figures and note are replaced, the hear figures kept, the spread the larger."""
    from bench import instructions as ins

    old = Section("instructions", "9", "old how", wall_s=100.0)
    old.add(
        Figure("vosk.speech.total.minstr_per_s", "vosk", 491.0, "M per s of audio"),
        Figure("piper.minstr_per_s", "piper, old", 1.0, "M per s of speech"),
        Figure("spread_pct", "largest spread", 0.2, "%", 2.0),
    )
    old.notes += ["Material: one cue.", "Stable: 0.2 %.", "Speak path: not counted.", "Sources."]

    def run(instructions: int) -> list[dict[str, object]]:
        return [
            {"input": "Moving on.", "stage": "piper", "audio_s": 0.5, "instructions": instructions},
            {"input": "Raising my voice.", "stage": "piper", "audio_s": 1.5, "instructions": 300_000_000},
        ]

    merged = ins.merge_speak(old, [run(100_000_000), run(104_000_000)])
    values = {f.key: f.value for f in merged.figures}
    assert values["vosk.speech.total.minstr_per_s"] == 491.0  # kept
    assert values["piper.minstr_per_s"] == 201.0  # (102 + 300) M over 2 s of speech
    assert values["piper.cue1.minstr_per_s"] == 204.0 and values["piper.cue2.minstr_per_s"] == 200.0
    assert values["piper.pi4_pct"] == round(100 * 201e6 * ins.ISA_FACTOR / ins.PI4.per_s, 1)
    assert values["spread_pct"] == pytest.approx(100 * 4 / 402, abs=1e-3)  # piper's, the larger
    assert [f.key for f in merged.figures][-1] == "spread_pct"
    assert not any(n.startswith("Speak path: not counted") for n in merged.notes)
    assert sum(n.startswith("Speak path: piper synthesised 'Moving on.'") for n in merged.notes) == 1
    assert merged.wall_s == 100.0 and merged.notes[-1] == "Sources."
