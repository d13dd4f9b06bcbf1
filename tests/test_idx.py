import gzip

import pytest
import torch
from conftest import idx_bytes, write_idx

from zoo.data.datasets import IDX_FILES, IDXSource, LoadOptions
from zoo.data.idx import parse_idx, read_idx
from zoo.errors import ZooError


def test_roundtrip_images_and_labels(tmp_path):
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([7, 0, 9], dtype=torch.uint8)
    write_idx(tmp_path / "images.gz", images)
    write_idx(tmp_path / "labels.gz", labels)
    assert torch.equal(read_idx(tmp_path / "images.gz"), images)
    assert torch.equal(read_idx(tmp_path / "labels.gz"), labels)


def test_plain_uncompressed_file(tmp_path):
    labels = torch.arange(10, dtype=torch.uint8)
    (tmp_path / "labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    assert torch.equal(read_idx(tmp_path / "labels-idx1-ubyte"), labels)


def test_wrong_magic_is_refused():
    raw = idx_bytes(torch.zeros(2, 2), magic_type=0x0D)  # 0x0D = float32, not what MNIST ships
    with pytest.raises(ZooError, match="wrong IDX magic number 0x00000d02"):
        parse_idx(raw)


def test_payload_shorter_than_header_announces():
    raw = idx_bytes(torch.zeros(4, 28, 28))[:-10]
    with pytest.raises(ZooError, match=r"announces shape \(4, 28, 28\)"):
        parse_idx(raw)


def test_truncated_gzip_is_refused_not_half_read(tmp_path):
    path = tmp_path / "images.gz"
    write_idx(path, torch.randint(0, 256, (50, 28, 28)))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ZooError, match="cannot be read as gzip-compressed IDX"):
        read_idx(path)


def test_not_gzip_at_all(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(ZooError, match="images.gz"):
        read_idx(path)


def _tiny_source(tmp_path, train_labels, train_count=4):
    folder = tmp_path / "tiny"
    tensors = [
        torch.randint(0, 256, (train_count, 28, 28)),
        torch.tensor(train_labels),
        torch.randint(0, 256, (2, 28, 28)),
        torch.tensor([1, 2]),
    ]
    md5 = tuple(write_idx(folder / name, tensor) for name, tensor in zip(IDX_FILES, tensors))
    return IDXSource(folder="tiny", mirrors=(), md5=md5), LoadOptions(tmp_path, download=False, num_samples=0, seed=0)


def test_idx_dataset_loads_as_scaled_images(tmp_path):
    source, options = _tiny_source(tmp_path, [0, 1, 2, 3])
    splits = source(options)
    assert splits.train_inputs.shape == (4, 1, 28, 28)
    assert splits.train_inputs.dtype == torch.float32
    assert 0 <= splits.train_inputs.min() and splits.train_inputs.max() <= 1
    assert splits.train_targets.tolist() == [0, 1, 2, 3]
    assert splits.test_targets.dtype == torch.long


def test_image_label_count_mismatch(tmp_path):
    source, options = _tiny_source(tmp_path, [0, 1, 2], train_count=4)
    with pytest.raises(ZooError, match="4 images but 3 labels"):
        source(options)


def test_label_out_of_range(tmp_path):
    source, options = _tiny_source(tmp_path, [0, 1, 12, 3])
    with pytest.raises(ZooError, match=r"label 12 out of range; accepted labels are 0\.\.9"):
        source(options)


def test_wrong_md5_is_refused_before_reading(tmp_path):
    source, options = _tiny_source(tmp_path, [0, 1, 2, 3])
    with gzip.open(tmp_path / "tiny" / IDX_FILES[1], "wb") as handle:  # same shape, other content
        handle.write(idx_bytes(torch.tensor([3, 2, 1, 0])))
    with pytest.raises(ZooError, match=r"train-labels-idx1-ubyte.gz: MD5 is [0-9a-f]{32}, expected"):
        source(options)


def test_real_mnist_files_match_their_published_counts(data_dir):
    labels = read_idx(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    counts = torch.bincount(labels.long(), minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
