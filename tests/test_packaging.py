"""The wheel carries its data: install it in a fresh venv and run the CLI outside the repo."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_installed_wheel_runs_from_anywhere(tmp_path: Path) -> None:
    """What is proved here is the wheel: its package data, its entry point, its dependency
    list. The dependencies themselves come from this test run's environment (a .pth file
    points the new venv at its site-packages) rather than from the index: installing
    onnxruntime and friends again took a minute and proved nothing more."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheels = list(dist.glob("backstretch-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    # Only a path: the .pth files of this environment (its editable install of the checkout)
    # are not run from there, so `assistant` can only come from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run([*pip, "install", "--no-deps", "--quiet", str(wheels[0])], check=True, capture_output=True)
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout  # every dependency the wheel names is there
    home = tmp_path / "home"
    home.mkdir()
    script = home / "s.txt"
    script.write_text("0 start back stretch\n30 I'm done\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    for argv in (["routine"], ["phrases"], ["run", "--script", str(script), "--mute"]):
        result = subprocess.run(
            [str(env_dir / "bin" / "backstretch"), *argv],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout
    assert "We'll end here" in result.stdout
    imported = subprocess.run(
        [str(python), "-c", "import assistant; print(assistant.__file__)"],
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in imported.stdout  # the installed copy, not the checkout
