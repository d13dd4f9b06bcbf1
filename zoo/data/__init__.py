"""Datasets as device tensors: IDX reading, checked downloads, toy tasks, the DataModule."""

from zoo.data.datamodule import TensorLoader, ZooDataModule
from zoo.data.datasets import DATASETS, DatasetInfo, get_dataset

__all__ = ["DATASETS", "DatasetInfo", "TensorLoader", "ZooDataModule", "get_dataset"]
