"""A character-level corpus for language models, built from text every Python install
carries: ``pydoc_data.topics.topics``, the standard library's documentation topics
(the help() pages of the language reference; Python Software Foundation License)."""

from __future__ import annotations

import functools

import numpy as np

from ....tensor import Tensor, wrap_array
from ..dataset import Dataset, index_array


@functools.cache
def load_corpus_text() -> str:
    r"""The corpus: every ``pydoc_data`` topic in sorted key order, joined by blank lines.

    Example::

        >>> text = load_corpus_text()
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # pragma: no cover - stripped-down Python builds only
        raise RuntimeError(
            "CharCorpus needs the standard library's pydoc_data package, which this Python "
            "installation lacks"
        ) from err
    return "\n\n".join(topics[k] for k in sorted(topics))


class CharCorpus(Dataset):
    r"""Next-character windows over the pydoc topics text: sample ``i`` is ``(x, y)`` with
    ``x = data[i : i + block_size]`` and ``y = data[i + 1 : i + block_size + 1]``, both
    ``int64`` tensors of character ids.

    The first ``1 - val_fraction`` of the text is the training split, the rest the
    validation split; the vocabulary (sorted characters) covers the whole text, so both
    splits share ``vocab``, ``stoi``, ``itos`` and ``vocab_size``.

    Args:
        block_size: context length of each window.
        train: the training split (else validation).
        val_fraction: share of the text, taken from its end, used for validation.

    Example::

        >>> ds = CharCorpus(block_size=64)
        >>> x, y = ds[0]
        >>> ds.decode(x.tolist())
    """

    def __init__(self, block_size: int, train: bool = True, val_fraction: float = 0.1):
        if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size <= 0:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        text = load_corpus_text()
        self.vocab = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.vocab)}
        self.itos = dict(enumerate(self.vocab))
        ids = _encoded(text)
        cut = int(len(ids) * (1.0 - val_fraction))
        self.data = (ids[:cut] if train else ids[cut:]).copy()
        if self.data.size <= block_size:
            raise ValueError(
                f"block_size={block_size} needs more than {block_size} characters, but the "
                f"{'train' if train else 'validation'} split has {self.data.size}"
            )
        self.block_size = block_size
        self.train = train

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, s: str) -> list[int]:
        r"""Character ids of ``s``; raises KeyError for a character outside the vocabulary."""
        try:
            return [self.stoi[c] for c in s]
        except KeyError as err:
            raise KeyError(f"character {err.args[0]!r} is not in the corpus vocabulary") from None

    def decode(self, ids) -> str:
        r"""The text of a sequence of ids (a list or a 1-D tensor)."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return "".join(self.itos[int(i)] for i in ids)

    def __len__(self) -> int:
        return self.data.size - self.block_size

    def __getitem__(self, index: int):
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} is out of range for CharCorpus of length {n}")
        chunk = self.data[index : index + self.block_size + 1]
        return wrap_array(chunk[:-1]), wrap_array(chunk[1:])

    def _collated_batch(self, indices):
        """``default_collate([self[i] for i in indices])`` as one strided gather."""
        idx = index_array(indices)
        if idx is None:
            return NotImplemented
        n = len(self)
        bad = (idx < -n) | (idx >= n)
        if bad.any():
            raise IndexError(f"index {idx[bad][0]} is out of range for CharCorpus of length {n}")
        idx = np.where(idx < 0, idx + n, idx)
        windows = self.data[idx[:, None] + np.arange(self.block_size + 1)]
        return [
            wrap_array(np.ascontiguousarray(windows[:, :-1])),
            wrap_array(np.ascontiguousarray(windows[:, 1:])),
        ]


@functools.cache
def _encoded(text: str) -> np.ndarray:
    vocab = sorted(set(text))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.array([ord(c) for c in vocab], dtype=np.uint32)
    ids = np.searchsorted(table, codes).astype(np.int64)
    ids.flags.writeable = False
    return ids
