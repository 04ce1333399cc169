"""`download_model` against a real HTTP server on 127.0.0.1, and `vosk_engine.find_model`.

The server serves small zips built here with a vosk model's layout; each test
passes its own `ModelEntry` pinned to its zip, so no checksum is overridden.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from assistant.app.download import download_model
from assistant.app.progress import NullProgress
from assistant.errors import DownloadError, ModelError
from assistant.hear import vosk_engine
from assistant.hear.vosk_engine import ModelEntry

NAME = "vosk-model-small-en-us-0.15"
LAYOUT = {
    "am/final.mdl": b"acoustic model",
    "conf/model.conf": b"--endpoint.rule2.min-trailing-silence=0.5\n",
    "conf/mfcc.conf": b"--use-energy=false\n",
    "graph/HCLr.fst": b"lookahead graph",
    "graph/Gr.fst": b"grammar",
    "graph/phones/word_boundary.int": b"1 nonword\n",
    "ivector/final.ie": b"ivector extractor",
    "README": b"a fake model for tests\n",
}


def build_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def model_zip(top: str = NAME, extra: dict[str, bytes] | None = None) -> bytes:
    return build_zip({f"{top}/{name}": data for name, data in LAYOUT.items()} | (extra or {}))


class Server:
    """Serves files from a folder; `cut_after` bytes ends every body early, as a dropped connection."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cut_after: int | None = None
        self.requests = 0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests += 1
                if outer.cut_after is None:
                    return super().do_GET()
                data = (outer.root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: outer.cut_after])
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def publish(self, name: str, data: bytes) -> ModelEntry:
        """Serve `data` as `name`; the entry pinned to exactly these bytes."""
        (self.root / name).write_bytes(data)
        url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"
        return ModelEntry(NAME, url, hashlib.sha256(data).hexdigest(), len(data))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "served").mkdir()
    srv = Server(tmp_path / "served")
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join()


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv(vosk_engine.ENV_MODEL, raising=False)
    return tmp_path / "data" / "backstretch" / "models"


def test_the_pinned_entry_is_well_formed() -> None:
    entry = vosk_engine.SMALL_EN_US
    assert entry.url == f"https://alphacephei.com/vosk/models/{entry.name}.zip"
    assert entry.sha256 == "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498"
    assert vosk_engine.CATALOGUE[entry.name] is entry


def test_download_installs_the_model_where_find_model_looks(
    server: Server, data_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = server.publish("model.zip", model_zip())
    installed = download_model(entry)  # the default target and the default progress bar
    assert installed == data_home / NAME
    for name, data in LAYOUT.items():
        assert (installed / name).read_bytes() == data
    assert sorted(p.name for p in data_home.iterdir()) == [NAME]  # no zip, .part or staging left
    assert vosk_engine.find_model(None) == installed
    assert f".{NAME}.zip: done" in capsys.readouterr().err


def test_a_second_download_replaces_the_first(server: Server, tmp_path: Path) -> None:
    entry = server.publish("model.zip", model_zip())
    target = download_model(entry, tmp_path / "models", NullProgress())
    (target / "stale-file").write_text("from the old install")
    entry = server.publish("model2.zip", model_zip(extra={f"{NAME}/NEW": b"new"}))
    assert download_model(entry, tmp_path / "models", NullProgress()) == target
    assert (target / "NEW").is_file() and not (target / "stale-file").exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [NAME]


def test_a_checksum_mismatch_installs_nothing(server: Server, tmp_path: Path) -> None:
    entry = server.publish("model.zip", model_zip())
    wrong = replace(entry, sha256=hashlib.sha256(b"something else").hexdigest(), size=None)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_model(wrong, tmp_path / "models", NullProgress())
    assert list((tmp_path / "models").iterdir()) == []


def test_an_archive_escaping_the_target_is_refused(server: Server, tmp_path: Path) -> None:
    evil = model_zip(extra={f"{NAME}/../../evil": b"owned", "../evil": b"owned"})
    entry = server.publish("model.zip", evil)
    root = tmp_path / "deep" / "models"
    with pytest.raises(DownloadError, match="outside the install folder"):
        download_model(entry, root, NullProgress())
    assert list(root.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "deep" / "evil").exists()


def test_an_archive_without_the_expected_folder_is_refused(server: Server, tmp_path: Path) -> None:
    entry = server.publish("model.zip", model_zip(top="something-else"))
    with pytest.raises(DownloadError, match=f"expected one folder '{NAME}'"):
        download_model(entry, tmp_path / "models", NullProgress())
    assert list((tmp_path / "models").iterdir()) == []


def test_a_mirror_of_the_models(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$BACKSTRETCH_MODELS_URL replaces where the zip comes from; the pin stays."""
    data = model_zip()
    (server.root / "mirror").mkdir()
    (server.root / "mirror" / f"{NAME}.zip").write_bytes(data)
    entry = ModelEntry(NAME, f"https://models.invalid/vosk/{NAME}.zip", hashlib.sha256(data).hexdigest())
    monkeypatch.setenv("BACKSTRETCH_MODELS_URL", f"http://127.0.0.1:{server.httpd.server_address[1]}/mirror/")
    installed = download_model(entry, tmp_path / "models", NullProgress())
    assert (installed / "am" / "final.mdl").read_bytes() == LAYOUT["am/final.mdl"]
    wrong = replace(entry, sha256=hashlib.sha256(b"another model").hexdigest())
    with pytest.raises(DownloadError, match=r"/mirror/vosk-model-small-en-us-0\.15\.zip: checksum mismatch"):
        download_model(wrong, tmp_path / "models2", NullProgress())


def test_an_interrupted_download_then_a_clean_retry(server: Server, tmp_path: Path) -> None:
    data = model_zip(extra={f"{NAME}/graph/big": bytes(range(256)) * 2000})
    entry = server.publish("model.zip", data)
    root = tmp_path / "models"
    server.cut_after = len(data) // 2
    with pytest.raises(DownloadError, match="cut off"):
        download_model(entry, root, NullProgress())
    assert list(root.iterdir()) == []  # the half file was removed
    # A run killed outright leaves its .part and a staging folder; the next run discards them.
    (root / f".{NAME}.zip.part").write_bytes(data[:1000])
    (root / f".{NAME}.abc.staging" / "unpacked").mkdir(parents=True)
    server.cut_after = None
    installed = download_model(entry, root, NullProgress())
    assert (installed / "graph" / "big").read_bytes() == bytes(range(256)) * 2000
    assert sorted(p.name for p in root.iterdir()) == [NAME]
    assert server.requests == 2


# -- find_model --------------------------------------------------------------


def fake_model(folder: Path, runtime_graph: bool = True) -> Path:
    (folder / "am").mkdir(parents=True)
    (folder / "am" / "final.mdl").write_bytes(b"model")
    (folder / "graph").mkdir()
    (folder / "graph" / ("HCLr.fst" if runtime_graph else "HCLG.fst")).write_bytes(b"graph")
    return folder


def test_find_model_with_nothing_installed(data_home: Path) -> None:
    assert vosk_engine.find_model(None) is None
    (data_home / NAME).mkdir(parents=True)  # an empty folder is no model
    (data_home / f".{NAME}.zip.part").write_bytes(b"half")
    assert vosk_engine.find_model(None) is None


def test_find_model_precedence(data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = fake_model(data_home / NAME)
    assert vosk_engine.find_model(None) == installed
    assert vosk_engine.find_model("") == installed  # an empty setting is no setting
    from_env = fake_model(tmp_path / "env-model")
    monkeypatch.setenv(vosk_engine.ENV_MODEL, str(from_env))
    assert vosk_engine.find_model(None) == from_env
    configured = fake_model(tmp_path / "configured")
    assert vosk_engine.find_model(str(configured)) == configured
    # What the user set is returned even when it is wrong, so they hear about it.
    assert vosk_engine.find_model(str(tmp_path / "typo")) == tmp_path / "typo"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert vosk_engine.find_model("~/configured") == configured


def test_find_model_takes_other_english_models_in_the_data_dir(data_home: Path) -> None:
    fake_model(data_home / "vosk-model-en-us-0.22", runtime_graph=False)
    assert vosk_engine.find_model(None) == data_home / "vosk-model-en-us-0.22"
    lgraph = fake_model(data_home / "vosk-model-en-us-0.22-lgraph")
    fake_model(data_home / "vosk-model-small-de-0.15")
    assert vosk_engine.find_model(None) == lgraph  # one that takes a grammar is preferred
    small = fake_model(data_home / NAME)
    assert vosk_engine.find_model(None) == small  # the one `models download` installs comes first


def test_a_found_fake_model_is_a_clear_error_when_loaded(data_home: Path) -> None:
    installed = fake_model(data_home / NAME)
    with pytest.raises(ModelError, match="damaged or incomplete") as caught:
        vosk_engine.VoskModel(installed, endpoint=None)
    assert "backstretch models download" in str(caught.value)
