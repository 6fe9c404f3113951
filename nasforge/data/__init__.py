"""Datasets: generated, shipped inside packages, or the user's own .npz file."""

from .datasets import DATASETS, DataError, Dataset, load_dataset, split_validation

__all__ = ["DATASETS", "DataError", "Dataset", "load_dataset", "split_validation"]
