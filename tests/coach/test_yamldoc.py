from pathlib import Path

import pytest

from assistant.coach import yamldoc
from assistant.errors import ConfigError


def test_lines_are_kept_per_key() -> None:
    doc = yamldoc.parse("a: 1\nb:\n  c: [1, 2]\n  d: x\n", "f.yaml")
    assert doc.data == {"a": 1, "b": {"c": [1, 2], "d": "x"}}
    assert doc.line(("b", "d")) == 4
    assert doc.line(("b", "missing")) == 2


def test_broken_yaml_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"^f\.yaml:3: broken YAML \(found character"):
        yamldoc.parse("a: 1\nb:\n\tc: 2\n", "f.yaml")


def test_typed_getters_name_the_key() -> None:
    doc = yamldoc.parse("pace:\n  inhale_s: slow\n  n: 3.5\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"^c\.yaml:2: pace\.inhale_s: expected a number, got 'slow'$"):
        doc.number(("pace", "inhale_s"), 1.0, 0.0, 9.0)
    with pytest.raises(ConfigError, match=r"c\.yaml:3: pace\.n: expected a whole number"):
        doc.integer(("pace", "n"), 1, 0, 9)
    with pytest.raises(ConfigError, match=r"c\.yaml:3: pace\.n: unknown key"):
        doc.mapping(("pace",), ("inhale_s",))


def test_empty_document_is_empty() -> None:
    assert yamldoc.parse("", "e.yaml").data == {}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        yamldoc.load(tmp_path / "nope.yaml")


def _bomb(levels: int) -> str:
    """The "billion laughs": each level is ten aliases of the one before."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # libyaml, when PyYAML has it, stops at its own limit first: one line either way.
        (
            "a: " + "[" * 60_000,
            r"^h\.yaml:1: (nested deeper than 32 levels|broken YAML \(exceeded maximum nest)",
        ),
        ("a: " + "[" * 100_000, r"^h\.yaml: larger than 64 kB; a configuration is a few lines$"),
        ("a: " + "[" * 33 + "]" * 33, r"^h\.yaml:1: nested deeper than 32 levels"),
        ("a: " + "{b: " * 3000 + "1" + "}" * 3000, r"^h\.yaml:1: nested deeper than 32 levels"),
        ("".join(" " * i + f"k{i}:\n" for i in range(40)) + " " * 40 + "x: 1\n", r"^h\.yaml:33: nested"),
        ("a: &a [*a]\n", r"^h\.yaml:1: a\[0\]: an alias refers to itself"),
        ("a: &a {b: *a}\n", r"^h\.yaml:1: a\.b: an alias refers to itself"),
        (_bomb(4), r"^h\.yaml:\d+: a\d: over 10000 values, aliases expanded; a configuration"),
        (_bomb(9), r"^h\.yaml:\d+: a\d: over 10000 values, aliases expanded"),
    ],
    ids=[
        "brackets",
        "100k-brackets",
        "33-levels",
        "3000-mappings",
        "deep-block",
        "self-alias",
        "self-alias-mapping",
        "bomb4",
        "laughs",
    ],
)
def test_hostile_yaml_is_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        yamldoc.parse(text, "h.yaml")
    assert "\n" not in str(caught.value)


def test_deep_but_allowed_nesting() -> None:
    assert yamldoc.parse("a: " + "[" * 31 + "]" * 31, "ok.yaml").get(("a",)) is not None


def test_large_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "é" * 40_000 + "\n")  # 80 kB in 40,000 characters, cut mid-letter when read
    with pytest.raises(ConfigError, match=r"big\.yaml: larger than 64 kB; a configuration is a few lines"):
        yamldoc.load(path)
    with pytest.raises(ConfigError, match=r"big\.yaml: larger than 64 kB"):
        yamldoc.parse("# " + "x" * 70_000, str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!python/name:os.system x\n", r"^t\.yaml:1: a: the tag !!python/name:os\.system is not allowed"),
        ("a: !!python/object/apply:os.system [ls]\n", r"^t\.yaml:1: a: the tag !!python/object/apply:os"),
        ("a: !custom 3\n", r"^t\.yaml:1: a: the tag !custom is not allowed; write plain values"),
        ("base: &b {volume: 0.5}\n<<: *b\n", r"^t\.yaml:2: merge keys \(<<\) are not supported; write"),
        ("? [a, b]\n: 1\n", r"^t\.yaml:1: a key must be plain text, got a list"),
        ("a: 2024-02-30\n", r"^t\.yaml:1: a: unreadable value \(day is out of range for month\)"),
        ("a: " + "1" * 5000 + "\n", r"^t\.yaml:1: a: unreadable value \(a number of 5000 digits\)"),
    ],
)
def test_unsupported_yaml_is_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        yamldoc.parse(text, "t.yaml")
    assert "\n" not in str(caught.value)


def test_huge_values_are_shown_short() -> None:
    doc = yamldoc.parse(
        "n: 0x" + "f" * 4000 + "\nf: 0x" + "f" * 4000 + "\ns: " + "y" * 10_000 + "\n", "v.yaml"
    )
    with pytest.raises(
        ConfigError, match=r"^v\.yaml:1: n: must be between 1 and 9, got a number of 4817 digits$"
    ):
        doc.integer(("n",), 1, 1, 9)
    with pytest.raises(
        ConfigError, match=r"^v\.yaml:2: f: must be between 1 and 9, got a number of 4817 digits$"
    ):
        doc.number(("f",), 1.0, 1.0, 9.0)
    with pytest.raises(ConfigError, match=r"^v\.yaml:3: s: expected a number, got 'yyy") as caught:
        doc.number(("s",), 1.0, 1.0, 9.0)
    assert len(str(caught.value)) < 200
