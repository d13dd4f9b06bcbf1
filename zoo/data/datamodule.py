"""``ZooDataModule``: every dataset as tensors on the training device, batched by index.

MNIST is 180 MB as float32, so it fits on any device. Holding it there and
slicing batches with a shuffled index tensor removes the per-sample
``__getitem__``, the collate step and the worker processes of the classic
``Dataset`` + ``DataLoader`` pipeline.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch

from zoo.data.datasets import DatasetInfo, DatasetName, LoadOptions, Splits, get_dataset
from zoo.errors import ZooError

Batch = tuple[torch.Tensor, torch.Tensor]

SYNTHETIC_SAMPLES = 10_000
"""Size of a synthetic dataset's pool (``multimult``) when ``num_samples`` is not given."""


def validation_count(val_fraction: float, pool: int) -> int:
    """How many of a training pool's ``pool`` samples the validation split takes (at least one)."""
    return max(1, round(val_fraction * pool))


def data_settings(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that decide a data module's samples: which fall in each split, their values and scaling.

    Two data modules with equal settings hold the same splits, so a checkpoint evaluated under
    them is evaluated on its own data (:meth:`ZooDataModule.differences` also takes two
    ``val_fraction`` that round to one split as equal). Defaults are resolved (``num_samples``
    None is 10,000 samples of multimult, ``outputs`` None every output), so spelling a default
    out changes nothing; a setting an older checkpoint lacks had its default then.
    The batch sizes, the folder, ``download`` and ``shuffle_seed`` (the order of training batches)
    change no sample and are not among them.
    """
    dataset = hparams.get("dataset", "mnist")
    outputs = hparams.get("outputs")
    return {
        "dataset": dataset,
        "seed": hparams.get("seed", 0),
        "val_fraction": hparams.get("val_fraction", 1 / 12),
        "normalize": hparams.get("normalize", "standard"),
        "num_samples": hparams.get("num_samples") or (SYNTHETIC_SAMPLES if dataset == "multimult" else None),
        "outputs": list(outputs) if outputs is not None else list(range(get_dataset(dataset).num_outputs)),
    }


class EpochSampler:
    """The order of one epoch: a permutation drawn from ``(seed, epoch)`` alone, and this rank's share.

    Lightning's loops call ``set_epoch`` (as for a ``DistributedSampler``), so a
    resumed run replays exactly the order an uninterrupted run would see. Under
    distributed training each of ``world_size`` ranks takes every
    ``world_size``-th index of the same permutation; with ``pad`` (training) the
    permutation is first extended by its own head so every rank gets as many
    batches, as ``DistributedSampler`` does. Evaluation shards are not padded, so
    no sample counts twice.
    """

    def __init__(
        self, size: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1, pad: bool = False
    ) -> None:
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0
        self.rank, self.world_size, self.pad = rank, world_size, pad

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.pad:
            return -(-self.size // self.world_size)
        return len(range(self.rank, self.size, self.world_size))

    def order(self, device: torch.device) -> torch.Tensor:
        if self.shuffle:
            indices = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            indices = torch.arange(self.size)
        if self.pad and self.size % self.world_size:
            indices = torch.cat([indices, indices[: self.world_size - self.size % self.world_size]])
        return indices[self.rank :: self.world_size].to(device)


class TensorLoader:
    """An iterable of ``(inputs, targets)`` batches gathered by index on the tensors' device.

    It mirrors the two attributes of ``DataLoader`` that Lightning's loops read:
    ``sampler`` (whose ``set_epoch`` they call) and ``batch_sampler`` (none here).
    """

    batch_sampler = None

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.inputs, self.targets, self.batch_size = inputs, targets, batch_size
        self.sampler = EpochSampler(len(inputs), shuffle, seed, rank, world_size, pad=shuffle)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        order = self.sampler.order(self.inputs.device)
        for batch in order.split(self.batch_size):  # index_select: 6 µs for 128 MNIST images, x[batch] 20 µs
            yield self.inputs.index_select(0, batch), self.targets.index_select(0, batch)


def select_outputs(info: DatasetInfo, outputs: list[int] | None) -> DatasetInfo:
    """The dataset as seen through ``data.outputs``: only the chosen targets, in the order given."""
    if outputs is None:
        return info
    if info.task != "regression":
        raise ZooError(f"data.outputs selects targets of a regression task; {info.name} is a {info.task} task")
    valid = all(isinstance(index, int) and 0 <= index < info.num_outputs for index in outputs)
    if not outputs or not valid:
        raise ZooError(
            f"data.outputs must list indices of {info.name}'s outputs, 0 to {info.num_outputs - 1} "
            f"({', '.join(info.output_names)}); got {outputs}"
        )
    return dataclasses.replace(info, output_names=tuple(info.output_names[index] for index in outputs))


class ZooDataModule(pl.LightningDataModule):
    """One data module for every model.

    Args:
        dataset: which task to load.
        data_dir: folder holding ``mnist/`` and ``fashion-mnist/``; default ``$ZOO_DATA_DIR``, else ``./data``.
        batch_size: training batch size.
        eval_batch_size: batch size for validation, test and predict (no gradients, so larger is faster).
        val_fraction: share of the training pool held out for validation, in (0, 1).
        normalize: ``standard`` rescales inputs to zero mean and unit variance with training-split
            statistics (one scalar for images, one per feature for tabular data); ``none`` keeps
            images in [0, 1] and features as they are.
        seed: seed of the data itself: the validation split and the synthetic samples. The shuffling
            of batches follows ``seed_everything`` instead, like Lightning's own samplers.
        num_samples: size of the training pool of synthetic datasets (``multimult`` only).
        download: fetch missing IDX files from the official mirrors.
        shuffle_seed: seed of the batch order; default the run's ``seed_everything``. Fixing it lets
            runs of different seeds see the same batches (as a population's members do).
        outputs: which targets of a regression task to keep, by index, e.g. ``[0]`` for multimult's
            first product alone: single-task networks to train, and later merge (``zoo.surgery``).
    """

    def __init__(
        self,
        dataset: DatasetName = "mnist",
        data_dir: str | None = None,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_fraction: float = 1 / 12,
        normalize: Literal["standard", "none"] = "standard",
        seed: int = 0,
        num_samples: int | None = None,
        download: bool = True,
        shuffle_seed: int | None = None,
        outputs: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.info: DatasetInfo = select_outputs(get_dataset(dataset), outputs)
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value <= 0:
                raise ZooError(f"data.{name} must be a positive integer, got {value}")
        if not 0 < val_fraction < 1:
            raise ZooError(f"data.val_fraction must lie strictly between 0 and 1, got {val_fraction}")
        if normalize not in ("standard", "none"):  # any other word read as "none": raw inputs, unannounced
            raise ZooError(f"data.normalize must be 'standard' or 'none', got {normalize!r}")
        if num_samples is not None and dataset != "multimult":
            raise ZooError(
                f"data.num_samples sets the size of synthetic datasets (multimult); {dataset!r} has a fixed size"
            )
        if num_samples is not None and num_samples < 2:
            raise ZooError(f"data.num_samples must be at least 2, got {num_samples}")
        self.save_hyperparameters(logger=False)  # zoo.runs.HParamsRecord logs the whole config
        self.data_dir = Path(data_dir or os.environ.get("ZOO_DATA_DIR") or "data")
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self._splits: dict[str, Batch] = {}

    # What the model needs to know; the CLI links these into its arguments.
    @property
    def task(self) -> str:
        return self.info.task

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.info.input_shape

    @property
    def num_outputs(self) -> int:
        return self.info.num_outputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.info.output_names

    @property
    def input_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Model-input values of raw 0 and 1 (black and white pixels): normalization moves them."""
        self.split("train")
        if self.mean is None:
            return torch.tensor(0.0), torch.tensor(1.0)
        return (0 - self.mean) / self.std, (1 - self.mean) / self.std

    def differences(self, hparams: Mapping[str, Any]) -> list[str]:
        """The settings (:func:`data_settings`) in which a data module of ``hparams`` holds other samples than this one.

        ``val_fraction`` counts as different only where it takes another number of samples from
        this data's training pool (1/12 and 0.083333 both take 5,000 of MNIST's 60,000); comparing
        it loads the data.
        """
        theirs, ours = data_settings(hparams), data_settings(self.hparams)
        changed = [key for key in ours if theirs[key] != ours[key]]
        if "val_fraction" in changed:
            pool = sum(len(self.split(name)[0]) for name in ("train", "val"))
            if validation_count(theirs["val_fraction"], pool) == validation_count(ours["val_fraction"], pool):
                changed.remove("val_fraction")
        return changed

    def setup(self, stage: str | None = None) -> None:
        if not self._splits:
            self._splits = self._split_and_normalize(self._load())
        if len(self._splits["train"][0]) < self.hparams.batch_size and stage == "fit":
            raise ZooError(
                f"data.batch_size {self.hparams.batch_size} is larger than the training split "
                f"({len(self._splits['train'][0])} samples of {self.info.name})"
            )
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self._splits = {name: (x.to(device), y.to(device)) for name, (x, y) in self._splits.items()}

    def split(self, name: Literal["train", "val", "test"]) -> Batch:
        """The whole split as ``(inputs, targets)`` tensors, for analyses that want all of it."""
        if name not in ("train", "val", "test"):
            raise ZooError(f"no split {name!r}; the splits are 'train', 'val' and 'test'")
        if not self._splits:
            self.setup()
        return self._splits[name]

    def train_dataloader(self) -> TensorLoader:
        """Shuffled every epoch; under ``--trainer.overfit_batches`` in order, so that its first batches are the
        same ones every epoch (Lightning turns a ``DataLoader``'s shuffling off there; this loader is not one)."""
        shuffle_seed = self.hparams.shuffle_seed
        if shuffle_seed is None:
            shuffle_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        shuffle = self.trainer is None or not self.trainer.overfit_batches
        return TensorLoader(
            *self.split("train"), self.hparams.batch_size, shuffle=shuffle, seed=shuffle_seed, **self._shard()
        )

    def val_dataloader(self) -> TensorLoader:
        return TensorLoader(*self.split("val"), self.hparams.eval_batch_size, shuffle=False, **self._shard())

    def test_dataloader(self) -> TensorLoader:
        return TensorLoader(*self.split("test"), self.hparams.eval_batch_size, shuffle=False, **self._shard())

    def _shard(self) -> dict[str, int]:
        """This process's place among the training processes (one process: the whole split)."""
        if self.trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": self.trainer.global_rank, "world_size": self.trainer.world_size}

    def predict_dataloader(self) -> TensorLoader:
        return self.test_dataloader()

    def _load(self) -> Splits:
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ZooError(
                f"data folder {self.data_dir} is a file; point --data.data_dir (or ZOO_DATA_DIR) at a folder"
            )
        num_samples = self.hparams.num_samples or SYNTHETIC_SAMPLES
        splits = self.info.load(LoadOptions(self.data_dir, self.hparams.download, num_samples, self.hparams.seed))
        if self.hparams.outputs is None:
            return splits
        chosen = torch.tensor(self.hparams.outputs)
        train, test = splits.train_targets[:, chosen], splits.test_targets[:, chosen]
        return splits._replace(train_targets=train, test_targets=test)

    def _split_and_normalize(self, splits: Splits) -> dict[str, Batch]:
        pool = len(splits.train_inputs)
        n_val = validation_count(self.hparams.val_fraction, pool)
        order = torch.randperm(pool, generator=torch.Generator().manual_seed(self.hparams.seed))
        val, train = order[:n_val], order[n_val:]
        parts = {
            "train": (splits.train_inputs[train], splits.train_targets[train]),
            "val": (splits.train_inputs[val], splits.train_targets[val]),
            "test": (splits.test_inputs, splits.test_targets),
        }
        if self.hparams.normalize == "standard":
            train_inputs = parts["train"][0]
            dims = tuple(range(train_inputs.ndim)) if train_inputs.ndim > 2 else (0,)
            self.mean = train_inputs.mean(dim=dims, keepdim=True)[0]
            self.std = train_inputs.std(dim=dims, keepdim=True)[0].clamp_min(1e-8)
            for inputs, _ in parts.values():  # in place: each split is a fresh tensor of its own
                inputs.sub_(self.mean).div_(self.std)
        return parts
