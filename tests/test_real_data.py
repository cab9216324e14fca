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


def test_real_sst2_splits(real_data_dir):
    splits = load_sst2(real_data_dir, source="local")
    assert splits.sizes == {"train": 63_982, "valid": 3_367, "test": 872}
    train, valid, test = (labels_of(ds) for ds in splits)
    assert train.sum() + valid.sum() == 37_569 and test.sum() == 444
