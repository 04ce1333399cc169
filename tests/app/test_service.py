"""`backstretch service install`: the systemd user unit."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.app.cli import main
from assistant.app.service import unit_path


@pytest.fixture(autouse=True)
def _own_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def test_the_unit_runs_this_installation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "my config.yaml"
    config.write_text("volume: 0.5\n")
    assert main(["--config", str(config), "service", "install", "--no-enable"]) == 0
    unit = Path(capsys.readouterr().out.split(":")[0])
    text = unit.read_text()
    script = Path(sys.executable).parent / "backstretch"
    assert f'ExecStart={script} --config "{config}" run' in text
    assert "Restart=on-failure" in text and "WantedBy=default.target" in text
    assert unit.parts[-3:] == ("systemd", "user", "backstretch.service")
    _verify(unit)


def test_without_a_user_systemd_it_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("systemctl") is None:
        pytest.skip("no systemctl here")
    probe = subprocess.run(["systemctl", "--user", "is-system-running"], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.skip("a user systemd is running here: installing would enable a real service")
    assert main(["service", "install"]) == 2
    err = capsys.readouterr().err
    assert "wrote" in err and "run it in your own login session" in err and err.count("\n") == 1


def _verify(unit: Path) -> None:
    if shutil.which("systemd-analyze"):  # systemd's own check of the unit, offline
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
        )
        assert verify.returncode == 0, verify.stderr


@pytest.mark.parametrize("name", ["x\nExecStartPre=touch owned\n.yaml", "tab\there.yaml", "cr\r.yaml"])
def test_control_characters_in_a_path_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    config = tmp_path / name
    config.write_text("volume: 0.5\n")
    assert main(["--config", str(config), "service", "install", "--no-enable"]) == 2
    err = capsys.readouterr().err
    assert "a control character" in err and err.count("\n") == 1
    assert not unit_path().exists()


def test_special_characters_are_quoted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / 'a "quoted" 100% $HOME \\ ;x.yaml'
    config.write_text("volume: 0.5\n")
    assert main(["--config", str(config), "service", "install", "--no-enable"]) == 0
    text = unit_path().read_text()
    quoted = str(config).replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    assert f' --config "{quoted}" run\n' in text
    assert [line.split("=")[0] for line in text.splitlines() if line.startswith("Exec")] == ["ExecStart"]
    _verify(unit_path())


def test_unit_and_folders_are_not_world_writable_under_umask_000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    old = os.umask(0)
    try:
        assert main(["service", "install", "--no-enable"]) == 0
        assert main(["service", "install", "--no-enable"]) == 0  # over an existing unit too
    finally:
        os.umask(old)
    unit = unit_path()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    for folder in (tmp_path / "config", unit.parent.parent, unit.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
    assert sorted(p.name for p in unit.parent.iterdir()) == ["backstretch.service"]
