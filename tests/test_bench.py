"""The bench's report (bench/report.py): targets, misses, statistics, Markdown and JSON.

The measurements themselves run in `make bench`, never in the tests: no test asserts a time."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import Figure, Section, fmt, percentile, write


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
