"""Shared fixtures: the real MNIST files, tiny IDX files, and the CLI run in a scratch folder."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# Cases that need what CI lacks show up as skipped, with the reason, rather than not at all.
CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here"))
DEVICES = ["cpu", CUDA]


def _torch_sparse_param() -> object:
    from zoo.models.sparse import torch_sparse_available

    reason = "torch-sparse is not installed (optional extra zoo[sparse])"
    return pytest.param("torch_sparse", marks=pytest.mark.skipif(not torch_sparse_available(), reason=reason))


TORCH_SPARSE = _torch_sparse_param()

# Tests change directory; pin the data folder to an absolute path first.
DATA_DIR = (ROOT / os.environ.get("ZOO_DATA_DIR", "../shared/data")).resolve()
os.environ["ZOO_DATA_DIR"] = str(DATA_DIR)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"MNIST not found under {DATA_DIR}: set ZOO_DATA_DIR to the folder holding mnist/ and fashion-mnist/"
        )
    return DATA_DIR


@pytest.fixture(scope="session")
def mnist(data_dir):
    """MNIST set up once for the whole session (loading takes about a second)."""
    from zoo import ZooDataModule

    module = ZooDataModule("mnist", data_dir=str(data_dir))
    module.setup("fit")
    return module


@pytest.fixture
def run_dir(tmp_path, monkeypatch) -> Path:
    """Run the CLI inside a scratch folder so lightning_logs/ lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def idx_bytes(tensor: torch.Tensor, magic_type: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, magic_type, tensor.ndim) + struct.pack(f">{tensor.ndim}I", *tensor.shape)
    return header + tensor.to(torch.uint8).numpy().tobytes()


def write_idx(path: Path, tensor: torch.Tensor, **kwargs) -> str:
    """Write a gzip-compressed IDX file; returns its MD5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = gzip.compress(idx_bytes(tensor, **kwargs))
    path.write_bytes(data)
    return hashlib.md5(data).hexdigest()


@pytest.fixture(autouse=True)
def lightning_log_levels():
    """A sweep trial run in-process quiets Lightning's loggers for its process: give each test them back."""
    import logging

    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(autouse=True)
def _autograd_left_on():
    """A test that calls a program's main in-process must not leave autograd off for the tests after it."""
    yield
    assert torch.is_grad_enabled(), "this test left autograd disabled (torch.set_grad_enabled(False) in a main?)"
