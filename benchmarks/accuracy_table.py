"""Train the listed (dataset, arch) pairs on the real data and write docs/RESULTS.md's table.

Each pair is trained with `scripts/train.py` into `<runs>/<dataset>_<arch>/` (a pair whose run
directory already holds `metrics.json` is reused, so an interrupted table resumes), then the
table is built from the run directories: test accuracy and F1, parameters, epochs, minutes per
epoch on this machine and the exact command.

    python benchmarks/accuracy_table.py --data-dir ../shared/data --runs /tmp/results \
        --jobs imdb:bilstm sst2:bilstm sst2:rnn --output docs/results_table.md
"""

import argparse
import csv
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_name  # noqa: E402
DEFAULT_JOBS = ["imdb:bilstm", "sst2:bilstm", "sst2:rnn", "sst2:lstm", "sst2:stacked_lstm", "sst2:gru", "sst2:bigru"]


def run_name(dataset, arch, tag):
    return f"{dataset}_{arch}" + (f"_{tag}" if tag else "")


def train_command(dataset, arch, args, run_dir):
    name = run_name(dataset, arch, args.tag)
    return [
        "python", "scripts/train.py", "--arch", arch, "--dataset", dataset, "--data-dir", args.data_dir,
        "--epochs", str(args.epochs), "--run-dir", str(run_dir), "--export-dir", str(Path(args.runs) / "export" / name),
        *shlex.split(args.train_args),
    ]


def run_job(dataset, arch, args):
    name = run_name(dataset, arch, args.tag)
    run_dir = Path(args.runs) / name
    command = train_command(dataset, arch, args, run_dir)
    if not (run_dir / "metrics.json").is_file():
        print(f"== {name}: {shlex.join(command)}", flush=True)
        start = time.time()
        with open(Path(args.runs) / f"{name}.log", "w") as log:
            subprocess.run([sys.executable, *command[1:]], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
        (run_dir / "wall_seconds.txt").write_text(f"{time.time() - start:.1f}\n")
    return summarize(dataset, arch, run_dir, command, args.tag)


def summarize(dataset, arch, run_dir, command, tag=""):
    import keras

    import keras_sentiment.core.recurrent  # noqa: F401  (registers MaskedPooling, which best.keras may hold)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    # The kept epoch is the best by the metric the run monitored (val_loss unless it said otherwise).
    monitor = json.loads((run_dir / "config.json").read_text()).get("monitor") or "val_loss"
    scores = [float(row[monitor]) * (1 if monitor.endswith("loss") else -1) for row in history]
    seconds = sorted(float(row["epoch_seconds"]) for row in history)
    model = keras.models.load_model(run_dir / "best.keras", compile=False)
    return {
        "dataset": dataset,
        "arch": arch + (f" ({tag})" if tag else ""),
        "test_accuracy": metrics["test"]["accuracy"],
        "test_f1": metrics["test"]["f1"],
        "valid_accuracy": metrics["valid"]["accuracy"],
        "test_examples": metrics["test"]["num_examples"],
        "parameters": model.count_params(),
        "epochs": len(history),
        "best_epoch": scores.index(min(scores)) + 1,
        "minutes_per_epoch": seconds[len(seconds) // 2] / 60,
        "reviews_per_second": metrics["test"].get("examples_per_second", 0.0),
        "command": shlex.join(command),
    }


def machine_description():
    import tensorflow as tf

    return f"{os.cpu_count()} cores ({cpu_name()}), no GPU, TensorFlow {tf.__version__}, Python {platform.python_version()}"


def write_table(rows, path):
    lines = [
        f"Measured {date.today().isoformat()} on {machine_description()}.",
        "",
        "| dataset (test split) | arch | test accuracy | test F1 | valid accuracy | parameters | epochs (best) | min / epoch | test reviews/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        split = "IMDB test" if r["dataset"] == "imdb" else "SST-2 dev"
        if r["test_examples"] != {"imdb": 25_000, "sst2": 872}[r["dataset"]]:
            split += f" (subset of {r['test_examples']:,})"
        lines.append(
            f"| {split} | {r['arch']} | {r['test_accuracy']:.2%} | {r['test_f1']:.4f} | {r['valid_accuracy']:.2%} | "
            f"{r['parameters']:,} | {r['epochs']} ({r['best_epoch']}) | {r['minutes_per_epoch']:.1f} | {r['reviews_per_second']:,.0f} |"
        )
    lines += ["", "Commands (from the repository root):", ""]
    lines += [f"- `{r['command']}`" for r in rows]
    Path(path).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with aclImdb_v1.tar.gz and SST-2/")
    parser.add_argument("--runs", default="runs/results", help="where run directories go (default: %(default)s)")
    parser.add_argument("--jobs", nargs="+", default=DEFAULT_JOBS, help="dataset:arch pairs (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="most epochs per run; early stopping decides (default: %(default)s)")
    parser.add_argument("--train-args", default="", help="extra flags for scripts/train.py, one shell-quoted string")
    parser.add_argument("--tag", default="", help="suffix for run names, to keep a variant's runs apart (e.g. h128)")
    parser.add_argument("--output", default="docs/results_table.md", help="markdown table to write (default: %(default)s)")
    args = parser.parse_args(argv)
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    rows = [run_job(*job.split(":"), args) for job in args.jobs]
    write_table(rows, args.output)


if __name__ == "__main__":
    main()
