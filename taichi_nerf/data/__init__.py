"""Datasets: loaders turn files into a :class:`Dataset`; writers make datasets."""
from .dataset import INTRINSICS, DataError, Dataset, Split, pinhole

__all__ = ["INTRINSICS", "DataError", "Dataset", "Split", "pinhole"]
