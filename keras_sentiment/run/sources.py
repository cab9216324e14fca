"""Datasets: IMDB, SST-2 and a user's own files as `tf.data` pipelines of `(text: tf.string, label: tf.int32)`.

`load_imdb`, `load_sst2` and `load_own_data` return raw-text splits (`keras_sentiment.run.batching`
turns a split into batches of token ids); a label is a class id, `Splits.class_names` names them.

Where the data comes from (`source="auto"` tries these in order):

* local files in the data dir: `aclImdb/` or `aclImdb_v1.tar.gz` (extracted once into a cache),
  GLUE's `SST-2/train.tsv` and `SST-2/dev.tsv`;
* a TFDS copy that is already prepared (`imdb_reviews`, `glue/sst2`);
* a download: the Stanford archive for IMDB (`keras.utils.get_file`), TFDS for SST-2.

The data dir is `data_dir`, else `$KERAS_SENTIMENT_DATA`, else `~/.keras/datasets`.
"""

import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_sentiment.core.errors import DataNotFoundError, KerasSentimentError, MalformedDataError
from keras_sentiment.run.labelled import (TEST_FRACTION, VALID_FRACTION, check_no_new_labels, labelled_splits,
                                          model_class_ids, own_data, parse_class_names, read_labelled_file,
                                          read_labelled_folder)
from keras_sentiment.run.locks import exclusive_lock
from keras_sentiment.run.rundir import SENTIMENT_CLASSES
from keras_sentiment.run.streamed import (hashes_also_in, in_chunks, scan_labelled_file, should_stream, streamed_rows,
                                          text_hash)

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_ARCHIVE = "aclImdb_v1.tar.gz"
IMDB_VALID_FRACTION = 0.3
IMDB_CLASSES = {"neg": "negative", "pos": "positive"}  # the folders as SENTIMENT_CLASSES
# SST-2's valid split holds out whole sentences: this fraction of the root sentences of train.tsv.
SST2_VALID_FRACTION = 0.1
SST2_CLASSES = {"0": "negative", "1": "positive"}  # GLUE's labels as SENTIMENT_CLASSES
SOURCES = ("auto", "local", "tfds", "download")
AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Splits:
    """Train/valid/test datasets of `(text, label)`; unpacks as `train, valid, test`.

    `class_names[i]` names label i; `facts` holds what the run records about the data (own data:
    class counts, where each split came from, texts shared with train). `streamed`: the splits are
    read from disk on each pass (a big training file, `keras_sentiment.run.streamed`), and `samples`
    holds bounded uniform samples of train and valid for what must hold its data in memory.
    """

    train: tf.data.Dataset
    valid: tf.data.Dataset
    test: tf.data.Dataset
    sizes: dict = field(default_factory=dict)
    source: str = ""
    class_names: tuple = SENTIMENT_CLASSES
    facts: dict = field(default_factory=dict)
    streamed: bool = False
    samples: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.train, self.valid, self.test))

    def bounded(self, split):
        """`split`'s examples where they must fit in memory (the vocabulary, word vectors, n-grams): the
        split itself, or of a streamed file its sample."""
        return self.samples.get(split, getattr(self, split))


def resolve_data_dir(data_dir=None):
    """`data_dir`, else `$KERAS_SENTIMENT_DATA`, else `~/.keras/datasets`."""
    data_dir = data_dir or os.environ.get("KERAS_SENTIMENT_DATA") or "~/.keras/datasets"
    return Path(data_dir).expanduser()


def default_cache_dir():
    """Where archives are extracted: `$KERAS_SENTIMENT_CACHE` or `~/.cache/keras_sentiment`."""
    return Path(os.environ.get("KERAS_SENTIMENT_CACHE", "~/.cache/keras_sentiment")).expanduser()


def fixed_shuffle(dataset, size, seed):
    """One seeded order of all `size` examples, the same on every iteration and in every process.

    reshuffle_each_iteration=False: datasets derived with `take` and `skip` each re-run the
    shuffle and must see the same order, so the parts never overlap. TensorFlow mixes its global
    seed into the op's, so this sets the global seed to `seed` first, as `train` does before
    loading: `evaluate --split valid` and the benchmarks, which set no seed, once drew a different
    valid split (much of it training data) than the run they evaluated.
    """
    tf.random.set_seed(seed)
    return dataset.shuffle(size, seed=seed, reshuffle_each_iteration=False)


def split_train_valid(dataset, size, valid_fraction, seed):
    """A seeded, fixed split: the same `seed` always puts the same examples in `valid`."""
    num_valid = int(round(size * valid_fraction))
    shuffled = fixed_shuffle(dataset, size, seed)
    return shuffled.skip(num_valid), shuffled.take(num_valid), size - num_valid, num_valid


def subsample(splits, max_train=None, max_eval=None, seed=0):
    """Seeded random subsets of the splits (for quick runs); `sizes` follows.

    IMDB's reviews are sorted by class (all negative ones first), so a plain `take` would not do.
    """

    def sample(dataset, size, limit):
        if not limit or limit >= size:
            return dataset, size
        return fixed_shuffle(dataset, size, seed).take(limit), limit

    train, n_train = sample(splits.train, splits.sizes["train"], max_train)
    valid, n_valid = sample(splits.valid, splits.sizes["valid"], max_eval)
    test, n_test = sample(splits.test, splits.sizes["test"], max_eval)
    return replace(splits, train=train, valid=valid, test=test, sizes={"train": n_train, "valid": n_valid, "test": n_test})


# ---------------------------------------------------------------------------------- IMDB


def load_imdb(data_dir=None, source="auto", seed=1234, cache_dir=None, valid_fraction=IMDB_VALID_FRACTION):
    """IMDB reviews: train 17,500 / valid 7,500 (a seeded 30% of train, or `valid_fraction`) / test 25,000.

    Args:
        data_dir: folder holding `aclImdb/` or `aclImdb_v1.tar.gz` (see module docstring).
        source: one of "auto", "local", "tfds", "download".
        seed: seeds the train/valid split.
        cache_dir: where a `.tar.gz` is extracted once (default `default_cache_dir()`).
        valid_fraction: the share of the 25,000 training reviews held out as valid.

    Example:
    >>> train, valid, test = load_imdb("../shared/data")  # doctest: +SKIP
    >>> text, label = next(iter(train))  # doctest: +SKIP
    """
    _check_source(source)
    data_dir = resolve_data_dir(data_dir)
    searched = []
    if source in ("auto", "local"):
        root = _find_local_imdb(data_dir, cache_dir, searched)
        if root is not None:
            return _imdb_from_directory(root, seed, valid_fraction)
    if source in ("auto", "tfds"):
        splits = _imdb_from_tfds(seed, valid_fraction, download=source == "tfds", searched=searched)
        if splits is not None:
            return splits
    if source in ("auto", "download"):
        archive = _download_imdb(data_dir, searched)
        if archive is not None:
            return _imdb_from_directory(_extract_imdb(archive, cache_dir), seed, valid_fraction)
    raise DataNotFoundError(
        f"IMDB reviews not found (looked in: {'; '.join(searched)}): put the official {IMDB_ARCHIVE} or its "
        "extracted aclImdb/ folder in the data dir and pass --data-dir (or set KERAS_SENTIMENT_DATA), or go online "
        f"and use --data-source download (fetches {IMDB_URL}) or --data-source tfds"
    )


def _check_source(source):
    if source not in SOURCES:
        raise KerasSentimentError(f"unknown data source {source!r}; choose one of {SOURCES}")


def _find_local_imdb(data_dir, cache_dir, searched):
    folder, archive = data_dir / "aclImdb", data_dir / IMDB_ARCHIVE
    searched += [str(folder), str(archive)]
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        check_reviews_once(folder, cache_dir)
        return folder
    if archive.is_file():
        return _extract_imdb(archive, cache_dir)
    return None


def hash_file_into(digest, path, chunk_bytes=1 << 20):
    """Feed a file's bytes to a hashlib `digest`, in chunks (files of any size); returns `digest`."""
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest


def file_sha256(path):
    """The hex SHA-256 of a file's bytes."""
    return hash_file_into(hashlib.sha256(), path).hexdigest()


def _extract_imdb(archive, cache_dir=None):
    """Extract the labelled reviews of `archive` once; later calls reuse the extraction."""
    cache_dir = Path(cache_dir or default_cache_dir())
    # Keyed by content, not mtime: a copied or re-mounted archive (new mtime, same bytes) is not
    # extracted again. Hashing takes ~0.1 s per 30 MB; extracting, about a minute.
    stamp = f"sha256:{file_sha256(archive)}"
    target = cache_dir / "aclImdb"
    if _extracted_from(target) == stamp:
        return target
    # Two runs started together would both extract and replace each other's folder mid-rename;
    # the second waits and then finds the first one's extraction.
    with exclusive_lock(cache_dir / ".aclImdb.lock", waiting=f"Another run is extracting {archive}; waiting for it"):
        if _extracted_from(target) != stamp:
            _extract_reviews_into(archive, target, stamp)
    return target


def _extracted_from(target):
    """The stamp of the archive `target` was extracted from, or None."""
    stamp_file = Path(target) / ".extracted_from"
    return stamp_file.read_text() if stamp_file.is_file() else None


def _extract_reviews_into(archive, target, stamp):
    """Extract `archive`'s labelled reviews, checked for UTF-8, into `target` with one rename."""
    cache_dir = target.parent
    print(f"Extracting {archive} into {target} (once) ...", flush=True)
    tmp = cache_dir / f".aclImdb.tmp{os.getpid()}"
    wanted = ("aclImdb/train/pos/", "aclImdb/train/neg/", "aclImdb/test/pos/", "aclImdb/test/neg/")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar if m.isfile() and m.name.startswith(wanted)]
            extract_kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **extract_kwargs)
    except (tarfile.TarError, OSError, EOFError) as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise KerasSentimentError(f"{archive}: not a readable .tar.gz archive ({error})") from None
    if not members:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MalformedDataError(archive, 0, "no aclImdb/{train,test}/{pos,neg}/*.txt reviews inside")
    try:
        check_reviews_are_utf8(tmp / "aclImdb", shown_as=f"{archive}:aclImdb")  # the files are in the page cache now: ~2 s
    except MalformedDataError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / "aclImdb" / ".extracted_from").write_text(stamp)
    shutil.rmtree(target, ignore_errors=True)
    # One rename: a crash mid-extraction never leaves a half-filled cache that looks complete.
    os.replace(tmp / "aclImdb", target)
    shutil.rmtree(tmp, ignore_errors=True)


def check_reviews_are_utf8(root, shown_as=None):
    """Raise `MalformedDataError` (`file:line`) for the first review file that is not valid UTF-8.

    TensorFlow's string ops pass invalid bytes through silently, so a mis-encoded review would
    train as garbage tokens instead of failing; this reads every review once (~1.6 s for the 50,000
    when they are in the page cache).
    """
    for split in ("train", "test"):
        for polarity in ("pos", "neg"):
            folder = Path(root) / split / polarity
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not entry.name.endswith(".txt"):
                        continue
                    with open(entry.path, "rb") as handle:
                        content = handle.read()
                    try:
                        content.decode("utf-8")
                    except UnicodeDecodeError as error:
                        line = content.count(b"\n", 0, error.start) + 1
                        name = f"{shown_as}/{split}/{polarity}/{entry.name}" if shown_as else entry.path
                        raise MalformedDataError(name, line, f"not valid UTF-8 ({error.reason} at byte {error.start})") from None


def check_reviews_once(root, cache_dir=None):
    """`check_reviews_are_utf8` for a user's `aclImdb/`, skipped while its folders are unchanged since the last check."""
    root = Path(root)
    folders = [root / split / polarity for split in ("train", "test") for polarity in ("pos", "neg")]
    stamp = "|".join(f"{f}:{f.stat().st_mtime_ns}" for f in folders if f.is_dir())
    marker = Path(cache_dir or default_cache_dir()) / "checked" / hashlib.sha256(stamp.encode()).hexdigest()
    if marker.is_file():
        return
    check_reviews_are_utf8(root)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(stamp)


def _count_reviews(root, split):
    counts = {}
    for polarity in ("pos", "neg"):
        folder = root / split / polarity
        if not folder.is_dir():
            raise DataNotFoundError(f"{folder}: missing; expected the aclImdb/ layout {split}/pos, {split}/neg")
        with os.scandir(folder) as entries:
            counts[polarity] = sum(1 for e in entries if e.name.endswith(".txt"))
    if counts["pos"] == 0 or counts["neg"] == 0:
        raise DataNotFoundError(f"{root / split}: no *.txt reviews in pos/ or neg/ ({counts})")
    return counts["pos"] + counts["neg"]


def _imdb_from_directory(root, seed, valid_fraction=IMDB_VALID_FRACTION):
    """The IMDB preset: `aclImdb/{train,test}` read as your own folders are (`read_labelled_folder`: neg/,
    then pos/, each sorted; `unsup/` left out), so the seeded 30% valid split is the one every IMDB figure
    was measured on."""
    root = Path(root)
    for split in ("train", "test"):
        _count_reviews(root, split)  # a clear error for a broken layout
    train, test = (read_labelled_folder(root / split, tuple(IMDB_CLASSES)).relabelled(IMDB_CLASSES)
                   for split in ("train", "test"))
    kept, held = seeded_split_indices(len(train), valid_fraction, seed)
    valid = train.subset(held, f"a seeded {valid_fraction:.0%} of {root / 'train'} (seed {seed})")
    return preset_splits({"train": train.subset(kept), "valid": valid, "test": test}, str(root))


def seeded_split_indices(size, fraction, seed):
    """`(kept, held_out)` indices of `size` examples: `fixed_shuffle`'s order, its first `fraction` held out."""
    order = list(fixed_shuffle(tf.data.Dataset.range(size), size, seed).as_numpy_iterator())
    num_held = int(round(size * fraction))
    return [int(i) for i in order[num_held:]], [int(i) for i in order[:num_held]]


def preset_splits(parts, source):
    """`Splits` of a preset's `LabelledTexts` (labels already SENTIMENT_CLASSES), with the facts your own data gets."""
    data = labelled_splits(parts, SENTIMENT_CLASSES, {split: part.origin for split, part in parts.items()})
    return Splits(*(texts_and_labels(*data.splits[split]) for split in ("train", "valid", "test")),
                  sizes={split: len(part) for split, part in parts.items()}, source=source,
                  class_names=data.class_names, facts=data.facts)


def _imdb_from_tfds(seed, valid_fraction, download, searched):
    def as_text_label(text, label):
        return text, tf.cast(label, tf.int32)

    loaded = _tfds_load("imdb_reviews", ["train", "test"], download, searched, supervised=True)
    if loaded is None:
        return None
    (train, test), info = loaded
    num_train, num_test = _num_examples(info, "train", train), _num_examples(info, "test", test)
    train, valid, n_train, n_valid = split_train_valid(train.map(as_text_label), num_train, valid_fraction, seed)
    return Splits(
        train,
        valid,
        test.map(as_text_label),
        sizes={"train": n_train, "valid": n_valid, "test": num_test},
        source="tfds:imdb_reviews",
    )


def _tfds_load(name, splits, download, searched, supervised):
    """`tfds.load`, or None when the dataset is not prepared and may not be downloaded."""
    import tensorflow_datasets as tfds

    searched.append(f"TFDS {name} in {os.environ.get('TFDS_DATA_DIR', '~/tensorflow_datasets')}")
    try:
        if not download and not tfds.builder(name).is_prepared():
            return None
        return tfds.load(name, split=splits, as_supervised=supervised, with_info=True, download=download, shuffle_files=False)
    except Exception as error:  # TFDS raises many types offline; report them, don't crash
        if not download:
            return None
        raise DataNotFoundError(f"TFDS could not load {name}: {error}") from None


def _num_examples(info, split, dataset):
    """The split size from TFDS metadata, else from the dataset itself (e.g. mocked data)."""
    try:
        return info.splits[split].num_examples
    except KeyError:
        size = int(dataset.cardinality())
        return size if size >= 0 else int(dataset.reduce(0, lambda count, _: count + 1))


def _download_imdb(data_dir, searched):
    """Fetch the Stanford archive into the data dir (or `~/.keras/datasets` if read-only)."""

    searched.append(f"download {IMDB_URL}")
    target = data_dir if _writable(data_dir) else Path("~/.keras/datasets").expanduser()
    try:
        return Path(keras.utils.get_file(IMDB_ARCHIVE, IMDB_URL, cache_dir=str(target), cache_subdir=""))
    except Exception as error:  # get_file wraps network failures in a bare Exception
        searched[-1] += f" (failed: {error})"
        return None


def _writable(folder):
    """Whether `folder` can be created or written to."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)


# ---------------------------------------------------------------------------------- SST-2


def load_sst2(data_dir=None, source="auto", seed=1234, valid_fraction=SST2_VALID_FRACTION):
    """SST-2: train / valid (held-out whole sentences, for early stopping) / test (GLUE dev, 872).

    GLUE's test split has no labels, so `dev.tsv` is the split reported as `test`. GLUE's
    train.tsv holds phrases cut from about 6,900 sentences, while dev holds whole unseen
    sentences; valid is made the same way (see `split_sst2_by_sentence`), so that it predicts dev.

    Args:
        data_dir: folder holding `SST-2/train.tsv` and `SST-2/dev.tsv` (GLUE format).
        source: one of "auto", "local", "tfds", "download" (the last two both use TFDS).
        seed: seeds the train/valid split.
        valid_fraction: the share of train.tsv's sentences held out as valid.
    """
    _check_source(source)
    data_dir = resolve_data_dir(data_dir)
    searched = []
    if source in ("auto", "local"):
        folder = data_dir / "SST-2"
        searched.append(str(folder / "{train,dev}.tsv"))
        if (folder / "train.tsv").is_file() and (folder / "dev.tsv").is_file():
            return _sst2_from_tsv(folder, seed, valid_fraction)
    if source != "local":
        loaded = _tfds_load("glue/sst2", ["train", "validation"], source != "auto", searched, supervised=False)
        if loaded is not None:
            return _sst2_from_tfds(loaded, seed, valid_fraction)
    raise DataNotFoundError(
        f"SST-2 not found (looked in: {'; '.join(searched)}): put GLUE's SST-2/train.tsv and SST-2/dev.tsv in the data "
        "dir and pass --data-dir (or set KERAS_SENTIMENT_DATA), or go online and use --data-source tfds (glue/sst2)"
    )


def validate_glue_tsv(path):
    """Check header and every row of a GLUE TSV; return the number of rows."""
    rows = number = 0
    with open(path, encoding="utf-8-sig", newline="") as lines:
        try:
            for number, line in enumerate(lines, start=1):
                fields = line.rstrip("\r\n").split("\t")
                if number == 1:
                    if fields[:2] != ["sentence", "label"] or len(fields) != 2:
                        raise MalformedDataError(path, 1, f"expected the header 'sentence<TAB>label', got {line.rstrip()!r}")
                    continue
                if len(fields) != 2:
                    raise MalformedDataError(path, number, f"expected 2 tab-separated fields (sentence, label), got {len(fields)}")
                if fields[1] not in ("0", "1"):
                    raise MalformedDataError(path, number, f"label must be 0 or 1, got {fields[1]!r}")
                rows += 1
        except UnicodeDecodeError as error:
            raise MalformedDataError(path, number + 1, f"not valid UTF-8 ({error.reason})") from None
    if number == 0:
        raise MalformedDataError(path, 1, "empty file; expected the header 'sentence<TAB>label', then one row per sentence")
    if rows == 0:
        raise MalformedDataError(path, 1, "no rows after the header")
    return rows


def read_glue_rows(path):
    """The `(sentence, label)` rows of a GLUE TSV as `LabelledTexts` (labels SENTIMENT_CLASSES), read as your own
    TSV files are (`read_labelled_file`) once `validate_glue_tsv` has checked the GLUE format."""
    validate_glue_tsv(path)
    return read_labelled_file(path, text_column="sentence").relabelled(SST2_CLASSES)


def root_sentence_of_each_phrase(phrases):
    """For each phrase, the index of the longest phrase that contains it as a run of whole tokens.

    SST's phrases are the nodes of parse trees, so a phrase is a token span of its sentence.
    Longest first, each phrase not yet claimed becomes a root and claims every phrase that is
    one of its spans. A phrase that occurs in several sentences goes to the longest one.
    """
    tokens = [phrase.split() for phrase in phrases]
    where = {}
    for index, words in enumerate(tokens):
        where.setdefault(" ".join(words), []).append(index)
    root = [-1] * len(phrases)
    for index in sorted(range(len(phrases)), key=lambda i: -len(tokens[i])):
        if root[index] != -1:
            continue
        words = tokens[index]
        root[index] = index
        for start in range(len(words)):
            for end in range(start + 1, len(words) + 1):
                for claimed in where.get(" ".join(words[start:end]), ()):
                    if root[claimed] == -1:
                        root[claimed] = index
    return root


def split_sst2_by_sentence(phrases, valid_fraction, seed):
    """Hold out a seeded `valid_fraction` of the root sentences, as dev holds unseen sentences.

    Valid is those root sentences alone (whole sentences, as in dev); their phrases are left out
    of train too, so no part of a valid sentence is trained on. A random split of phrases would
    put most of a valid sentence's tree in train: such a split scored 92% while dev scored 78-83%.
    Returns `(train, valid)` indices into `phrases`.
    """
    root = root_sentence_of_each_phrase(phrases)
    roots = sorted(set(root))
    num_valid = max(int(round(len(roots) * valid_fraction)), 1) if len(roots) > 1 else 0  # train keeps a sentence
    held_out = set(np.random.default_rng(seed).permutation(roots)[:num_valid].tolist())
    return [i for i, r in enumerate(root) if r not in held_out], sorted(held_out)


def whole_text_indices(dataset_name, texts):
    """Indices of the texts that are not a part of another: SST-2's sentences (its other training
    phrases are cut from them), every IMDB review."""
    if dataset_name == "sst2":
        return [i for i, root in enumerate(root_sentence_of_each_phrase(texts)) if root == i]
    return list(range(len(texts)))


def _sst2_from_tsv(folder, seed, valid_fraction=SST2_VALID_FRACTION):
    """The SST-2 preset: GLUE's train.tsv and dev.tsv read as your own TSV files are, valid held out by sentence."""
    train, test = read_glue_rows(folder / "train.tsv"), read_glue_rows(folder / "dev.tsv")
    kept, held = split_sst2_by_sentence(train.texts, valid_fraction, seed)
    valid = train.subset(held, f"a seeded {valid_fraction:.0%} of {folder / 'train.tsv'}'s sentences (seed {seed})")
    return preset_splits({"train": train.subset(kept), "valid": valid, "test": test}, str(folder))


def _sst2_from_tfds(loaded, seed, valid_fraction=SST2_VALID_FRACTION):
    (train, dev), info = loaded

    def as_text_label(example):
        return example["sentence"], tf.cast(example["label"], tf.int32)

    num_test = _num_examples(info, "validation", dev)
    rows = list(train.map(as_text_label).as_numpy_iterator())
    phrases, labels = [text.decode("utf-8") for text, _ in rows], [int(label) for _, label in rows]
    kept, held = split_sst2_by_sentence(phrases, valid_fraction, seed)
    train, valid = (texts_and_labels([phrases[i] for i in part], [labels[i] for i in part]) for part in (kept, held))
    return Splits(
        train, valid, dev.map(as_text_label), sizes={"train": len(kept), "valid": len(held), "test": num_test},
        source="tfds:glue/sst2"
    )


# ------------------------------------------------------------------------------ own data


@dataclass(frozen=True)
class OwnDataSource:
    """Where a user's labelled data is: a file or a folder per split (valid and test may be None).

    Args:
        train, valid, test: `(kind, path)` with kind "file" or "dir", or None.
        text_column, label_column: the columns (JSONL: fields) of a file.
        class_names: "a,b,c" (`--class-names`: picks and orders the classes), or None.
    """

    train: tuple
    valid: tuple = None
    test: tuple = None
    text_column: str = "text"
    label_column: str = "label"
    class_names: str = None


def load_own_data(source, seed=1234, valid_fraction=VALID_FRACTION):
    """A user's labelled files or folders as `Splits` (`keras_sentiment.run.labelled`: classes ordered and
    checked, the splits not given cut from train, stratified and seeded).

    Example:
    >>> splits = load_own_data(OwnDataSource(("file", "reviews.csv"), label_column="stars"))  # doctest: +SKIP
    >>> splits.class_names, splits.sizes  # doctest: +SKIP
    (('1', '2', '3', '4', '5'), {'train': 2400, 'valid': 300, 'test': 300})
    """
    class_names = parse_class_names(source.class_names)
    cut = (TEST_FRACTION if source.test is None else 0.0) + (valid_fraction if source.valid is None else 0.0)
    if cut >= 1.0:
        raise KerasSentimentError(f"--valid-fraction {valid_fraction:g}: with the {TEST_FRACTION:.0%} cut for test, "
                                  "nothing is left to train on; give a smaller share")

    def read(where):
        if where is None:
            return None
        kind, path = where
        if kind == "dir":
            return read_labelled_folder(path, class_names)
        return read_labelled_file(path, source.text_column, source.label_column, class_names)

    if should_stream(source.train):
        return streamed_own_data(source, class_names, read(source.valid), read(source.test), seed, valid_fraction)
    data = own_data(read(source.train), read(source.valid), read(source.test), class_names, seed, source.label_column,
                    valid_fraction)
    return Splits(*(texts_and_labels(*data.splits[split]) for split in ("train", "valid", "test")),
                  sizes={split: len(data.splits[split][0]) for split in ("train", "valid", "test")},
                  source=source.train[1], class_names=data.class_names, facts=data.facts)


def streamed_own_data(source, class_names, valid, test, seed, valid_fraction=VALID_FRACTION):
    """`Splits` of a training file too big to hold (`keras_sentiment.run.streamed`): scanned once with a
    progress bar, then streamed from disk; `valid` and `test` are given `LabelledTexts` or None (cut from it)."""
    path = source.train[1]
    cut = tuple(split for split, given in (("test", test), ("valid", valid)) if given is None)
    size = Path(path).stat().st_size
    print(f"Reading {path} ({size / 1e6:,.0f} MB) once to check, count and sample it; training streams it from "
          "disk", flush=True)
    bar = keras.utils.Progbar(size, interval=5.0, unit_name="byte")  # a line every 5 s in a log
    scanned = scan_labelled_file(path, source.text_column, source.label_column, class_names, cut, seed, bar.update,
                                 valid_fraction)
    bar.update(size, finalize=True)
    names, given = scanned.class_names, {"valid": valid, "test": test}
    index = {name: i for i, name in enumerate(names)}
    datasets, sizes, counts, origins, shared = {}, {}, {}, {"train": path}, {}
    for split in ("train", "valid", "test"):
        if split in scanned.counts:
            datasets[split] = streamed_dataset(scanned, split)
            sizes[split], counts[split] = scanned.size(split), scanned.counts[split]
            origins[split] = path if split == "train" else scanned.origin(split)
            hashes = scanned.hashes[split]
        else:
            check_no_new_labels(given[split], names, split)
            datasets[split] = texts_and_labels(given[split].texts, [index[label] for label in given[split].labels])
            sizes[split], origins[split] = len(given[split]), given[split].origin
            counts[split] = {name: given[split].labels.count(name) for name in names}
            hashes = np.array([text_hash(text) for text in given[split].texts], np.uint64)
        if split != "train":
            shared[split] = hashes_also_in(hashes, scanned.hashes["train"])
    left_out = {split: part for split, part in (("train", scanned.left_out), ("valid", valid and valid.left_out),
                                                ("test", test and test.left_out)) if part}
    facts = {"class_counts": counts, "split_origins": origins, "texts_also_in_train": shared, "left_out": left_out}
    samples = {split: texts_and_labels(*scanned.samples[split]) for split in scanned.samples}
    return Splits(datasets["train"], datasets["valid"], datasets["test"], sizes=sizes, source=path, class_names=names,
                  facts=facts, streamed=True, samples=samples)


def streamed_dataset(scanned, split):
    """A dataset of `split`'s `(text, class id)` rows, read from the scanned file on each pass."""
    # In chunks of 1,024 rows: one call from TensorFlow into Python per row cost ~5x the reading.
    chunks = tf.data.Dataset.from_generator(lambda: in_chunks(streamed_rows(scanned, split), 1024), output_signature=(
        tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32)))
    return chunks.unbatch().apply(tf.data.experimental.assert_cardinality(scanned.size(split)))


def labelled_dataset(where, class_names, text_column="text", label_column="label"):
    """`(dataset of (text, class id), size)` of one labelled file or folder (`("file" | "dir", path)`) whose
    labels must all be in `class_names` (a model's classes): for evaluating a trained model."""
    kind, path = where
    examples = (read_labelled_folder(path) if kind == "dir" else
                read_labelled_file(path, text_column, label_column))
    return texts_and_labels(examples.texts, model_class_ids(examples, class_names)), len(examples)


def texts_and_labels(texts, labels):
    """A dataset of `(text, class id)` from two lists."""
    return tf.data.Dataset.from_tensor_slices((tf.constant(texts, tf.string, shape=[len(texts)]),
                                               tf.constant(labels, tf.int32, shape=[len(labels)])))


LOADERS = {"imdb": load_imdb, "sst2": load_sst2}


def load_dataset(name, data_dir=None, source="auto", seed=1234, valid_fraction=None):
    """A preset's `Splits` (`LOADERS`); `valid_fraction` None keeps the preset's own valid share."""
    if name not in LOADERS:
        raise KerasSentimentError(f"unknown dataset {name!r}; choose one of {sorted(LOADERS)}")
    fraction = {} if valid_fraction is None else {"valid_fraction": valid_fraction}
    return LOADERS[name](data_dir=data_dir, source=source, seed=seed, **fraction)
