"""What zoo knows about each dataset, before loading a single byte.

The metadata (task kind, input shape, number of outputs) is static so the CLI
can link it into the model at parse time; the loader runs only in ``setup``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import torch

from zoo.errors import ZooError
from zoo.task import Task

DatasetName = Literal["mnist", "fashion_mnist", "iris", "multimult"]


class Splits(NamedTuple):
    """Training pool and official test set; the validation split is carved later."""

    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor


@dataclass(frozen=True)
class LoadOptions:
    root: Path
    download: bool
    num_samples: int
    seed: int


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: Task
    input_shape: tuple[int, ...]
    output_names: tuple[str, ...]
    load: Callable[[LoadOptions], Splits]

    @property
    def num_outputs(self) -> int:
        return len(self.output_names)


IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclass(frozen=True)
class IDXSource:
    """Where an IDX dataset lives locally and on the network, with its published MD5s."""

    folder: str
    mirrors: tuple[str, ...]
    md5: tuple[str, str, str, str]
    num_classes: int = 10

    def __call__(self, options: LoadOptions) -> Splits:
        from zoo.data.download import ensure_files
        from zoo.data.idx import read_idx

        folder = options.root / self.folder
        ensure_files(folder, dict(zip(IDX_FILES, self.md5)), self.mirrors, allow_download=options.download)
        tensors = [read_idx(folder / name) for name in IDX_FILES]
        train = self._pair(folder, *tensors[:2])
        test = self._pair(folder, *tensors[2:])
        return Splits(*train, *test)

    def _pair(self, folder: Path, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.ndim != 3 or labels.ndim != 1:
            raise ZooError(
                f"{folder}: expected images of shape N×28×28 and labels of shape N, got {tuple(images.shape)} and "
                f"{tuple(labels.shape)}"
            )
        if len(images) != len(labels):
            raise ZooError(
                f"{folder}: {len(images)} images but {len(labels)} labels; the files belong to different releases"
            )
        if labels.numel() and int(labels.max()) >= self.num_classes:
            raise ZooError(
                f"{folder}: label {int(labels.max())} out of range; accepted labels are 0..{self.num_classes - 1}"
            )
        return images.unsqueeze(1).float().div_(255), labels.long()


MNIST = IDXSource(
    folder="mnist",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    md5=(
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
)
FASHION_MNIST = IDXSource(
    folder="fashion-mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5=(
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
)


def _iris(options: LoadOptions) -> Splits:
    from zoo.data.toy import load_iris

    return load_iris(options.seed)


def _multimult(options: LoadOptions) -> Splits:
    from zoo.data.toy import make_multimult

    return make_multimult(options.num_samples, options.seed)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("mnist", "classification", (1, 28, 28), tuple("0123456789"), MNIST),
        DatasetInfo(
            "fashion_mnist",
            "classification",
            (1, 28, 28),
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            FASHION_MNIST,
        ),
        DatasetInfo("iris", "classification", (4,), ("setosa", "versicolor", "virginica"), _iris),
        DatasetInfo("multimult", "regression", (4,), ("x0*x1", "x2*x3"), _multimult),
    )
}


def get_dataset(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ZooError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    return DATASETS[name]
