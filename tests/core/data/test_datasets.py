"""The embedded datasets: 8x8 digits and the pydoc character corpus."""

from pydoc_data.topics import topics

import numpy as np
import pytest

import ember
from ember.utils.data import DataLoader
from ember.utils.data.datasets import CharCorpus, Digits, load_corpus_text, load_digits

# Class sizes of the UCI optdigits set as scikit-learn ships it.
DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_load_digits():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == DIGIT_COUNTS
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.all(np.isin(images * 16, np.arange(17)))  # pixel counts 0..16, scaled
    # The first image of the set is a zero with this top row (scikit-learn's digits.images[0]).
    assert labels[0] == 0 and (images[0, 0] * 16).tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    images[0] = 5  # callers get their own copy
    assert load_digits()[0][0, 0, 0] == 0


def test_digits_split_is_stratified_and_deterministic():
    train, test = Digits(train=True), Digits(train=False)
    assert len(train) + len(test) == 1797
    assert len(test) == sum(round(0.2 * c) for c in DIGIT_COUNTS)
    counts = np.bincount(test.targets.numpy(), minlength=10)
    np.testing.assert_array_equal(counts, [round(0.2 * c) for c in DIGIT_COUNTS])
    _, labels = load_digits()
    images, _ = load_digits()
    # Train and test together are exactly the whole set, with no overlap.
    both = np.concatenate([train.data.numpy(), test.data.numpy()]).reshape(-1, 64)
    assert sorted(map(bytes, both)) == sorted(map(bytes, images.reshape(-1, 64)))
    again = Digits(train=False)
    np.testing.assert_array_equal(again.data.numpy(), test.data.numpy())
    other = Digits(train=False, seed=1)
    assert not np.array_equal(other.data.numpy(), test.data.numpy())
    assert len(Digits(train=False, test_fraction=0.5)) == sum(round(0.5 * c) for c in DIGIT_COUNTS)


def test_digits_samples_and_loader():
    ds = Digits(transform=lambda img: img * 2)
    image, label = ds[3]
    assert isinstance(image, ember.Tensor) and image.shape == (1, 8, 8)
    assert image.dtype == ember.float32 and isinstance(label, int) and 0 <= label <= 9
    np.testing.assert_array_equal(image.numpy(), ds.data.numpy()[3] * 2)
    assert label == ds.targets.numpy()[3]
    xb, yb = next(iter(DataLoader(Digits(), batch_size=32)))
    assert xb.shape == (32, 1, 8, 8) and yb.dtype == ember.int64
    assert "train" in repr(ds) and Digits.classes == list(range(10))
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\), got 1.5"):
        Digits(test_fraction=1.5)


def test_corpus_text_is_sorted_topics():
    text = load_corpus_text()
    assert text == "\n\n".join(topics[k] for k in sorted(topics))


def test_char_corpus_windows_decode_to_text():
    text = load_corpus_text()
    ds = CharCorpus(block_size=16)
    val = CharCorpus(block_size=16, train=False)
    assert ds.vocab == sorted(set(text)) and ds.vocab_size == len(ds.vocab) == val.vocab_size
    cut = int(len(text) * 0.9)
    assert len(ds) == cut - 16 and len(val) == len(text) - cut - 16
    for i in [0, 1, 1000, len(ds) - 1]:
        x, y = ds[i]
        assert x.dtype == ember.int64 and x.shape == (16,) and y.shape == (16,)
        assert ds.decode(x) == text[i : i + 16]
        assert ds.decode(y.tolist()) == text[i + 1 : i + 17]
    x, y = val[0]
    assert val.decode(x) == text[cut : cut + 16]
    x_last, _ = ds[-1]
    assert ds.decode(x_last) == text[cut - 17 : cut - 1]
    assert ds.decode(ds.encode("def f(x):")) == "def f(x):"
    assert ds.itos[ds.stoi["a"]] == "a"
    xb, yb = next(iter(DataLoader(ds, batch_size=4, shuffle=True)))
    assert xb.shape == (4, 16) and yb.dtype == ember.int64
    np.testing.assert_array_equal(xb.numpy()[:, 1:], yb.numpy()[:, :-1])


def test_char_corpus_errors():
    ds = CharCorpus(block_size=8)
    with pytest.raises(KeyError, match="not in the corpus vocabulary"):
        ds.encode("\u2603")
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        CharCorpus(block_size=0)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        CharCorpus(block_size=8, val_fraction=0.0)
    with pytest.raises(ValueError, match="validation split has"):
        CharCorpus(block_size=10**6, train=False)
