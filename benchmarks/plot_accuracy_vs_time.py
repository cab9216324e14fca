"""Plot test accuracy against training time for run directories: docs/img/accuracy_vs_time.png.

Reads each run's `config.json` (dataset, arch), `metrics.json` (test accuracy, number of test
examples) and `history.csv` (`epoch_seconds`), one panel per dataset. A run's minutes count its
refit's epochs, its teacher's and its `--init-from` run's too (`training_minutes`): what the model
cost from scratch. Runs evaluated on a subset of the test split are drawn hollow and labelled with
the subset size. Run directories do not outlive a session, so `docs/runs.csv` keeps one row per
run reported in docs/RESULTS.md (`--table`; `--append-table` adds the run directories given); a
run directory wins over a row of the same name.

    python benchmarks/plot_accuracy_vs_time.py --table docs/runs.csv /work/runs_real/* --output docs/img/accuracy_vs_time.png
"""

import argparse
import csv
import json
from datetime import date
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FULL_TEST = {"imdb": 25_000, "sst2": 872}
ARCH_ORDER = ["rnn", "lstm", "stacked_lstm", "bilstm", "gru", "bigru", "bert_gru"]
TITLES = {"imdb": "IMDB test (25,000 reviews)", "sst2": "SST-2 dev (872 sentences)"}


def read_run(run_dir):
    run_dir = Path(run_dir)
    if not ((run_dir / "metrics.json").is_file() and (run_dir / "history.csv").is_file()):
        return None
    config = json.loads((run_dir / "config.json").read_text())
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    return {"name": run_dir.name, "dataset": config["dataset"], "arch": config["arch"],
            "minutes": training_minutes(run_dir), "accuracy": 100 * test["accuracy"],
            "examples": test.get("num_examples", FULL_TEST[config["dataset"]])}


def training_minutes(run_dir, seen=()):
    """Minutes of every epoch the delivered model cost: the run's, its refit's, and those of the runs
    it needed first, its teacher and its `--init-from` run (run dirs, counted the same way: a
    student's teacher may have had a teacher). Evaluation, export and scoring the teacher's targets
    are not epochs and are left out."""
    run_dir = Path(run_dir).resolve()
    seconds = 0.0
    for name in ("history.csv", "refit_history.csv"):
        if (run_dir / name).is_file():
            with open(run_dir / name) as handle:
                seconds += sum(float(row["epoch_seconds"]) for row in csv.DictReader(handle))
    config = json.loads((run_dir / "config.json").read_text())
    seen = (*seen, run_dir)
    for before in (config.get("teacher_model"), config.get("init_from")):
        if before and (Path(before) / "history.csv").is_file() and Path(before).resolve() not in seen:
            seconds += 60 * training_minutes(before, seen)
    return seconds / 60


TABLE_FIELDS = ["name", "dataset", "arch", "minutes", "accuracy", "examples", "measured"]


def read_table(path):
    """Rows of `docs/runs.csv` in `read_run`'s shape."""
    with open(path, newline="") as handle:
        return [{**row, "minutes": float(row["minutes"]), "accuracy": float(row["accuracy"]),
                 "examples": int(row["examples"])} for row in csv.DictReader(handle)]


def append_table(path, runs):
    """Add runs (from run directories) to the table, replacing rows of the same dataset and name."""
    kept = [r for r in read_table(path) if (r["dataset"], r["name"]) not in {(n["dataset"], n["name"]) for n in runs}]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, TABLE_FIELDS, extrasaction="ignore", lineterminator="\n")  # as the file is kept
        writer.writeheader()
        for run in kept + [{**r, "minutes": round(r["minutes"], 1), "accuracy": round(r["accuracy"], 2),
                            "measured": date.today().isoformat()} for r in runs]:
            writer.writerow(run)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="run directories (others are ignored)")
    parser.add_argument("--table", help="CSV of earlier runs (docs/runs.csv)")
    parser.add_argument("--append-table", action="store_true", help="add the run directories given to --table")
    parser.add_argument("--output", default="docs/img/accuracy_vs_time.png", help="PNG to write")
    args = parser.parse_args()
    runs = [r for r in map(read_run, args.runs) if r]
    if args.table and args.append_table:
        append_table(args.table, runs)
    names = {(r["dataset"], r["name"]) for r in runs}
    runs += [r for r in (read_table(args.table) if args.table else []) if (r["dataset"], r["name"]) not in names]
    datasets = [d for d in FULL_TEST if any(r["dataset"] == d for r in runs)]
    figure, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    colours = {arch: f"C{i}" for i, arch in enumerate(ARCH_ORDER)}
    for axis, dataset in zip(axes[0], datasets):
        for run in (r for r in runs if r["dataset"] == dataset):
            subset = run["examples"] < FULL_TEST[dataset]
            colour = colours.get(run["arch"], "grey")
            axis.scatter(run["minutes"], run["accuracy"], s=50, facecolors="none" if subset else colour,
                         edgecolors=colour, label=run["arch"])
            label = run["name"].removeprefix(f"{dataset}_") + (f" ({run['examples']:,} test)" if subset else "")
            axis.annotate(label, (run["minutes"], run["accuracy"]), textcoords="offset points", xytext=(5, 4),
                          fontsize=7, color=colour)
        handles = {h.get_label(): h for h in axis.collections}  # one legend entry per architecture
        axis.legend([handles[a] for a in ARCH_ORDER if a in handles], [a for a in ARCH_ORDER if a in handles],
                    fontsize=8, loc="lower right")
        axis.set_xscale("log")
        axis.set_xticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200) if t <= 2 * max(r["minutes"] for r in runs)])
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel("training time, minutes (2 CPU cores, log scale)")
        axis.set_ylabel("test accuracy, %")
        axis.set_title(TITLES[dataset])
        axis.grid(alpha=0.3)
    figure.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=120)
    print(f"wrote {args.output} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
