"""Downloads against a real HTTP server on 127.0.0.1 that can cut transfers short."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from zoo.data import datasets as datasets_module
from zoo.data.datamodule import ZooDataModule
from zoo.data.datasets import IDX_FILES
from zoo.data.download import download, ensure_files, md5sum
from zoo.errors import EnvironmentFault, ZooError

PAYLOAD = bytes(range(256)) * 4000  # 1 MB, several chunks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Mirror:
    """A local mirror: ``files`` maps a URL path to its bytes; ``cut`` counts transfers to break off halfway."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[str] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                body = mirror.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mirror.cut.get(self.path, 0) > 0:
                    mirror.cut[self.path] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def mirror():
    server = Mirror()
    yield server
    server.server.shutdown()
    server.server.server_close()


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".part"))


def test_download_writes_the_checked_file(mirror, tmp_path):
    mirror.files["/a.bin"] = PAYLOAD
    dest = download([f"{mirror.url}/a.bin"], tmp_path / "sub" / "a.bin", PAYLOAD_MD5, backoff=0)
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == []


def test_interrupted_download_is_retried(mirror, tmp_path):
    mirror.files["/a.bin"] = PAYLOAD
    mirror.cut["/a.bin"] = 1
    dest = download([f"{mirror.url}/a.bin"], tmp_path / "a.bin", PAYLOAD_MD5, backoff=0)
    assert md5sum(dest) == PAYLOAD_MD5
    assert mirror.requests == ["/a.bin", "/a.bin"]
    assert leftovers(tmp_path) == []


def test_download_that_always_breaks_leaves_no_file(mirror, tmp_path):
    mirror.files["/a.bin"] = PAYLOAD
    mirror.cut["/a.bin"] = 99
    with pytest.raises(ZooError, match="could not download a.bin after 3 rounds") as error:
        download([f"{mirror.url}/a.bin"], tmp_path / "a.bin", PAYLOAD_MD5, backoff=0)
    assert "a.bin" in str(error.value)
    assert not (tmp_path / "a.bin").exists()
    assert leftovers(tmp_path) == []


def test_wrong_bytes_are_not_kept(mirror, tmp_path):
    mirror.files["/a.bin"] = PAYLOAD[::-1]
    with pytest.raises(ZooError, match=f"does not match the expected {PAYLOAD_MD5}"):
        download([f"{mirror.url}/a.bin"], tmp_path / "a.bin", PAYLOAD_MD5, retries=1)
    assert list(tmp_path.iterdir()) == []


def test_next_mirror_is_tried(mirror, tmp_path):
    mirror.files["/second/a.bin"] = PAYLOAD
    dest = download(
        [f"{mirror.url}/first/a.bin", f"{mirror.url}/second/a.bin"], tmp_path / "a.bin", PAYLOAD_MD5, retries=1
    )
    assert dest.read_bytes() == PAYLOAD
    assert mirror.requests == ["/first/a.bin", "/second/a.bin"]


def test_offline_error_says_which_files_and_where(tmp_path):
    files = {"train.gz": "0" * 32, "test.gz": "1" * 32}
    unreachable = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(EnvironmentFault) as error:  # no network: the machine's fault (exit 4), not the input's
        ensure_files(tmp_path / "data" / "mnist", files, [unreachable], retries=1)
    assert error.value.exit_code == 4
    assert not (tmp_path / "data").exists()  # the folders it made for the download are gone again
    message = str(error.value)
    assert f"Put these files into {tmp_path / 'data' / 'mnist'}" in message
    assert "train.gz  (md5 00000000000000000000000000000000)" in message
    assert "test.gz  (md5 11111111111111111111111111111111)" in message
    assert "ZOO_DATA_DIR" in message


def test_downloads_off_lists_missing_files(tmp_path):
    with pytest.raises(ZooError, match="downloads are turned off"):
        ensure_files(tmp_path, {"train.gz": "0" * 32}, [], allow_download=False)


def test_unwritable_data_folder(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(ZooError, match="cannot write into .*not-a-folder"):
        ensure_files(blocker / "mnist", {"train.gz": "0" * 32}, ["http://127.0.0.1:9"], retries=1)


def test_datamodule_downloads_real_mnist_from_a_mirror(mirror, tmp_path, data_dir, monkeypatch):
    for name in IDX_FILES:
        mirror.files[f"/mnist/{name}"] = (data_dir / "mnist" / name).read_bytes()
    mirror.cut[f"/mnist/{IDX_FILES[0]}"] = 1  # the big file breaks off once
    local = dataclasses.replace(datasets_module.MNIST, mirrors=(f"{mirror.url}/mnist/",))
    monkeypatch.setitem(
        datasets_module.DATASETS, "mnist", dataclasses.replace(datasets_module.DATASETS["mnist"], load=local)
    )

    module = ZooDataModule("mnist", data_dir=str(tmp_path))
    module.setup("fit")
    for name in IDX_FILES:
        assert md5sum(tmp_path / "mnist" / name) == md5sum(data_dir / "mnist" / name)
    assert leftovers(tmp_path / "mnist") == []
    inputs, targets = module.split("train")
    assert inputs.shape == (55_000, 1, 28, 28)
    assert torch.bincount(torch.cat([targets, module.split("val")[1]])).sum() == 60_000
