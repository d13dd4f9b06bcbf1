"""Datasets as device tensors: IDX reading, checked downloads, toy tasks, the DataModule."""

from zoo.data.datamodule import TensorLoader, ZooDataModule, data_settings
from zoo.data.datasets import DATASETS, DatasetInfo, get_dataset

__all__ = ["DATASETS", "DatasetInfo", "TensorLoader", "ZooDataModule", "data_settings", "get_dataset"]
