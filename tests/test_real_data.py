"""Checks on the real datasets; slow, run with `make test-slow DATA_DIR=../shared/data`."""

import os

import numpy as np
import pytest

from keras_sentiment.run.sources import load_imdb, load_sst2

pytestmark = pytest.mark.slow


@pytest.fixture
def real_data_dir():
    # conftest points KERAS_SENTIMENT_DATA at an empty dir; the real one comes from the command line.
    data_dir = os.environ.get("REAL_DATA_DIR") or "../shared/data"
    assert os.path.isdir(data_dir), f"set REAL_DATA_DIR to the folder holding aclImdb_v1.tar.gz and SST-2/ ({data_dir} missing)"
    return data_dir


def labels_of(dataset):
    return np.concatenate([y for _, y in dataset.batch(4096).as_numpy_iterator()])


def test_real_imdb_splits(real_data_dir):
    splits = load_imdb(real_data_dir, source="local")
    assert splits.sizes == {"train": 17_500, "valid": 7_500, "test": 25_000}
    train, valid, test = (labels_of(ds) for ds in splits)
    assert (len(train), len(valid), len(test)) == (17_500, 7_500, 25_000)
    assert train.sum() + valid.sum() == 12_500 and test.sum() == 12_500


def texts_of(dataset):
    return [text.decode("utf-8") for batch, _ in dataset.batch(4096).as_numpy_iterator() for text in batch]


def test_real_sst2_splits(real_data_dir):
    """Valid is a seeded 10% of train.tsv's whole sentences, the phrases cut from them left out of train
    (`split_sst2_by_sentence`); test is GLUE's dev."""
    splits = load_sst2(real_data_dir, source="local")
    assert splits.sizes == {"train": 60_552, "valid": 689, "test": 872}
    train, valid, test = (labels_of(ds) for ds in splits)
    assert (len(train), len(valid), len(test)) == (60_552, 689, 872)
    assert train.sum() + valid.sum() == 34_117 and test.sum() == 444  # positive labels
    train_texts, valid_texts = texts_of(splits.train), texts_of(splits.valid)
    assert all(len(sentence) > 0 for sentence in valid_texts)
    assert not set(valid_texts) & set(train_texts)
    # A split of phrases leaves many of each held-out sentence in train (484 for 50 long ones, measured);
    # held out by sentence, only phrases that other sentences hold too ("it 's pleasant enough") remain.
    sample = valid_texts[:50]
    shared = [phrase for phrase in train_texts if len(phrase) > 20 and any(phrase in s for s in sample)]
    assert len(shared) < 25, shared
    assert max(map(len, train_texts)) > 200  # train still holds whole sentences of its own
