"""Handwritten digits: the 1,797 8x8 images of the UCI "Optical Recognition of
Handwritten Digits" test set, shipped with ember so nothing is downloaded.

Provenance: ``digits.csv.gz`` is the file scikit-learn bundles as
``sklearn/datasets/data/digits.csv.gz`` (copied unchanged from the scikit-learn 1.9.1
wheel). Each row holds 64 pixel counts in 0..16 (row-major 8x8) and the label 0..9.
Original data: E. Alpaydin and C. Kaynak, UCI Machine Learning Repository,
https://doi.org/10.24432/C50P49, licensed CC BY 4.0; scikit-learn is BSD-3-Clause.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources

import numpy as np

from ....tensor import wrap_array
from ..dataset import Dataset, index_array

NUM_SAMPLES = 1797
_FILE = "digits.csv.gz"


@functools.cache
def _read() -> tuple[np.ndarray, np.ndarray]:
    raw = importlib.resources.files(__package__).joinpath(_FILE).read_bytes()
    table = np.loadtxt(gzip.decompress(raw).decode("ascii").splitlines(), delimiter=",")
    if table.shape != (NUM_SAMPLES, 65):
        raise RuntimeError(f"{_FILE} is damaged: expected shape (1797, 65), got {table.shape}")
    images = (table[:, :64] / 16.0).astype(np.float32).reshape(-1, 8, 8)
    labels = table[:, 64].astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    r"""All 1,797 digits as NumPy arrays: images ``float32 (1797, 8, 8)`` in [0, 1]
    (pixel counts / 16) and labels ``int64 (1797,)`` in 0..9.

    Example::

        >>> images, labels = load_digits()
    """
    images, labels = _read()
    return images.copy(), labels.copy()


def split_indices(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split: within each class, a seeded shuffle sends
    ``round(test_fraction * count)`` samples to the test side. Both sides sorted."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_test = int(round(test_fraction * idx.size))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class Digits(Dataset):
    r"""The 8x8 handwritten digits as a map-style dataset of ``(image, label)``: image a
    ``float32`` tensor of shape ``(1, 8, 8)`` in [0, 1], label an ``int`` in 0..9.

    The train/test split is stratified by class and fixed by ``seed``, so the same
    arguments always give the same samples. ``data`` (N, 1, 8, 8) and ``targets`` (N,)
    hold the whole split as tensors, for full-batch training.

    Args:
        train: the training part (else the test part).
        test_fraction: share of each class held out for testing, in (0, 1).
        seed: seed of the split.
        transform: applied to each image tensor.

    Example::

        >>> train = Digits(train=True)
        >>> loader = DataLoader(train, batch_size=64, shuffle=True)
    """

    classes = list(range(10))

    def __init__(
        self, train: bool = True, test_fraction: float = 0.2, seed: int = 0, transform=None
    ):
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        images, labels = _read()
        train_idx, test_idx = split_indices(labels, test_fraction, seed)
        idx = train_idx if train else test_idx
        self.train = train
        self.transform = transform
        self._images = np.ascontiguousarray(images[idx][:, None])
        self._labels = labels[idx]
        self.data = wrap_array(self._images)
        self.targets = wrap_array(self._labels)

    def __len__(self) -> int:
        return self._labels.shape[0]

    def __getitem__(self, index: int):
        image = wrap_array(self._images[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self._labels[index])

    def _collated_batch(self, indices):
        """``default_collate([self[i] for i in indices])`` as two gathers."""
        idx = index_array(indices)
        if idx is None or self.transform is not None:
            return NotImplemented
        return [
            wrap_array(self._images[idx]),
            wrap_array(self._labels[idx]),
        ]

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"Digits(split={split}, size={len(self)})"
