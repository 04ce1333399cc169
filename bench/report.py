"""The bench's results: sections of figures, each with how it was measured, as Markdown and JSON.

A `Figure` is one number with its unit, the target it is held to (if any) and,
where the issue asks for one, the baseline measured in the same run. A
`Section` groups the figures of one measurement with a paragraph on method and
notes (misses, with by how much and what limits them; caveats).
"""

from __future__ import annotations

import json
import math
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Figure:
    key: str  # stable name in the JSON, e.g. "latency.pocketsphinx.audio_median_ms"
    label: str  # what it is, for a person
    value: float | int | str | None  # None: could not be measured (the notes say why)
    unit: str = ""
    target: float | None = None  # the target, in `unit`
    higher_is_better: bool = False  # False: the value must be at most the target
    baseline: float | int | str | None = None  # the naive pipeline's figure, same run, same unit

    @property
    def met(self) -> bool | None:
        if self.target is None or not isinstance(self.value, int | float):
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def miss(self) -> str | None:
        """ "misses by X unit" for a missed target."""
        if self.met is not False or not isinstance(self.value, int | float) or self.target is None:
            return None
        by = abs(self.value - self.target)
        unit = f" {self.unit}" if self.unit else ""
        value, target = f"{fmt(self.value)}{unit}", f"{fmt(self.target)}{unit}"
        return f"{self.label}: {value}, target {target}: misses by {fmt(by)}{unit}"


@dataclass
class Section:
    key: str
    title: str
    how: str  # how it was measured (Markdown)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # misses and their reasons, caveats
    wall_s: float = 0.0  # how long the measurement took

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)


def fmt(value: float | int | str | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):d}"
    magnitude = abs(value)
    digits = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    return f"{value:.{digits}f}"


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), nearest rank: an observed value, never interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def to_json(sections: Sequence[Section], meta: dict[str, object]) -> str:
    out: dict[str, object] = {"meta": meta}
    for section in sections:
        out[section.key] = {
            "title": section.title,
            "how": section.how,
            "wall_s": round(section.wall_s, 1),
            "figures": {f.key: {**asdict(f), "met": f.met} for f in section.figures},
            "notes": section.notes,
        }
    return json.dumps(out, indent=1, ensure_ascii=False) + "\n"


def _mark(figure: Figure) -> str:
    return {None: "", True: "met", False: "**missed**"}[figure.met]


def to_markdown(sections: Sequence[Section], meta: dict[str, object]) -> str:
    lines = [
        "# backstretch bench",
        "",
        f"Written by `make bench` on {meta.get('date', '?')}: {meta.get('machine', platform.platform())}.",
        "Every figure is measured in this run; the baseline (the wiring of vosk's microphone example)",
        "is measured in the same run on the same machine. Audio time is fixed by the audio;",
        "compute time depends on the machine. The same figures are in `results.json`.",
        "",
    ]
    if meta.get("note"):
        lines[3:3] = [str(meta["note"])]
    if meta.get("partial"):
        partial = f"Sections {meta['partial']} (`python -m bench --only`); the others: the date above."
        lines[3:3] = [partial]
    misses = [m for s in sections for f in s.figures if (m := f.miss()) is not None]
    lines += ["## Targets missed", ""]
    lines += [f"- {m}" for m in misses] if misses else ["None."]
    lines.append("")
    for section in sections:
        lines += [f"## {section.title}", "", section.how.strip(), ""]
        if section.figures:
            has_baseline = any(f.baseline is not None for f in section.figures)
            head = "| figure | value | unit | target |" + (" baseline |" if has_baseline else "") + " |"
            lines += [head, "|---|---:|---|---:|" + ("---:|" if has_baseline else "") + "---|"]
            for f in section.figures:
                target = "" if f.target is None else ("≥ " if f.higher_is_better else "≤ ") + fmt(f.target)
                row = f"| {f.label} | {fmt(f.value)} | {f.unit} | {target} |"
                if has_baseline:
                    row += f" {fmt(f.baseline) if f.baseline is not None else ''} |"
                lines.append(row + f" {_mark(f)} |")
            lines.append("")
        if section.notes:
            lines += [f"- {note}" for note in section.notes]
            lines.append("")
        lines += [f"_Measured in {section.wall_s:.0f} s._", ""]
    return "\n".join(lines)


def from_json(text: str) -> tuple[list[Section], dict[str, object]]:
    """The sections and meta of a results.json (the inverse of `to_json`)."""
    data = json.loads(text)
    meta = data.pop("meta")
    sections = []
    for key, body in data.items():
        figures = [Figure(**{k: v for k, v in f.items() if k != "met"}) for f in body["figures"].values()]
        notes = list(body["notes"])
        sections.append(Section(key, body["title"], body["how"], figures, notes, body["wall_s"]))
    return sections, meta


def write(folder: Path, sections: Sequence[Section], meta: dict[str, object]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / "results.md", folder / "results.json"
    md.write_text(to_markdown(sections, meta))
    js.write_text(to_json(sections, meta))
    return md, js
