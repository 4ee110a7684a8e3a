"""Datasets as in-memory numpy arrays with train / validation / test splits.

Fitness is always measured on the validation split; the test split is for final reports.
"""

from evonas.data.batches import batch_indices
from evonas.data.dataset import Dataset
from evonas.data.load import DATASETS, DOORS, load_dataset
from evonas.data.tfds import DatasetNotFoundError

__all__ = ["DATASETS", "DOORS", "Dataset", "DatasetNotFoundError", "batch_indices", "load_dataset"]
