"""Downloads against a real HTTP server on 127.0.0.1, serving files built in the test."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import stat
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assistant.app import download
from assistant.app.progress import NullProgress, TerminalProgress
from assistant.errors import DownloadError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Files:
    """What the server serves, and what it was asked for."""

    def __init__(self, root: str, prefix: str = "") -> None:
        self.root = root
        self.base = root + prefix
        self.prefix = prefix
        self.bodies: dict[str, bytes] = {}
        self.cut_short: set[str] = set()  # announced with a larger Content-Length than is sent
        self.drip: dict[str, tuple[int, float]] = {}  # sent `bytes` at a time, every `seconds`
        self.requests: list[str] = []

    def serve(self, path: str, body: bytes, cut_short: bool = False) -> str:
        self.bodies[self.prefix + path] = body
        if cut_short:
            self.cut_short.add(self.prefix + path)
        return self.base + path


class _Server(http.server.ThreadingHTTPServer):
    files: Files


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        files = self.server.files
        files.requests.append(self.path)
        body = files.bodies.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        extra = 1000 if self.path in files.cut_short else 0
        self.send_header("Content-Length", str(len(body) + extra))
        self.end_headers()
        drip = files.drip.get(self.path)
        if drip is None:
            self.wfile.write(body)  # HTTP/1.0: the connection closes after this, short or not
            return
        piece, every_s = drip
        try:
            for i in range(0, len(body), piece):
                self.wfile.write(body[i : i + piece])
                self.wfile.flush()
                time.sleep(every_s)  # a slow server, in real time: the client's clock is the subject
        except OSError:
            pass  # the client gave up

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.files = Files(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def files(server: _Server, request: pytest.FixtureRequest) -> Files:
    """A fresh set of files for each test, under a path of its own."""
    server.files = Files(server.files.root, f"/{request.node.name}")
    return server.files


BODY = bytes(range(256)) * 1000  # 256 kB: several 64 KiB chunks


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fetch_verifies_and_renames_into_place(files: Files, tmp_path: Path) -> None:
    url = files.serve("/voice.onnx", BODY)
    dest = tmp_path / "voices" / "voice.onnx"
    assert download.fetch(url, dest, sha(BODY), size=len(BODY)) == dest
    assert dest.read_bytes() == BODY
    assert leftovers(dest.parent) == ["voice.onnx"]


def test_present_file_skips_the_network(files: Files, tmp_path: Path) -> None:
    url = files.serve("/voice.onnx", BODY)
    dest = tmp_path / "voice.onnx"
    download.fetch(url, dest, sha(BODY).upper())
    download.fetch(url, dest, sha(BODY))
    assert len(files.requests) == 1


def test_wrong_present_file_is_downloaded_again(files: Files, tmp_path: Path) -> None:
    url = files.serve("/voice.onnx", BODY)
    dest = tmp_path / "voice.onnx"
    dest.write_bytes(b"an older voice")
    download.fetch(url, dest, sha(BODY))
    assert dest.read_bytes() == BODY
    assert len(files.requests) == 1


def test_checksum_mismatch_leaves_nothing(files: Files, tmp_path: Path) -> None:
    url = files.serve("/voice.onnx", BODY)
    pinned = sha(b"something else")
    message = rf"voice\.onnx: checksum mismatch \(expected {pinned[:12]}…, got [0-9a-f]{{12}}…\); the file"
    with pytest.raises(DownloadError, match=message):
        download.fetch(url, tmp_path / "voice.onnx", pinned)
    assert leftovers(tmp_path) == []


def test_size_mismatch_leaves_nothing(files: Files, tmp_path: Path) -> None:
    url = files.serve("/voice.onnx", BODY)
    with pytest.raises(DownloadError, match=r"larger than the pinned 1000 bytes"):
        download.fetch(url, tmp_path / "voice.onnx", sha(BODY), size=1000)
    with pytest.raises(DownloadError, match=rf"got {len(BODY)} bytes, expected {len(BODY) + 1}"):
        download.fetch(url, tmp_path / "voice.onnx", sha(BODY), size=len(BODY) + 1)
    assert leftovers(tmp_path) == []


def test_truncated_transfer_fails_then_retry_succeeds(files: Files, tmp_path: Path) -> None:
    url = files.serve("/model.zip", BODY, cut_short=True)
    dest = tmp_path / "model.zip"
    with pytest.raises(DownloadError, match=rf"cut off after {len(BODY)} of {len(BODY) + 1000} bytes"):
        download.fetch(url, dest, sha(BODY))
    assert leftovers(tmp_path) == []
    files.cut_short.clear()
    download.fetch(url, dest, sha(BODY))
    assert dest.read_bytes() == BODY


def test_http_404_names_the_status(files: Files, tmp_path: Path) -> None:
    url = files.base + "/missing.onnx"
    with pytest.raises(DownloadError, match=r"missing\.onnx: HTTP 404 Not Found; check the address"):
        download.fetch(url, tmp_path / "missing.onnx", sha(BODY))
    assert leftovers(tmp_path) == []


def test_connection_refused(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    # The port was just freed, so nothing listens there.
    with pytest.raises(DownloadError, match=rf"127\.0\.0\.1:{port}/x: cannot download \(.*refused"):
        download.fetch(f"http://127.0.0.1:{port}/x", tmp_path / "x", sha(BODY))
    assert leftovers(tmp_path) == []


def test_silent_server_times_out(tmp_path: Path) -> None:
    # A listening socket that never accepts: the connection is made, no answer ever comes.
    with socket.create_server(("127.0.0.1", 0)) as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x"
        with pytest.raises(DownloadError, match=r"/x: no answer within 0\.05 s"):
            download.fetch(url, tmp_path / "x", sha(BODY), timeout_s=0.05)
    assert leftovers(tmp_path) == []


def test_only_http_urls(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(BODY)
    with pytest.raises(DownloadError, match=r"only http:// and https://"):
        download.fetch((tmp_path / "src").as_uri(), tmp_path / "dest", sha(BODY))
    with pytest.raises(ValueError, match="SHA-256"):
        download.fetch("http://127.0.0.1/x", tmp_path / "dest", "ab12")


def test_stale_part_is_discarded(files: Files, tmp_path: Path) -> None:
    url = files.serve("/voice.onnx", BODY)
    dest = tmp_path / "voice.onnx"
    (tmp_path / "voice.onnx.part").write_bytes(b"half of an old download" * 10_000)
    download.fetch(url, dest, sha(BODY))
    assert dest.read_bytes() == BODY
    assert leftovers(tmp_path) == ["voice.onnx"]


class Interrupt(NullProgress):
    """Presses Ctrl-C after the first chunk."""

    def advance(self, n: int) -> None:
        raise KeyboardInterrupt


def test_interrupted_run_then_clean_retry(files: Files, tmp_path: Path) -> None:
    url = files.serve("/voice.onnx", BODY)
    dest = tmp_path / "voice.onnx"
    with pytest.raises(KeyboardInterrupt):
        download.fetch(url, dest, sha(BODY), progress=Interrupt())
    assert leftovers(tmp_path) == []
    download.fetch(url, dest, sha(BODY))
    assert dest.read_bytes() == BODY


def test_install_files_all_or_nothing(files: Files, tmp_path: Path) -> None:
    model, config = b"onnx" * 50_000, b'{"audio": {"sample_rate": 22050}}'
    pins = {
        "voice.onnx": (files.serve("/voice.onnx", model), sha(model), len(model)),
        "voice.onnx.json": (files.serve("/voice.onnx.json", config), sha(b"{}"), None),
    }
    target = tmp_path / "voices"
    with pytest.raises(DownloadError, match=r"voice\.onnx\.json: checksum mismatch"):
        download.install_files(pins, target)
    assert leftovers(target) == []

    pins["voice.onnx.json"] = (pins["voice.onnx.json"][0], sha(config), len(config))
    assert download.install_files(pins, target) == [target / "voice.onnx", target / "voice.onnx.json"]
    assert (target / "voice.onnx").read_bytes() == model
    assert (target / "voice.onnx.json").read_bytes() == config
    assert leftovers(target) == ["voice.onnx", "voice.onnx.json"]


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def test_zip_with_top_folder_replaces_older_install(tmp_path: Path) -> None:
    models = tmp_path / "models"
    target = models / "vosk-en"
    v1 = make_zip(tmp_path / "v1.zip", {"vosk-small-0.15/am/final.mdl": b"v1", "vosk-small-0.15/old": b"x"})
    v2 = make_zip(tmp_path / "v2.zip", {"vosk-small-0.22/am/final.mdl": b"v2", "vosk-small-0.22/README": b""})
    assert download.install_zip(v1, target) == target
    assert (target / "am" / "final.mdl").read_bytes() == b"v1"

    download.install_zip(v2, target, expect_top="vosk-small-0.22")
    assert (target / "am" / "final.mdl").read_bytes() == b"v2"
    assert sorted(p.name for p in target.iterdir()) == ["README", "am"]
    assert leftovers(models) == ["vosk-en"]  # no staging folder, no old install


def test_zip_without_top_folder_becomes_the_target(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "flat.zip", {"a.txt": b"a", "sub/b.txt": b"b"})
    target = download.install_zip(archive, tmp_path / "out" / "model")
    assert (target / "a.txt").read_bytes() == b"a"
    assert (target / "sub" / "b.txt").read_bytes() == b"b"
    with pytest.raises(DownloadError, match=r"expected one folder 'model-1' inside, found a\.txt, sub"):
        download.install_zip(archive, tmp_path / "out" / "model", expect_top="model-1")


def symlink_zip(path: Path) -> Path:
    info = zipfile.ZipInfo("model/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/ok.txt", b"fine")
        zf.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (lambda p: make_zip(p, {"model/ok.txt": b"fine", "../evil": b"owned"}), "would land outside the"),
        (lambda p: make_zip(p, {"model/../../evil": b"owned"}), "would land outside the"),
        (lambda p: make_zip(p, {"model/ok.txt": b"fine", "/tmp/evil": b"owned"}), "has an absolute path"),
        (lambda p: make_zip(p, {"C:/evil": b"owned"}), "has an absolute path"),
        (symlink_zip, "is a symbolic link"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "drive", "symlink"],
)
def test_unsafe_zip_is_refused_and_keeps_the_old_install(
    tmp_path: Path, build: Callable[[Path], Path], problem: str
) -> None:
    models = tmp_path / "install" / "models"
    target = models / "vosk-en"
    download.install_zip(make_zip(tmp_path / "good.zip", {"m/final.mdl": b"good"}), target)
    archive = build(tmp_path / "evil.zip")
    with pytest.raises(DownloadError, match=rf"evil\.zip: member .* {problem}.*; the archive is unsafe"):
        download.install_zip(archive, target)
    assert (target / "final.mdl").read_bytes() == b"good"
    assert leftovers(models) == ["vosk-en"]
    assert leftovers(tmp_path / "install") == ["models"]
    assert leftovers(tmp_path) == ["evil.zip", "good.zip", "install"]


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "bad.zip").write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DownloadError, match=r"bad\.zip: cannot unpack \(File is not a zip file\)"):
        download.install_zip(tmp_path / "bad.zip", tmp_path / "models" / "vosk")
    assert leftovers(tmp_path / "models") == []


def test_stale_staging_folder_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".vosk.abc123.staging" / "unpacked"
    stale.mkdir(parents=True)
    download.install_zip(make_zip(tmp_path / "m.zip", {"m/x": b"x"}), tmp_path / "vosk")
    assert leftovers(tmp_path) == ["m.zip", "vosk"]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_without_tty_prints_start_and_finish(files: Files, tmp_path: Path) -> None:
    out = io.StringIO()
    url = files.serve("/voice.onnx", BODY)
    download.fetch(url, tmp_path / "voice.onnx", sha(BODY), size=len(BODY), progress=TerminalProgress(out))
    assert out.getvalue() == "voice.onnx: started (0.3 MB)\nvoice.onnx: done, 0.3 MB\n"


def test_terminal_progress_on_tty_redraws_one_line() -> None:
    out = FakeTTY()
    bar = TerminalProgress(out, width=10)
    bar.start(200, "model.zip")
    bar.advance(100)
    bar.advance(1)  # same percentage: not redrawn
    bar.advance(99)
    bar.finish()
    assert out.getvalue() == (
        "\rmodel.zip [..........]   0% 0.0 MB"
        "\rmodel.zip [#####.....]  50% 0.0 MB"
        "\rmodel.zip [##########] 100% 0.0 MB"
        "\n"
    )


def test_terminal_progress_counts_cues() -> None:
    out = io.StringIO()
    bar = TerminalProgress(out, unit="cues")
    bar.start(59, "preparing cues")
    bar.advance(59)
    bar.finish()
    assert out.getvalue() == "preparing cues: started (59 cues)\npreparing cues: done, 59 cues\n"


# -- slow servers, things in the way, archives that expand too far -----------------


def test_a_server_that_drips_is_given_up(files: Files, tmp_path: Path) -> None:
    url = files.serve("/slow.onnx", BODY)
    files.drip[files.prefix + "/slow.onnx"] = (1, 0.02)  # 50 bytes a second, never a timeout
    limits = download.Limits(min_rate_bps=2000, window_s=0.3)
    started = time.monotonic()
    with pytest.raises(
        DownloadError, match=r"slow\.onnx: slower than 2 kB/s for 0\.3 s \(\d+ of 256000 bytes\)"
    ):
        download.fetch(url, tmp_path / "slow.onnx", sha(BODY), timeout_s=5, limits=limits)
    assert time.monotonic() - started < 5
    assert leftovers(tmp_path) == []


def test_a_download_past_its_deadline_is_given_up(files: Files, tmp_path: Path) -> None:
    url = files.serve("/long.onnx", BODY)
    files.drip[files.prefix + "/long.onnx"] = (4096, 0.02)  # steady, but 1.25 s in all
    limits = download.Limits(deadline_s=0.3, min_rate_bps=1)
    with pytest.raises(
        DownloadError, match=r"long\.onnx: not done within 0\.3 s \(\d+ of 256000 bytes\); check"
    ):
        download.fetch(url, tmp_path / "long.onnx", sha(BODY), timeout_s=5, limits=limits)
    assert leftovers(tmp_path) == []


def test_default_limits() -> None:
    assert download.Limits() == download.Limits(deadline_s=3600.0, min_rate_bps=4096.0, window_s=30.0)


def test_a_folder_where_a_voice_goes(files: Files, tmp_path: Path) -> None:
    model, config = b"onnx" * 50_000, b'{"audio": {"sample_rate": 22050}}'
    pins = {
        "voice.onnx": (files.serve("/voice.onnx", model), sha(model), len(model)),
        "voice.onnx.json": (files.serve("/voice.onnx.json", config), sha(config), len(config)),
    }
    target = tmp_path / "voices"
    (target / "voice.onnx").mkdir(parents=True)
    with pytest.raises(DownloadError, match=r"voices/voice\.onnx: a folder is in the way; move it away"):
        download.install_files(pins, target)
    assert leftovers(target) == ["voice.onnx"] and files.requests == []  # nothing fetched, no .part
    with pytest.raises(DownloadError, match=r"voice\.onnx: a folder is in the way"):
        download.fetch(pins["voice.onnx"][0], target / "voice.onnx", sha(model))
    (target / "voice.onnx").rmdir()
    (target / "voice.onnx.json.part").mkdir()
    with pytest.raises(DownloadError, match=r"voice\.onnx\.json\.part: a folder is in the way"):
        download.install_files(pins, target)


def bomb_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model/zeros", bytes(20_000_000))  # 20 MB from about 20 kB
    return path


@pytest.mark.parametrize(
    ("build", "limits", "problem"),
    [
        (bomb_zip, {}, r"expands \d+ times its size \(over 50\)"),
        (
            lambda p: make_zip(p, {"model/a": os.urandom(600_000), "model/b": os.urandom(600_000)}),
            {"MAX_UNPACKED_BYTES": 1_000_000},
            r"unpacks to 1\.2 MB, over 1\.0 MB",
        ),
        (
            lambda p: make_zip(p, {f"model/{i}": b"x" for i in range(11)}),
            {"MAX_MEMBERS": 10},
            "11 files, over 10",
        ),
    ],
    ids=["ratio", "size", "members"],
)
def test_an_archive_that_unpacks_to_too_much_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    build: Callable[[Path], Path],
    limits: dict[str, int],
    problem: str,
) -> None:
    for name, value in limits.items():  # small limits, so the test writes little
        monkeypatch.setattr(download, name, value)
    archive = build(tmp_path / "x.zip")
    with pytest.raises(
        DownloadError, match=rf"x\.zip: {problem}; the archive is unsafe, nothing was installed"
    ):
        download.install_zip(archive, tmp_path / "models" / "vosk")
    assert leftovers(tmp_path / "models") == []


def test_the_limits_are_far_above_the_model() -> None:
    # vosk-model-small-en-us-0.15: a 40 MB zip that unpacks to 68 MB in 30 files.
    assert download.MAX_UNPACKED_BYTES >= 10 * 68_000_000 and download.MAX_MEMBERS >= 100
