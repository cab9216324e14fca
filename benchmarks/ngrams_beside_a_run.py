"""What `--ngrams N` adds to a run that finished without it, measured without training again.

`train --ngrams N` trains the model exactly as it would without the flag and only then fits the
bag-of-n-grams model and the combination's weights on the valid split
(`keras_sentiment.run.training.add_ngram_model`). So that step can be measured on a finished run: this
copies RUN_DIR's settings, tokenizer and checkpoints to OUT, runs the step there with the package's
own functions, and evaluates the combined model on test and valid as `train` does (OUT/metrics.json).
It prints the run's own figures beside the combined ones. Nothing is exported: `train --ngrams N`
delivers the same model with its export.

    python benchmarks/ngrams_beside_a_run.py RUN_DIR OUT --ngrams 2 [--ngram-max-length N] --data-dir ../shared/data
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks.common import machine  # noqa: E402
from keras_sentiment.core.errors import KerasSentimentError  # noqa: E402
from keras_sentiment.run.loading import load_run  # noqa: E402
from keras_sentiment.run.settings import architecture_default, settings_of_run, validate  # noqa: E402
from keras_sentiment.run.training import add_ngram_model, delivered_encoder, evaluate, load_best, prepare_data, write_config  # noqa: E402

# The backups and TensorBoard logs of a long run are gigabytes that the n-gram step never reads.
NOT_COPIED = shutil.ignore_patterns("backup", "tensorboard", "members", "encoder_cache")


def copy_finished_run(run_dir, out, ngrams, ngram_max_length, data_dir):
    """OUT as a copy of RUN_DIR whose settings ask for `--ngrams ngrams --ngram-max-length ngram_max_length`
    (None: the run's own value, else its architecture's default); its settings."""
    settings = settings_of_run(run_dir)
    if "ngram_stack" in settings.record:
        raise KerasSentimentError(f"{run_dir}: this run already has n-grams (ngram_stack in config.json)")
    if not (Path(run_dir) / "metrics.json").is_file():
        raise KerasSentimentError(f"{run_dir}: not a finished run (no metrics.json)")
    if Path(out).exists():
        raise KerasSentimentError(f"{out}: exists; give a new folder")
    shutil.copytree(run_dir, out, ignore=NOT_COPIED)
    if ngram_max_length is None:  # the run's own; a run older than the setting recorded none: the architecture's
        ngram_max_length = settings.ngram_max_length or architecture_default(settings.arch, "ngram_max_length")
    settings = settings.replace("ngrams_beside_a_run", ngrams=ngrams, ngram_max_length=ngram_max_length, run_dir=str(out),
                                **({"data_dir": data_dir} if data_dir else {}))
    validate(settings)
    write_config(out, settings)
    return settings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished run directory (config.json, best.keras, metrics.json)")
    parser.add_argument("out", help="a new folder: the run's copy with the n-grams added")
    parser.add_argument("--ngrams", type=int, default=2, choices=(1, 2, 3), help="n-gram orders 1..N (default: 2)")
    parser.add_argument("--ngram-max-length", type=int, help="tokens of each text the n-grams read (default: the "
                        "run's own value, else the architecture's default; bert_gru: 4096 word pieces)")
    parser.add_argument("--data-dir", help="where the data set is, if not where the run read it")
    args = parser.parse_args(argv)
    try:
        settings = copy_finished_run(args.run_dir, args.out, args.ngrams, args.ngram_max_length, args.data_dir)
    except KerasSentimentError as error:
        parser.exit(2, f"error: {error}\n")
    print(f"Machine: {machine()}; {args.run_dir} ({settings.arch}, {settings.dataset}) + n-grams 1-{args.ngrams}", flush=True)
    encoder, _ = load_run(args.out)
    splits = prepare_data(settings)
    settings = add_ngram_model(settings, encoder, splits, Path(args.out))
    metrics = evaluate(settings, load_best(args.out), delivered_encoder(encoder, settings), splits, Path(args.out))
    before = json.loads((Path(args.run_dir) / "metrics.json").read_text())
    print("| model | valid accuracy | test accuracy | test F1 |\n| --- | --- | --- | --- |")
    for name, figures in (("the run", before), (f"the run + n-grams 1-{args.ngrams}", metrics)):
        print(f"| {name} | {figures['valid']['accuracy']:.2%} | {figures['test']['accuracy']:.2%} | "
              f"{figures['test']['f1']:.4f} |")
    print(f"C={settings.record['ngram_l2']:g}, {settings.record['ngram_features']:,} n-grams, "
          f"stack (a, b, c) = {settings.record['ngram_stack']}", flush=True)


if __name__ == "__main__":
    main()
