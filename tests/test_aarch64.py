"""Every runtime dependency installs on a Raspberry Pi (aarch64) for each supported Python.

The dependency closure is read from the installed metadata, markers evaluated for
Linux on aarch64. pip itself then resolves each package at its installed version as
aarch64 wheels only, with no compiling (`--dry-run`: nothing is installed). A package
that publishes no wheel is fine only if it is pure Python: its installed files
include nothing compiled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import Distribution, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# The Pythons of Raspberry Pi OS: 3.11 (bookworm) and 3.13 (trixie). pocketsphinx publishes
# no aarch64 wheel for 3.12 (no version does), so there it would compile: see the README.
PYTHONS = ("3.11", "3.13")
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "linux_aarch64")
COMPILED = (".so", ".pyd", ".dll", ".dylib")


def closure(python: str) -> dict[str, Distribution]:
    """The runtime dependencies of backstretch on aarch64 Linux with `python`."""
    env = {
        "platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux",
        "python_version": python, "python_full_version": f"{python}.0", "os_name": "posix",
        "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": "",
    }  # fmt: skip
    found: dict[str, Distribution] = {}
    todo = [Requirement(r) for r in distribution("backstretch").requires or []]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(env):
            continue  # an extra (test tools) or another platform's dependency
        name = canonicalize_name(req.name)
        if name in found:
            continue
        found[name] = distribution(req.name)
        todo += [Requirement(r) for r in found[name].requires or []]
    return found


def is_pure(dist: Distribution) -> bool:
    return not any(str(f).endswith(COMPILED) for f in dist.files or [])


@pytest.mark.slow
@pytest.mark.parametrize("python", PYTHONS)
def test_runtime_dependencies_have_aarch64_wheels(python: str, tmp_path: Path) -> None:
    deps = closure(python)
    assert {"numpy", "onnxruntime", "piper-tts", "pocketsphinx", "vosk", "soxr"} <= set(deps)
    compiled = {name: d for name, d in deps.items() if not is_pure(d)}
    pins = [f"{d.metadata['Name']}=={d.version}" for d in compiled.values()]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps", "--ignore-installed",
         "--only-binary=:all:", *platforms, "--python-version", python, "--implementation", "cp",
         "--target", str(tmp_path / "t"), "--report", str(tmp_path / "r.json"), *pins],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    wheels = {canonicalize_name(i["metadata"]["name"]): i["download_info"]["url"] for i in report["install"]}
    assert set(wheels) == set(compiled)
    for name, url in wheels.items():
        assert url.endswith(".whl") and ("aarch64" in url or "none-any" in url), (name, url)
