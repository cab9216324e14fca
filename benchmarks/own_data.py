"""Your own data, measured (issue #35 §5): the default recipe against the baseline a user would otherwise
pick, TF-IDF (uni- and bigrams) + scikit-learn's logistic regression with C chosen on valid, on the same
splits. Every model reads the data through `train --train-file/--train-dir`, as a user's would.

Experiments (each row: accuracy, macro-F1, and for star ratings the mean absolute error in stars):

- `stars`: IMDB's star ratings as 8 classes (1-4 and 7-10 stars: the archive names each review
  `<id>_<stars>.txt`), in the folder-per-class layout this script builds from `aclImdb_v1.tar.gz`;
  trained on all 25,000 training reviews or a seeded, stratified subset (`--train-size 8000`),
  tested on all 25,000 test reviews.
- `curves`: small labelled sets, 1,000 / 2,000 / 5,000 training examples (SST-2's whole sentences,
  IMDB's reviews; seeded and stratified), tested on the full test sets (SST-2: GLUE dev).
- `cross`: trained on one dataset's training split, tested on the other's test split.

Valid is a stratified, seeded 10% of the training examples given (what `train` cuts when no valid
file is given); the baseline's C is chosen on that same valid split. Each trained model keeps its run
dir under `--work-dir`: a killed experiment continues its run (`train --resume`) and a finished one is
not trained again. Rows accumulate in `--results` (JSON lines: command, machine, date, wall time).

    python benchmarks/own_data.py curves --data-dir ../shared/data --sizes 2000 --datasets sst2
    python benchmarks/own_data.py stars --data-dir ../shared/data --train-size 8000
    python benchmarks/own_data.py cross --data-dir ../shared/data
    python benchmarks/own_data.py table     # the rows so far, as docs/RESULTS.md's table
"""

import argparse
import csv
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks.common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
SEED = 1234


# === Data as a user would have it ===


def imdb_root(data_dir):
    """`aclImdb/` of the data dir, extracted once into the cache as `train --dataset imdb` does."""
    from keras_sentiment.run.sources import _find_local_imdb, default_cache_dir, resolve_data_dir

    root = _find_local_imdb(resolve_data_dir(data_dir), default_cache_dir(), [])
    if root is None:
        sys.exit(f"no aclImdb/ or aclImdb_v1.tar.gz in {data_dir}")
    return Path(root)


def build_star_folders(data_dir, out):
    """`out/{train,test}/<stars>/<id>.txt` from IMDB's `<id>_<stars>.txt` names (unsup/ left out); once."""
    out = Path(out)
    if (out / "done").exists():
        return out
    root = imdb_root(data_dir)
    for split in ("train", "test"):
        for polarity in ("neg", "pos"):
            for review in (root / split / polarity).glob("*.txt"):
                number, stars = review.stem.split("_")
                target = out / split / stars / f"{polarity}_{number}.txt"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(review.read_bytes())
    (out / "done").write_text("")
    return out


def imdb_examples(data_dir, split):
    """`(texts, labels)` of an IMDB split, labels "neg"/"pos", in the loader's order."""
    from keras_sentiment.run.labelled import read_labelled_folder

    examples = read_labelled_folder(imdb_root(data_dir) / split, ("neg", "pos"))
    return examples.texts, examples.labels


def sst2_examples(data_dir, split):
    """SST-2 as a user would hold it: train = its whole sentences (no phrases), test = GLUE dev; labels "0"/"1"."""
    from keras_sentiment.run.labelled import read_labelled_file
    from keras_sentiment.run.sources import whole_text_indices

    path = Path(data_dir) / "SST-2" / ("train.tsv" if split == "train" else "dev.tsv")
    rows = read_labelled_file(path, text_column="sentence")
    keep = whole_text_indices("sst2", rows.texts) if split == "train" else range(len(rows))
    return [rows.texts[i] for i in keep], [rows.labels[i] for i in keep]


def star_examples(folders, split):
    from keras_sentiment.run.labelled import read_labelled_folder

    examples = read_labelled_folder(Path(folders) / split)
    return examples.texts, examples.labels


def stratified_subset(texts, labels, size, seed=SEED):
    """A seeded subset of `size` examples with each class's share kept."""
    from keras_sentiment.run.labelled import stratified_split

    if size is None or size >= len(texts):
        return texts, labels
    _, held = stratified_split(labels, size / len(texts), seed)
    return [texts[i] for i in held], [labels[i] for i in held]


def write_csv(path, texts, labels):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with open(path.with_suffix(".tmp"), "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts, labels))
        path.with_suffix(".tmp").rename(path)
    return path


# === The two contenders ===


def train_default(name, train_file, test_file, work_dir, settings=None, data_dir=None):
    """The default recipe (`train --train-file F --test-file T`, nothing else; or a candidate's `settings`
    beside them), resumed if it was cut short; returns its metrics (test and valid) and settings.
    `data_dir` only serves a candidate that reads IMDB's text from it (`embeddings_text=imdb`)."""
    import keras_sentiment as ks
    from keras_sentiment.run.rundir import RunDir, read_run_config

    run_dir = Path(work_dir) / "runs" / name
    metrics_file = RunDir(run_dir).metrics
    if metrics_file.exists() and (run_dir / "backup" / "state.json").exists() and \
            json.loads((run_dir / "backup" / "state.json").read_text()).get("exported"):
        return json.loads(metrics_file.read_text()), read_run_config(run_dir)
    if RunDir(run_dir).config.exists():
        run = ks.train(resume=run_dir)
    else:
        given = {**({"data_dir": data_dir} if data_dir else {}), **(settings or {})}
        run = ks.train(train_file=str(train_file), test_file=str(test_file), run_dir=str(run_dir),
                       export_dir=str(Path(work_dir) / "exports" / name), **given)
    return run.metrics, run.settings


def tfidf_baseline(train, valid, test, class_names):
    """TF-IDF (1-2 grams, sublinear tf, min_df 2) + logistic regression, C chosen on valid by accuracy,
    then fitted on train; returns its test metrics (with the chosen C and its valid accuracy)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform(train[0])
    x_valid, x_test = vectorizer.transform(valid[0]), vectorizer.transform(test[0])
    index = {name: i for i, name in enumerate(class_names)}
    y_train, y_valid, y_test = (np.array([index[y] for y in part[1]]) for part in (train, valid, test))
    scores = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        scores[c] = float((model.predict(x_valid) == y_valid).mean())
    best_c = max(C_GRID, key=lambda c: (scores[c], -c))
    model = LogisticRegression(C=best_c, max_iter=2000).fit(x_train, y_train)
    logits = model.decision_function(x_test)
    return {**test_metrics(y_test, logits, class_names), "C": best_c, "valid_accuracy": scores[best_c]}


def test_metrics(labels, logits, class_names):
    from keras_sentiment.run.evaluation import classification_metrics

    metrics = classification_metrics(labels, np.asarray(logits), class_names=class_names)
    return {key: metrics[key] for key in ("accuracy", "macro_f1", "mean_absolute_error", "roc_auc",
                                          "expected_calibration_error") if key in metrics}


def same_splits_as_train(train_file, seed=SEED):
    """The train and valid examples `train --train-file F --test-file T` trains and chooses on (valid: a
    stratified 10% of F), for the baseline; and the class names in order."""
    from keras_sentiment.run.labelled import VALID_FRACTION, order_classes, read_labelled_file, stratified_split

    rows = read_labelled_file(train_file)
    kept, held = stratified_split(rows.labels, VALID_FRACTION, seed)
    part = lambda indices: ([rows.texts[i] for i in indices], [rows.labels[i] for i in indices])  # noqa: E731
    return part(kept), part(held), order_classes(rows.labels)


# === One comparison ===


def compare(name, train, test, args, extra=None):
    """Write the train and test files, run both contenders on them, append a row to the results.
    With `--set`, the default's place is taken by that candidate (the row's name says which)."""
    work = Path(args.work_dir)
    data_name, name = name, name + "".join(f"+{key}={value}" for key, value in args.set.items())
    train_file = write_csv(work / "data" / f"{data_name}_train.csv", *train)
    test_file = write_csv(work / "data" / f"{data_name}_test.csv", *test)
    train_part, valid_part, class_names = same_splits_as_train(train_file)
    results = Path(args.results)
    done = {json.loads(line)["name"] for line in results.read_text().splitlines()} if results.exists() else set()
    if name in done:
        print(f"{name}: already in {results}")
        return
    start = time.perf_counter()
    baseline = tfidf_baseline(train_part, valid_part, test, class_names)
    baseline_seconds = time.perf_counter() - start
    start = time.perf_counter()
    # The default reads nothing but the files; a candidate may read IMDB's text from the data dir.
    metrics, settings = train_default(name, train_file, test_file, work, args.set, args.data_dir if args.set else None)
    default, valid = metrics["test"], metrics["valid"]
    default_seconds = time.perf_counter() - start
    row = {"name": name, **(extra or {}), "train_examples": len(train_part[0]), "valid_examples": len(valid_part[0]),
           "test_examples": len(test[0]), "classes": len(class_names),
           "default": {**{k: default[k] for k in ("accuracy", "macro_f1", "mean_absolute_error") if k in default},
                       "valid_accuracy": valid["accuracy"], "valid_macro_f1": valid.get("macro_f1"),
                       "arch": settings.get("arch"), "minutes": default_seconds / 60, "settings": args.set},
           "baseline": {**baseline, "minutes": baseline_seconds / 60},
           "command": "python " + " ".join(map(shlex.quote, sys.argv)), "machine": machine()}
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(table_row(row), flush=True)


TABLE_HEADER = ("| experiment | train examples | model (arch) | valid accuracy: model / baseline | test accuracy: model / "
                "baseline | macro-F1 | MAE (stars) | minutes: model / baseline |\n| --- | --- | --- | --- | --- | --- | --- | --- |")


def table_row(row):
    """One markdown row of RESULTS' table: the model against the baseline on valid and on test."""
    model, baseline = row["default"], row["baseline"]

    def pair(key, form):
        return f"{form(model[key])} / {form(baseline[key])}" if model.get(key) is not None and key in baseline else ""

    percent, plain = (lambda v: f"{v:.2%}"), (lambda v: f"{v:.3f}")
    mae = pair("mean_absolute_error", plain) if row["classes"] > 2 else ""
    return (f"| {row['name']} | {row['train_examples']:,} | {model['arch']} | {pair('valid_accuracy', percent)} | "
            f"{pair('accuracy', percent)} | {pair('macro_f1', plain)} | {mae} | "
            f"{model['minutes']:.1f} / {baseline['minutes']:.1f} |")


def print_table(args):
    """The rows of `--results` as the markdown table of docs/RESULTS.md."""
    print(TABLE_HEADER)
    for line in Path(args.results).read_text().splitlines():
        print(table_row(json.loads(line)))


# === Experiments ===


def run_stars(args):
    folders = build_star_folders(args.data_dir, Path(args.work_dir) / "imdb_stars")
    train, test = star_examples(folders, "train"), star_examples(folders, "test")
    for size in args.train_sizes:
        subset = stratified_subset(*train, size)
        compare(f"stars_{size or 'all'}", subset, test, args, {"experiment": "stars"})


def run_curves(args):
    load = {"sst2": sst2_examples, "imdb": imdb_examples}
    for dataset in args.datasets:
        train, test = load[dataset](args.data_dir, "train"), load[dataset](args.data_dir, "test")
        for size in args.sizes:
            compare(f"{dataset}_{size}", stratified_subset(*train, size), test, args,
                    {"experiment": "curves", "dataset": dataset})


def run_cross(args):
    # The same label names on both sides: SST-2's 0/1 as IMDB's folders.
    imdb = {split: imdb_examples(args.data_dir, split) for split in ("train", "test")}
    sst2 = {split: sst2_examples(args.data_dir, split) for split in ("train", "test")}
    sst2 = {split: (texts, ["pos" if y == "1" else "neg" for y in labels]) for split, (texts, labels) in sst2.items()}
    compare("imdb_to_sst2", imdb["train"], sst2["test"], args, {"experiment": "cross"})
    compare("sst2_to_imdb", sst2["train"], imdb["test"], args, {"experiment": "cross"})


def parse_setting(item):
    """`name=value` -> (name, value), the value as JSON where it reads as JSON (numbers, true), else a string."""
    name, _, value = item.partition("=")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=("stars", "curves", "cross", "table"),
                        help="table: print the rows of --results as a markdown table")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"),
                        help="holds aclImdb_v1.tar.gz (or aclImdb/) and SST-2/{train,dev}.tsv")
    parser.add_argument("--work-dir", default="/tmp/own_data_study", help="data files, run dirs and exports")
    parser.add_argument("--results", default=str(ROOT / "docs" / "own_data.jsonl"), help="rows are appended here")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000], help="curves: training sizes")
    parser.add_argument("--datasets", nargs="+", default=["sst2", "imdb"], choices=("sst2", "imdb"),
                        help="curves: which datasets")
    parser.add_argument("--train-sizes", type=lambda t: None if t == "all" else int(t), nargs="+", default=[8000, None],
                        help="stars: training sizes (all = the 25,000)")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                        help="a candidate in the default's place: these train settings beside the data files "
                             "(e.g. arch=bert_gru trainable_layers=all), to measure a rule on valid")
    args = parser.parse_args(argv)
    args.set = dict(parse_setting(item) for item in args.set)
    {"stars": run_stars, "curves": run_curves, "cross": run_cross, "table": print_table}[args.experiment](args)


if __name__ == "__main__":
    main()
