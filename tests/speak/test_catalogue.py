"""`backstretch voices download` against a real HTTP server on 127.0.0.1.

The server serves the bundled voice's real files at the collection's paths, so
the catalogue's real SHA-256 pins are what is checked.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from assistant.app.cli import main
from assistant.speak import voices


def test_every_catalogue_entry_is_well_formed() -> None:
    names = voices.names()
    assert "en_US-joe-medium" in names and len(names) >= 5
    for name in names:
        files = voices.files(name)
        assert set(files) == {f"{name}.onnx", f"{name}.onnx.json"}
        for pinned in files.values():
            assert len(pinned.sha256) == 64 and pinned.size > 0
            assert pinned.url.startswith("https://") and "/v1.0.0/" in pinned.url


def test_joe_pin_matches_the_bundled_files() -> None:
    joe = voices.resolve(voices.DEFAULT_VOICE)
    files = voices.files("en_US-joe-medium")
    for path in (joe.model, joe.config):
        pinned = files[path.name]
        assert path.stat().st_size == pinned.size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == pinned.sha256


@pytest.fixture
def collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the collection's layout for joe, served on 127.0.0.1 and named in
    $BACKSTRETCH_VOICES_URL; voices install into a fresh $XDG_DATA_HOME."""
    joe = voices.resolve(voices.DEFAULT_VOICE)
    folder = tmp_path / "served" / "en" / "en_US" / "joe" / "medium"
    folder.mkdir(parents=True)
    for path in (joe.model, joe.config):
        (folder / path.name).symlink_to(path)
    handler = partial(QuietHandler, directory=str(tmp_path / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("BACKSTRETCH_VOICES_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    yield folder
    server.shutdown()
    server.server_close()
    thread.join()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_download_installs_a_listed_voice(
    collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["voices", "download", "en_US-joe-medium"]) == 0
    installed = tmp_path / "data" / "backstretch" / "voices"
    assert sorted(p.name for p in installed.iterdir()) == [
        "en_US-joe-medium.onnx",
        "en_US-joe-medium.onnx.json",
    ]
    out = capsys.readouterr()
    assert "installed en_US-joe-medium" in out.out and "done, 63.2 MB" in out.err
    assert main(["voices"]) == 0
    listing = capsys.readouterr().out
    assert "en_US-joe-medium" in listing and "user data dir" in listing and "bundled" in listing


def test_a_corrupt_transfer_installs_nothing(
    collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_file = collection / "en_US-joe-medium.onnx.json"
    data = bytearray(json_file.read_bytes())
    json_file.unlink()
    data[10] ^= 1
    json_file.write_bytes(bytes(data))
    assert main(["voices", "download", "en_US-joe-medium"]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "Traceback" not in err
    folder = tmp_path / "data" / "backstretch" / "voices"
    assert not folder.exists() or not any(folder.iterdir())


def test_unknown_catalogue_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voices", "download", "en_US-nobody-low"]) == 2
    assert "no voice 'en_US-nobody-low' in the download catalogue" in capsys.readouterr().err
