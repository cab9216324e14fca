"""A user's labelled text: files (CSV, TSV, JSONL) and folders (one sub-folder per class), read,
ordered into classes, split and checked. No TensorFlow: `keras_sentiment.run.sources` makes the
datasets.

Contract:
- A file is read by `keras_sentiment.run.readers.InputReader`, with the header, quoting, BOM and
  encoding rules of `score`; `text_column` and `label_column` name the text and the label (a JSONL
  record's fields). A folder holds one sub-folder per class and one `.txt` file per example, the
  layout `keras.utils.text_dataset_from_directory` reads (`aclImdb/train/{neg,pos}` is one).
- Classes are ordered as `class_names` gives them, which also picks: other labels and sub-folders
  are left out and counted. Without it, labels that are all numbers are ordered numerically (stars:
  "1" < "2" < "10"), other labels as sorted strings.
- Splits not given are cut from train, stratified by class and seeded (`stratified_split`).
- A mistake in the data is one `KerasSentimentError` line naming the file and, for a file, the line:
  an empty or missing label, an empty text, bytes that are not UTF-8, one class only, a class with
  fewer than `MIN_EXAMPLES_PER_CLASS` examples, more than `MAX_CLASSES` distinct labels (free text in
  the label column?), labels in valid or test that train never had. Nothing is written before the
  data has been read and checked.
"""

import functools
import os
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_sentiment.core.errors import KerasSentimentError, MalformedDataError
from keras_sentiment.run.readers import INPUT_FORMATS, BadRow, InputReader, ScoreOptions, detect_format

MAX_CLASSES = 100
MIN_EXAMPLES_PER_CLASS = 10  # in the training data: enough for a stratified valid and test share
VALID_FRACTION = 0.1  # of train, when no valid split is given
TEST_FRACTION = 0.1  # of train, when no test split is given
LABELLED_FORMATS = {suffix: kind for suffix, kind in INPUT_FORMATS.items() if kind != "txt"}
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


@dataclass
class LabelledTexts:
    """Texts and their label names, read from one file or folder.

    Args:
        texts: the texts (str).
        labels: each text's label as written (a number's digits for numbers).
        origin: where they came from (the file or folder).
        places: each text's `file:line` (a file) or file path (a folder), for messages.
        left_out: label -> how many examples `class_names` left out.
    """

    texts: list
    labels: list
    origin: str
    places: list
    left_out: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.texts)

    def subset(self, indices, origin=None):
        """The examples at `indices` (in that order), as `LabelledTexts` from `origin`."""
        return LabelledTexts([self.texts[i] for i in indices], [self.labels[i] for i in indices],
                             origin or self.origin, [self.places[i] for i in indices])

    def relabelled(self, names):
        """These examples with each label `l` named `names[l]` (a preset's data names as its class names)."""
        return LabelledTexts(self.texts, [names[label] for label in self.labels], self.origin, self.places, self.left_out)


def read_labelled_file(path, text_column="text", label_column="label", class_names=None):
    """The labelled rows of a CSV, TSV or JSONL file (format from its extension).

    Example:
    >>> rows = read_labelled_file("reviews.csv", label_column="stars")  # doctest: +SKIP
    >>> rows.texts[0], rows.labels[0]  # doctest: +SKIP
    ('Arrived broken.', '1')
    """
    path = Path(path)
    if not path.is_file():
        raise KerasSentimentError(f"{path}: no such file")
    texts, labels, places, empty = [], [], [], []
    for line, text, label, _ in labelled_rows(path, text_column, label_column):
        if not text.strip():
            empty.append(line)
        texts.append(text)
        labels.append(label)
        places.append(f"{path}:{line}")
    if empty:
        raise MalformedDataError(path, empty[0], f"empty text ({len(empty)} row(s) in all): remove them or fill them in")
    if not texts:
        raise MalformedDataError(path, 1, "no labelled rows")
    return pick_classes(LabelledTexts(texts, labels, str(path), places), class_names)


def labelled_rows(path, text_column, label_column):
    """`(line, text, label name, bytes read)` of every row of a labelled file, with one-line errors for a bad
    row or an empty label; an empty text is yielded (the caller counts them)."""
    path = Path(path)
    kind = detect_format(path, LABELLED_FORMATS, "input")
    options = ScoreOptions(kind, "jsonl", text_column=text_column, id_column=label_column, text_field=text_column,
                           id_field=label_column)
    flags = {"id_column": "--label-column", "id_field": "--label-column", "text_field": "--text-column"}
    try:
        reader = InputReader(path, options, flags=flags)
    except OSError as error:
        raise KerasSentimentError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        for row in reader:
            if isinstance(row, BadRow):
                raise MalformedDataError(path, row.line, row.reason)
            label = label_name(row.id)
            if label is None:
                raise MalformedDataError(path, row.line, f"empty or missing label (--label-column '{label_column}')")
            yield row.line, row.text, label, reader.offset
    finally:
        reader.close()


def label_name(value):
    """A label as a class name: text stripped, an integer's digits (JSONL's `5` and `5.0` are "5");
    None for a missing or empty label."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    name = str(value).strip()
    return name or None


def read_labelled_folder(root, class_names=None):
    """The `.txt` files of `root`'s sub-folders, each sub-folder a class (its name the label).

    Files are read in sorted order; sub-folders of a class folder are read too, as
    `keras.utils.text_dataset_from_directory` does. `class_names` picks the sub-folders and the order
    they are read in (else sorted).
    """
    root = Path(root)
    if not root.is_dir():
        raise KerasSentimentError(f"{root}: no such folder")
    try:
        folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    except OSError as error:
        raise KerasSentimentError(f"{root}: cannot read ({error.strerror or error})") from None
    if not folders:
        raise KerasSentimentError(f"{root}: no sub-folders; expected one sub-folder per class, each holding .txt files")
    missing = [name for name in class_names or () if name not in folders]
    if missing:
        raise KerasSentimentError(f"{root}: no sub-folder for class(es) {', '.join(missing)} (--class-names); "
                                  f"sub-folders: {', '.join(folders)}")
    texts, labels, places = [], [], []
    left_out = {name: len(text_files(root / name)) for name in folders if name not in (class_names or folders)}
    for name in class_names or folders:
        files = text_files(root / name)
        if not files:
            raise KerasSentimentError(f"{root / name}: no .txt files (one file per example)")
        for file in files:
            texts.append(read_text_file(file))
            labels.append(name)
            places.append(str(file))
    empty = [place for place, text in zip(places, texts) if not text.strip()]
    if empty:
        raise KerasSentimentError(f"{empty[0]}: empty text ({len(empty)} file(s) in all): remove them or fill them in")
    return LabelledTexts(texts, labels, str(root), places, left_out)


def text_files(folder):
    """The `.txt` files under `folder`, sorted, hidden ones left out."""
    try:
        return sorted(path for path in Path(folder).rglob("*.txt")
                      if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts))
    except OSError as error:
        raise KerasSentimentError(f"{folder}: cannot read ({error.strerror or error})") from None


def read_text_file(path):
    """A text file's content; a one-line error (`file:line`) for bytes that are not UTF-8."""
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise KerasSentimentError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content.count(b"\n", 0, error.start) + 1
        raise MalformedDataError(path, line, f"not valid UTF-8 ({error.reason} at byte {error.start})") from None


def pick_classes(examples, class_names):
    """`examples` without those whose label is not in `class_names` (None: all kept); `left_out` counts them."""
    if class_names is None:
        return examples
    wanted = set(class_names)
    kept = [i for i, label in enumerate(examples.labels) if label in wanted]
    picked = examples.subset(kept)
    picked.left_out = dict(Counter(label for label in examples.labels if label not in wanted))
    return picked


def parse_class_names(text):
    """`--class-names a,b,c` as a tuple; a one-line error for an empty or repeated name."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(","))
    if any(not name for name in names):
        raise KerasSentimentError(f"--class-names {text!r}: a class name is empty (give names separated by commas)")
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise KerasSentimentError(f"--class-names {text!r}: {', '.join(repeated)} given twice")
    if len(names) < 2:
        raise KerasSentimentError(f"--class-names {text!r}: give at least two classes")
    return names


def order_classes(labels, class_names=None, label_column="label"):
    """The class names in order: `class_names`, else numerically when every label is a number, else sorted.

    Raises a one-line error for one class only, or more than `MAX_CLASSES` (free text in the label column?).

    Example:
    >>> order_classes(["10", "2", "1", "2"])
    ('1', '2', '10')
    >>> order_classes(["neutral", "positive", "negative"])
    ('negative', 'neutral', 'positive')
    """
    if class_names is not None:
        return tuple(class_names)
    distinct = set(labels)
    if len(distinct) > MAX_CLASSES:
        examples = ", ".join(repr(label[:30]) for label in sorted(distinct)[:3])
        raise KerasSentimentError(f"the label column '{label_column}' holds {len(distinct):,} distinct values ({examples}, ...): "
                                  f"more than {MAX_CLASSES} classes; is it free text? Check --label-column and --text-column")
    if len(distinct) < 2:
        only = next(iter(distinct), "none")
        raise KerasSentimentError(f"the training data has one class only ({only!r}): a classifier needs at least two")
    if all(map(is_number_label, distinct)):
        return tuple(sorted(distinct, key=lambda label: (float(label), label)))
    return tuple(sorted(distinct))


def is_number_label(name):
    """Whether a class name is a number (stars): such classes are ordered, and compared, as numbers."""
    return _NUMBER.fullmatch(name) is not None


def check_class_sizes(train, class_names):
    """A one-line error for a class with fewer than `MIN_EXAMPLES_PER_CLASS` training examples."""
    check_class_counts(train.origin, Counter(train.labels), class_names)


def check_class_counts(origin, counts, class_names):
    """`check_class_sizes` of the training data at `origin` from its `counts` (label -> examples)."""
    few = [(name, counts.get(name, 0)) for name in class_names if counts.get(name, 0) < MIN_EXAMPLES_PER_CLASS]
    if few:
        listed = ", ".join(f"{name!r} has {count}" for name, count in few)
        others = ",".join(name for name in class_names if name not in dict(few))
        raise KerasSentimentError(f"{origin}: too few examples of a class to learn and measure it ({listed}; at "
                                  f"least {MIN_EXAMPLES_PER_CLASS} each): add examples, merge the class into another, or "
                                  f"leave it out with --class-names {others}")


def check_no_new_labels(examples, class_names, split, hint="fix them, or pick the classes with --class-names"):
    """A one-line error naming the labels of a valid or test split that training never had."""
    known = set(class_names)
    new = Counter(label for label in examples.labels if label not in known)
    if new:
        first = next(place for place, label in zip(examples.places, examples.labels) if label not in known)
        listed = ", ".join(f"{label!r} ({count})" for label, count in sorted(new.items()))
        raise KerasSentimentError(f"{examples.origin}: {split} labels never seen in training: {listed}, the first at "
                                  f"{first}; {hint}")


def model_class_ids(examples, class_names):
    """Each of `examples`' class id among a trained model's `class_names`, for evaluating it; a one-line error
    (`check_no_new_labels`) naming the labels that are not its classes."""
    check_no_new_labels(examples, class_names, "test", hint="the model's classes are " + ", ".join(class_names))
    index = {name: i for i, name in enumerate(class_names)}
    return [index[label] for label in examples.labels]


def stratified_split(labels, fraction, seed):
    """`(kept, held_out)` index lists: a seeded `fraction` of each class held out (at least one where a
    class has two or more examples), the rest kept; both in input order.

    Example:
    >>> kept, held = stratified_split(["a"] * 8 + ["b"] * 4, 0.25, seed=0)
    >>> len(held), sorted(["a" if i < 8 else "b" for i in held])
    (3, ['a', 'a', 'b'])
    """
    rng = np.random.default_rng(seed)
    by_class = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    held = []
    for label in sorted(by_class):
        indices = by_class[label]
        count = int(round(len(indices) * fraction))
        if len(indices) >= 2:
            count = min(max(count, 1), len(indices) - 1)
        held.extend(rng.permutation(indices)[:count].tolist())
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


def standardized(text):
    """A text as the vectorizer sees it (lower case, no `<br />`, apostrophes or punctuation), words
    single-spaced: two texts equal here are the same text to the model."""
    text = re.sub(r"<br\s*/?>", " ", text.lower())
    text = re.sub("['\u2019]", "", text)
    return " ".join(text.translate(_punctuation_as_spaces()).split())


@functools.cache
def _punctuation_as_spaces():
    """A `str.translate` table: every punctuation and symbol character (Unicode categories P*, S*) to a space."""
    return {code: " " for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code))[0] in "PS"}


def texts_also_in(texts, reference):
    """How many of `texts` occur in `reference` too, after `standardized`."""
    seen = {standardized(text) for text in reference}
    return sum(standardized(text) in seen for text in texts)


@dataclass
class OwnData:
    """A user's train / valid / test examples as class ids, with what a run records about them.

    Args:
        splits: split name -> `(texts, class ids)`.
        class_names: the classes in order (class id i is `class_names[i]`).
        facts: what `config.json` records: counts per split and class, where each split
            came from, and texts of valid and test that also occur in train.
    """

    splits: dict
    class_names: tuple
    facts: dict


def own_data(train, valid=None, test=None, class_names=None, seed=1234, label_column="label", valid_fraction=VALID_FRACTION):
    """Order, check and split `LabelledTexts`: the splits not given are cut from train (test first), each
    `TEST_FRACTION` or `VALID_FRACTION` of the training data given.

    Args:
        train, valid, test: `LabelledTexts` (valid and test may be None).
        class_names: the classes to keep, in order, or None (`order_classes`).
        seed: seeds the stratified splits.
        valid_fraction: the share of the training data given that valid holds when it is cut from train.
    """
    names = order_classes(train.labels, class_names, label_column)
    check_class_sizes(train, names)
    origins = {"train": train.origin}
    parts = {"train": train, "valid": valid, "test": test}
    share = 1.0  # of the training data given, what train still holds
    for split, fraction in (("test", TEST_FRACTION), ("valid", valid_fraction)):
        if parts[split] is None:
            kept, held = stratified_split(parts["train"].labels, fraction / share, seed)
            share -= fraction
            where = f"a stratified {fraction:.0%} of train (seed {seed})"
            parts["train"], parts[split] = parts["train"].subset(kept), parts["train"].subset(held, where)
        else:
            check_no_new_labels(parts[split], names, split)
        origins[split] = parts[split].origin
    left_out = {split: part.left_out for split, part in (("train", train), ("valid", valid), ("test", test))
                if part is not None and part.left_out}
    return labelled_splits(parts, names, origins, left_out)


def labelled_splits(parts, names, origins, left_out=None):
    """`OwnData` of the train, valid and test `LabelledTexts` in `parts`, labels among `names` (in order),
    with its facts: counts per split and class, `origins`, texts of valid and test also in train, and
    `left_out` (split -> label -> count)."""
    index = {name: i for i, name in enumerate(names)}
    splits = {split: (part.texts, [index[label] for label in part.labels]) for split, part in parts.items()}
    counts = {split: {name: Counter(part.labels).get(name, 0) for name in names} for split, part in parts.items()}
    facts = {
        "class_counts": counts,
        "split_origins": origins,
        "texts_also_in_train": {split: texts_also_in(parts[split].texts, parts["train"].texts) for split in ("valid", "test")},
        "left_out": left_out or {},
    }
    return OwnData(splits, tuple(names), facts)


def describe_data_facts(names, facts):
    """Lines for the training log from `OwnData`'s class names and facts: class counts per split, where
    each split came from, texts shared with train, labels left out."""
    width = max(len(name) for name in names)
    lines = [f"Classes ({len(names)}), examples per split:",
             f"  {'class':<{width}}  {'train':>8}  {'valid':>7}  {'test':>7}"]
    for name in names:
        lines.append(f"  {name:<{width}}  " + "  ".join(f"{facts['class_counts'][s][name]:>{w},}" for s, w in
                                                        (("train", 8), ("valid", 7), ("test", 7))))
    for split, origin in facts["split_origins"].items():
        lines.append(f"  {split}: {origin}")
    for split, count in facts["texts_also_in_train"].items():
        if count:
            total = sum(facts["class_counts"][split].values())
            lines.append(f"  Warning: {count:,} of {total:,} {split} texts also occur in train (after standardization): "
                         f"their {split} score overstates what unseen text would get")
    for split, left in facts["left_out"].items():
        lines.append(f"  {split}: left out by --class-names: " + ", ".join(f"{k} ({v:,})" for k, v in sorted(left.items())))
    return "\n".join(lines)
