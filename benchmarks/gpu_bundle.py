"""Pack what `benchmarks/gpu_epoch.py` needs on the lent GPU machine, which has JAX and CUDA but no
TensorFlow and reaches no package index (#36, section 4).

The bundle (`gpu_bundle/`, git-ignored; about 40 MB, under the device tool's 64 MiB carry limit):
- `imdb.npz`: IMDB's training split (the 22,500 reviews `make train`'s `--recipe fast` trains on), valid
  and test split as token ids of that recipe's vocabulary and length (uint16, concatenated with
  offsets), their labels, and the recipe's word2vec embedding matrix (float16);
- `recipe.json`: that recipe's model settings (`keras-sentiment train --recipe fast --dataset imdb`) and
  the bucket boundaries of our batching;
- `wheels/`: Keras (our version; on CPython 3.10, which it does not support, the newest that does) and
  the dependencies a JAX image may lack, for CPython 3.10-3.13 on manylinux x86-64; numpy, ml_dtypes
  and scipy come with JAX.

Usage (here, with TensorFlow; the word vectors come from the cache `make train` fills, else about a
minute of word2vec):
    python benchmarks/gpu_bundle.py --data-dir ../shared/data
then on the device (the `device` tool's `run`, carry ["gpu_bundle"]):
    bash benchmarks/gpu_epoch.sh
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from keras_sentiment.core.recurrent import load_embedding_matrix
from keras_sentiment.core.vectorizer import adapt_vectorizer, build_vectorizer, encode_texts
from keras_sentiment.run.batching import default_bucket_boundaries
from keras_sentiment.run.settings import resolve_settings
from keras_sentiment.run.sources import load_dataset
from keras_sentiment.run.word_vectors import word_vectors_for
from ragged_ids import concatenated  # benchmarks/, the script's folder

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# What Keras needs beyond what a JAX image holds (numpy, ml_dtypes, scipy), named one by one: with its
# dependencies resolved, pip would also fetch numpy (17 MB a Python version) past the carry limit.
KERAS_DEPENDENCIES = ("absl-py", "rich", "markdown-it-py", "mdurl", "pygments", "namex", "h5py", "optree",
                      "typing-extensions", "packaging")
MODEL_SETTINGS = ("embedding_dim", "hidden_dim", "num_layers", "pooling", "dropout", "batch_size",
                  "learning_rate", "max_length", "seed", "arch")


def encoded_split(vectorizer, dataset, max_length, batch_size=1024):
    """A split as concatenated uint16 ids, offsets `[n + 1]` and uint8 labels (no padding stored)."""
    rows, labels = [], []
    for texts, batch_labels in dataset.batch(batch_size):
        ids = encode_texts(vectorizer, texts, max_length).numpy()  # [batch, <= max_length], right-padded
        rows.extend(row[:max(int(np.count_nonzero(row)), 1)] for row in ids)
        labels.extend(batch_labels.numpy().tolist())
    return *concatenated(rows), np.asarray(labels, np.uint8)


def pack_imdb(data_dir, out):
    """`imdb.npz` and `recipe.json`: the vocabulary, word vectors and ids of `make train`'s recipe."""
    settings = resolve_settings({"dataset": "imdb", "data_dir": data_dir, "recipe": "fast"}, stamp="gpu-bundle")
    splits = load_dataset("imdb", data_dir=data_dir, seed=settings.seed, valid_fraction=settings.valid_fraction)
    vectorizer = adapt_vectorizer(build_vectorizer(settings.vocab_size), splits.train.map(lambda text, label: text))
    vocabulary = vectorizer.get_vocabulary()
    if len(vocabulary) > np.iinfo(np.uint16).max:
        raise SystemExit(f"a vocabulary of {len(vocabulary):,} does not fit uint16 ids")
    matrix, found = load_embedding_matrix(word_vectors_for(settings, splits.train), vocabulary,
                                          settings.embedding_dim, settings.seed)
    arrays = {"embedding": matrix.astype(np.float16)}
    for name in ("train", "valid", "test"):
        ids, offsets, labels = encoded_split(vectorizer, getattr(splits, name), settings.max_length)
        arrays.update({f"{name}_ids": ids, f"{name}_offsets": offsets, f"{name}_labels": labels})
        print(f"{name}: {len(labels):,} reviews, {len(ids):,} tokens", flush=True)
    np.savez_compressed(out / "imdb.npz", **arrays)
    recipe = {name: settings.values[name] for name in MODEL_SETTINGS}
    recipe.update(vocab_size=len(vocabulary), embeddings_found=found, keras_version=keras.__version__,
                  bucket_boundaries=default_bucket_boundaries(settings.max_length))
    (out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")


def download_wheels(out):
    """Keras and its dependencies as binary wheels per CPython: this environment's Keras where that
    Python can run it, else the newest Keras that Python can."""
    for python in PYTHONS:
        for keras_wheel in (f"keras=={keras.__version__}", "keras"):
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                                   "--python-version", python, "--platform", "manylinux2014_x86_64",
                                   "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64",
                                   "--dest", str(out / "wheels"), keras_wheel, *KERAS_DEPENDENCIES],
                                  capture_output=True, text=True)
            if done.returncode == 0:
                break
        else:
            raise SystemExit(f"no Keras wheels for CPython {python}: {done.stderr.strip().splitlines()[-1]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"),
                        help="where aclImdb_v1.tar.gz (or aclImdb/) is")
    parser.add_argument("--out", default=str(ROOT / "gpu_bundle"), help="the bundle folder (git-ignored)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pack_imdb(args.data_dir, out)
    download_wheels(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
