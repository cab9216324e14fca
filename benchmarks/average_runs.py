"""What averaging finished runs would score: every run alone and every group's mean logit, on valid and test.

Runs of one data set and one seed only: each seed holds out its own valid examples, which a run of
another seed trained on, so a group of mixed seeds would be judged on what part of it had seen.
Each run is scored as `evaluate` scores it (its `best.keras` and text encoder), so a run alone
reproduces its `metrics.json`. Choose a group by valid; test is read afterwards.

    python benchmarks/average_runs.py RUN_DIR RUN_DIR [RUN_DIR ...] [--data-dir ../shared/data]
"""

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks.common import machine  # noqa: E402
from keras_sentiment.core.errors import KerasSentimentError  # noqa: E402
from keras_sentiment.run.evaluation import classification_metrics, score_dataset  # noqa: E402
from keras_sentiment.run.loading import load_scorer  # noqa: E402
from keras_sentiment.run.settings import settings_of_run  # noqa: E402
from keras_sentiment.run.training import prepare_data  # noqa: E402

# What decides which examples land in valid and test: runs must agree on all of it to be compared.
SPLIT_DECIDING = ("dataset", "seed", "max_train_samples", "max_eval_samples")
SPLITS = ("valid", "test")


def settings_of_one_split(run_dirs, data_dir=None):
    """The first run's settings (reading the data from `data_dir` if given); a one-line error unless
    every run trained on the same split."""
    if len(run_dirs) < 2:
        raise KerasSentimentError("give at least two run directories to average")
    all_settings = [settings_of_run(run_dir) for run_dir in run_dirs]
    first = all_settings[0]
    for run_dir, settings in zip(run_dirs[1:], all_settings[1:]):
        differing = [f"{name} {first.values[name]} vs {settings.values[name]}" for name in SPLIT_DECIDING
                     if settings.values[name] != first.values[name]]
        if differing:
            raise KerasSentimentError(f"{run_dir} trained on another split than {run_dirs[0]} ({'; '.join(differing)}): "
                                      "its valid examples were another run's training examples")
    return first.replace("average_runs --data-dir", data_dir=data_dir) if data_dir else first


def logits_of_runs(run_dirs, splits):
    """`(labels, logits)`: `labels[split]` `[examples]`, `logits[run_dir][split]` `[examples]`."""
    labels, logits = {}, {}
    for run_dir in run_dirs:
        scorer = load_scorer(run_dir)
        logits[run_dir] = {}
        for split in SPLITS:
            split_labels, logits[run_dir][split], _ = score_dataset(scorer, getattr(splits, split), verbose=False)
            if split in labels and not np.array_equal(labels[split], split_labels):
                raise RuntimeError("the examples came in another order for another run")  # tf.data's order is fixed
            labels[split] = split_labels
    return labels, logits


def mean_logit_figures(labels, logits):
    """`[(group, {split: classification_metrics})]` for every run alone and every group of two or more, by
    their mean logit."""
    runs = list(logits)
    groups = [group for size in range(1, len(runs) + 1) for group in itertools.combinations(runs, size)]
    return [(group, {split: classification_metrics(labels[split], np.mean([logits[run][split] for run in group], axis=0))
                     for split in SPLITS}) for group in groups]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished runs of one data set and seed")
    parser.add_argument("--data-dir", help="where the data set is, if not where the first run read it")
    args = parser.parse_args(argv)
    try:
        settings = settings_of_one_split(args.run_dirs, args.data_dir)
        splits = prepare_data(settings)
        labels, logits = logits_of_runs(args.run_dirs, splits)
    except KerasSentimentError as error:
        parser.exit(2, f"error: {error}\n")
    print(f"Machine: {machine()}; {settings.dataset}, seed {settings.seed}: {splits.sizes}", flush=True)
    names = {run_dir: f"{chr(ord('A') + i)} ({run_dir})" for i, run_dir in enumerate(args.run_dirs)}
    print("\n".join(names.values()))
    print("| mean logit of | valid accuracy | test accuracy | test F1 |\n| --- | --- | --- | --- |")
    for group, figures in mean_logit_figures(labels, logits):
        print(f"| {' + '.join(names[run][0] for run in group)} | {figures['valid']['accuracy']:.2%} | "
              f"{figures['test']['accuracy']:.2%} | {figures['test']['f1']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
