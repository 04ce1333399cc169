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
