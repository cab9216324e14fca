"""A labelled training file too big to hold: one checking pass, then rows streamed from disk. No TensorFlow:
`keras_sentiment.run.sources` makes the datasets.

Contract:
- A training file larger than `stream_above_bytes()` (`$KERAS_SENTIMENT_STREAM_ABOVE_MB`, else
  `STREAM_ABOVE_BYTES`) is streamed; smaller ones are read into memory (`keras_sentiment.run.labelled`),
  and IMDB and SST-2 always are.
- `scan_labelled_file` reads the file once, with the readers and the one-line errors of
  `read_labelled_file`, and keeps only what is bounded by the number of rows or smaller: the label
  counts per split, a 64-bit hash of each row's standardized text (for texts shared between
  splits) and seeded uniform samples of `SAMPLE_TEXTS` training and `SAMPLE_TEXTS // 5` valid texts.
- Splits not given are cut by row, not by class: a row goes to test or valid by a hash of its line
  number and the seed (each `TEST_FRACTION` / `VALID_FRACTION`), so every class keeps about its
  share in each split and a row's split never depends on the rows before it.
- `streamed_rows` yields one split's `(text, class id)` rows from the file again, in file order; the
  file must not change between the scan and training.
- The vocabulary and the word vectors are learned from the training sample (`StreamedFile.samples`),
  as are the bag of n-grams (`--ngrams`) and its stack (the valid sample).
"""

import hashlib
import os
import random
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_sentiment.core.errors import KerasSentimentError, MalformedDataError
from keras_sentiment.run.labelled import (MAX_CLASSES, TEST_FRACTION, VALID_FRACTION, check_class_counts, labelled_rows,
                                          order_classes, standardized)

STREAM_ABOVE_BYTES = 256 * 2**20  # a training file above this is streamed from disk, not read into memory
STREAM_ABOVE_MB_VARIABLE = "KERAS_SENTIMENT_STREAM_ABOVE_MB"  # the environment's word on it, in MiB
SAMPLE_TEXTS = 100_000  # streamed: the training texts the vocabulary, word vectors and n-grams learn from


def stream_above_bytes():
    """The size above which a training file streams: `$KERAS_SENTIMENT_STREAM_ABOVE_MB` (MiB, e.g. 64 on a
    small machine, 0 to stream every file), else `STREAM_ABOVE_BYTES`."""
    given = os.environ.get(STREAM_ABOVE_MB_VARIABLE)
    if given is None:
        return STREAM_ABOVE_BYTES
    try:
        megabytes = float(given)
    except ValueError:
        megabytes = -1.0
    if not 0 <= megabytes < float("inf"):
        raise KerasSentimentError(f"${STREAM_ABOVE_MB_VARIABLE}={given!r}: give a size in MiB, e.g. 64 (0 streams every file)")
    return int(megabytes * 2**20)


def should_stream(where):
    """Whether a training split (`("file" | "dir", path)`) is a file large enough to stream."""
    kind, path = where
    return kind == "file" and Path(path).is_file() and Path(path).stat().st_size > stream_above_bytes()


@dataclass
class StreamedFile:
    """What `scan_labelled_file` learned of a training file, and how its rows are split.

    Args:
        path: the file.
        text_column, label_column: its columns (JSONL: fields).
        cut: the splits cut from it, in the order their hash ranges are laid out (`"test"`, `"valid"`).
        seed: seeds the cut and the samples.
        shares: split -> the share of the file's rows cut for it (`SHARE_OF` unless asked otherwise).
        class_names: the classes in order.
        counts: split -> label -> rows (the splits cut from this file and `"train"`).
        samples: `"train"` and `"valid"` (when cut here) -> `(texts, labels)`, seeded uniform samples.
        hashes: split -> uint64 array of each row's standardized-text hash.
        left_out: label -> rows `--class-names` left out.
    """

    path: str
    text_column: str
    label_column: str
    cut: tuple
    seed: int
    shares: dict = field(default_factory=lambda: dict(SHARE_OF))
    class_names: tuple = ()
    counts: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)
    hashes: dict = field(default_factory=dict)
    left_out: dict = field(default_factory=dict)

    def split_of(self, line):
        """The split of the row on `line`: `cut[i]` when the line's hash falls in its range, else "train"."""
        share, upper = line_share(line, self.seed), 0.0
        for split in self.cut:  # the ranges laid end to end: [0, test), [test, test + valid)
            upper += self.shares[split]
            if share < upper:
                return split
        return "train"

    def origin(self, split):
        """Where a split cut from this file came from, in words (`config.json`'s `split_origins`)."""
        return f"a hashed {self.shares[split]:.0%} of {self.path}'s rows (seed {self.seed}), streamed"

    def size(self, split):
        return sum(self.counts[split].values())


SHARE_OF = {"test": TEST_FRACTION, "valid": VALID_FRACTION}


def line_share(line, seed):
    """A number in [0, 1) fixed by a line number and the seed, uniform over lines (splitmix64)."""
    x = (line * 0x9E3779B97F4A7C15 + seed * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) / 2.0**64


def text_hash(text):
    """A 64-bit hash of a text as the model sees it (`standardized`): equal texts, equal hashes."""
    return int.from_bytes(hashlib.blake2b(standardized(text).encode("utf-8"), digest_size=8).digest(), "little")


class Reservoir:
    """A seeded uniform sample of at most `size` items of a stream (Algorithm R)."""

    def __init__(self, size, seed):
        self.size, self.seen, self.items, self.rng = size, 0, [], random.Random(seed)

    def offer(self, item):
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            slot = self.rng.randrange(self.seen)
            if slot < self.size:
                self.items[slot] = item


def scan_labelled_file(path, text_column="text", label_column="label", class_names=None, cut=("test", "valid"),
                       seed=1234, progress=None, valid_fraction=VALID_FRACTION):
    """One pass over a training file: checked as `read_labelled_file` checks, its rows counted by split and
    label, hashed and sampled (see the module docstring). Returns a `StreamedFile`.

    Args:
        cut: the splits to cut from this file (those not given as their own files).
        class_names: the classes to keep, in order (`--class-names`), or None.
        progress: called with the bytes read so far every 10,000 rows (a progress bar), or None.
        valid_fraction: the share of the rows cut for valid (test's is `TEST_FRACTION`).
    """
    scanned = StreamedFile(str(path), text_column, label_column, tuple(cut), seed, {**SHARE_OF, "valid": valid_fraction})
    wanted = set(class_names) if class_names is not None else None
    counts = {split: Counter() for split in ("train", *cut)}
    hashes = {split: array("Q") for split in counts}
    samples = {"train": Reservoir(SAMPLE_TEXTS, seed), "valid": Reservoir(SAMPLE_TEXTS // 5, seed + 1)}
    left_out, empty, labels = Counter(), [], set()
    for number, (line, text, label, offset) in enumerate(labelled_rows(path, text_column, label_column)):
        if progress is not None and number % 10_000 == 0:
            progress(offset)
        if wanted is not None and label not in wanted:
            left_out[label] += 1
            continue
        if not text.strip():
            empty.append(line)
            continue
        if label not in labels:
            labels.add(label)
            if len(labels) > MAX_CLASSES:  # free text in the label column: say so now, not after a gigabyte
                order_classes(labels, class_names, label_column)
        split = scanned.split_of(line)
        counts[split][label] += 1
        hashes[split].append(text_hash(text))
        if split in samples:
            samples[split].offer((text, label))
    if empty:
        raise MalformedDataError(path, empty[0], f"empty text ({len(empty)} row(s) in all): remove them or fill them in")
    if not counts["train"]:
        raise MalformedDataError(path, 1, "no labelled rows")
    scanned.class_names = order_classes(labels, class_names, label_column)
    check_class_counts(path, Counter({label: sum(c[label] for c in counts.values()) for label in labels}),
                       scanned.class_names)
    index = {name: i for i, name in enumerate(scanned.class_names)}
    scanned.counts = {split: {name: c.get(name, 0) for name in scanned.class_names} for split, c in counts.items()}
    scanned.hashes = {split: np.frombuffer(h, dtype=np.uint64) if len(h) else np.zeros([0], np.uint64)
                      for split, h in hashes.items()}
    scanned.samples = {split: ([t for t, _ in sample.items], [index[label] for _, label in sample.items])
                       for split, sample in samples.items() if split == "train" or split in cut}
    scanned.left_out = dict(left_out)
    return scanned


def streamed_rows(scanned, split):
    """The `(text, class id)` rows of `split` of a scanned file, read from it again in file order."""
    index = {name: i for i, name in enumerate(scanned.class_names)}
    for line, text, label, _ in labelled_rows(scanned.path, scanned.text_column, scanned.label_column):
        if label in index and text.strip() and scanned.split_of(line) == split:
            yield text, index[label]


def in_chunks(rows, size):
    """`(text, class id)` rows as `(texts, class ids)` lists of up to `size` rows each (fewer calls across
    to TensorFlow than one per row)."""
    texts, labels = [], []
    for text, label in rows:
        texts.append(text)
        labels.append(label)
        if len(texts) == size:
            yield texts, labels
            texts, labels = [], []
    if texts:
        yield texts, labels


def hashes_also_in(hashes, reference):
    """How many of `hashes` (uint64 array) occur in `reference` too."""
    return int(np.isin(hashes, reference).sum())
