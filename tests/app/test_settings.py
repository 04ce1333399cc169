from pathlib import Path

import pytest

from assistant.app import settings
from assistant.app.cli import main
from assistant.coach import routine
from assistant.errors import ConfigError


def test_defaults_when_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("BACKSTRETCH_CONFIG", raising=False)
    config = settings.load()
    assert config.verbosity == "detailed" and config.volume == 0.8 and config.inhale_s is None
    assert set(config.sources.values()) == {"default"}


def test_default_file_in_xdg_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("BACKSTRETCH_CONFIG", raising=False)
    (tmp_path / "backstretch").mkdir()
    (tmp_path / "backstretch" / "config.yaml").write_text("volume: 0.5\n")
    assert settings.load().volume == 0.5


def test_values_override_the_routine(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "# mine\npace:\n  inhale_s: 5\nsets: 1\nfirst_side: right\nverbosity: counts\n"
        "audio:\n  output_device: 3\n"
    )
    config = settings.load(path)
    mine = config.apply(routine.load())
    assert (mine.pace.inhale_s, mine.pace.exhale_s, mine.sets, mine.first_side) == (5.0, 4.0, 1, "right")
    assert config.output_device == "3"
    assert config.sources["pace.inhale_s"] == f"{path}:3"
    assert config.sources["verbosity"] == f"{path}:6"


def test_command_line_beats_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("verbosity: counts\n")
    config = settings.load(path, {"verbosity": "brief"})
    assert config.verbosity == "brief" and config.sources["verbosity"] == "command line"


def test_describe_names_every_source(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("volume: 0.3\n")
    config = settings.load(path)
    text = settings.describe(config, config.load_routine(), "the built-in routine")
    assert "volume: 0.3" in text and f"# {path}:1" in text
    assert "inhale_s: 3.0" in text and "# the built-in routine" in text
    assert 'verbosity: "detailed"' in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("volume: loud\n", r"c\.yaml:1: volume: expected a number, got 'loud'"),
        ("volume: 3\n", r"c\.yaml:1: volume: must be between 0\.1 and 1"),
        ("colour: red\n", r"c\.yaml:1: colour: unknown key"),
        ("pace:\n  inhale_s: 3\n  exhale: 4\n", r"c\.yaml:3: pace\.exhale: unknown key"),
        ("pace: 4\n", r"c\.yaml:1: pace: expected a mapping"),
        ("verbosity: chatty\n", r"c\.yaml:1: verbosity: expected one of detailed, brief, counts"),
        ("sets: true\n", r"c\.yaml:1: sets: expected a whole number, got a boolean"),
        ("audio:\n  duplex: maybe\n", r"c\.yaml:2: audio\.duplex: expected true or false, got 'maybe'"),
        ("volume: [0.5\n", r"c\.yaml:\d: broken YAML"),
        (
            "stt:\n  wake_word: '!!!'\n",
            r"c\.yaml:2: stt\.wake_word: has no word in it \('!!!'\); leave it empty",
        ),
        ("stt:\n  wake_word: ''\n", r"c\.yaml:2: stt\.wake_word: has no word in it"),
        (
            "stt:\n  wake_word: " + "a" * 200 + "\n",
            r"c\.yaml:2: stt\.wake_word: too long: at most 3 words and 30",
        ),
        ("stt:\n  wake_word: hey there my coach\n", r"c\.yaml:2: stt\.wake_word: too long: at most 3 words"),
    ],
)
def test_bad_configuration(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        settings.load(path)


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        settings.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "volume: !!python/name:os.system\n",
        "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",
    ],
    ids=["self-alias", "billion-laughs", "python-tag", "3000-levels"],
)
def test_hostile_configuration_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["--config", str(path), "config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"backstretch: {path}:") and err.count("\n") == 1


def test_a_wake_word_is_kept_as_written(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("stt:\n  wake_word: Hey, coach\n")
    assert settings.load(path).wake_word == "Hey, coach"


def test_duplex_is_off_unless_turned_on(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("audio:\n  duplex: true\n")
    config = settings.load(path)
    assert not settings.Settings().duplex and config.duplex
    assert "  duplex: true" in settings.describe(config, config.load_routine(), "the built-in routine")
