"""Reviews/s of `keras-sentiment score` on the 25,000 real IMDB test reviews.

Writes the test reviews once to a CSV (quoted, with newlines and commas as the real reviews have
them) and a JSONL file, then times the real command on each, end to end (process start,
TensorFlow import, model load, reading, scoring and writing) and also reports the rows/s that
`score` itself prints (the scoring loop only; for a Beam runner, the whole pipeline). Prints a
Markdown table for docs/RESULTS.md. With `--rounds N` every combination runs N times, the models
interleaved within a round, the table gives medians, and the last lines give each model's speed
as a ratio of the first model's (two exports of one run compare two export designs, same machine,
same run). `--code` runs each model's command with the package of another checkout (a `git worktree`
of an older commit): the first model scored as it was on the day a goal was set, say.

    python benchmarks/score_throughput.py --data-dir ../shared/data \
        --model saved_models/imdb_bilstm [other/export ...] [--batch-size 256 512] \
        [--runners local beam beam-2procs] [--inputs csv jsonl] [--rounds 3] [--code <checkout> [...]]

`beam` is `score --runner beam` (Apache Beam's DirectRunner, one worker); `beam-2procs` adds
`--direct_num_workers 2 --direct_running_mode multi_processing`. Beam needs the beam extra.
"""

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


def write_inputs(data_dir, folder, limit=None):
    from keras_sentiment.run.sources import load_imdb

    test = load_imdb(data_dir, source="local").test
    csv_path, jsonl_path = folder / "imdb_test.csv", folder / "imdb_test.jsonl"
    count = 0
    with open(csv_path, "w", newline="", encoding="utf-8") as c, open(jsonl_path, "w", encoding="utf-8") as j:
        writer = csv.writer(c)
        writer.writerow(["id", "review"])
        for text, _ in test.as_numpy_iterator():
            if limit and count >= limit:
                break
            review = text.decode("utf-8")
            writer.writerow([count, review])
            j.write(json.dumps({"id": count, "review": review}) + "\n")
            count += 1
    return count, csv_path, jsonl_path


RUNNERS = {
    "local": ["--quiet"],
    "beam": ["--runner", "beam"],
    "beam-2procs": ["--runner", "beam", "--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
}


def time_score(model, input_path, output_path, batch_size, extra, code=ROOT):
    """`score` of `model` by the package of the checkout `code`: `(rows, whole-command seconds, loop rows/s)`."""
    command = [sys.executable, "-m", "keras_sentiment.apps.cli", "score", "--model", str(model), "--input",
               str(input_path), "--output", str(output_path), "--batch-size", str(batch_size), "--overwrite",
               *extra]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=code,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(code)))
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    match = re.search(r"Scored ([\d,]+) rows.*\(([\d,]+) rows/s", result.stderr)
    rows, loop_rate = int(match[1].replace(",", "")), float(match[2].replace(",", ""))
    return rows, wall, loop_rate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding aclImdb/ or aclImdb_v1.tar.gz")
    parser.add_argument("--model", nargs="+", required=True, help="export bases or SavedModel dirs to time")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[256], help="score --batch-size values to try")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N test reviews (quick check)")
    parser.add_argument("--runners", nargs="+", default=["local"], choices=sorted(RUNNERS),
                        help="local: score in this process; beam, beam-2procs: score --runner beam (DirectRunner)")
    parser.add_argument("--inputs", nargs="+", default=["csv", "jsonl"], choices=["csv", "jsonl"],
                        help="input formats to time")
    parser.add_argument("--rounds", type=int, default=1, help="times each combination runs (models interleaved)")
    parser.add_argument("--code", nargs="+", default=None,
                        help="one checkout per --model whose keras_sentiment scores it (default: this checkout for all)")
    args = parser.parse_args()
    if args.code and len(args.code) != len(args.model):
        parser.error(f"--code: one checkout per --model ({len(args.model)}), got {len(args.code)}")
    # Each model as it is named in the table: with --code, "export @ checkout" (an export may then appear twice).
    arms = {(f"{model} @ {code}" if args.code else model): (model, Path(code).resolve())
             for model, code in zip(args.model, args.code or [ROOT] * len(args.model))}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        count, csv_path, jsonl_path = write_inputs(args.data_dir, tmp, args.limit)
        inputs = {"csv": (csv_path, ["--text-column", "review", "--id-column", "id"]),
                  "jsonl": (jsonl_path, ["--text-field", "review", "--id-field", "id"])}
        print(f"{count:,} IMDB test reviews; {machine()}; {args.rounds} round(s), medians\n")
        print("| runner | model | input | batch | rows | wall s (whole command) | reviews/s (whole command) "
              "| reviews/s (scoring loop; Beam: pipeline) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        medians = {}  # (runner, input, batch) -> model -> (whole-command reviews/s, loop reviews/s)
        for runner in args.runners:
            for name in args.inputs:
                path, extra = inputs[name]
                for batch_size in args.batch_size:
                    runs = {arm: [] for arm in arms}
                    for _ in range(args.rounds):
                        for arm, (model, code) in arms.items():
                            rows, wall, loop_rate = time_score(model, path, tmp / "out.jsonl", batch_size,
                                                               extra + RUNNERS[runner], code)
                            assert rows == count, (rows, count)
                            runs[arm].append((rows / wall, loop_rate))
                    combination = medians[(runner, name, batch_size)] = {
                        model: tuple(statistics.median(r[i] for r in timed) for i in (0, 1)) for model, timed in runs.items()}
                    for model, (whole, loop) in combination.items():
                        print(f"| {runner} | {model} | {name} | {batch_size} | {count:,} | {count / whole:.1f} "
                              f"| {whole:,.0f} | {loop:,.0f} |", flush=True)
        print_ratios(medians, list(arms))


def print_ratios(medians, models):
    """Each later model's median reviews/s over the first model's, per combination timed."""
    if len(models) < 2:
        return
    print()
    for (runner, name, batch_size), by_model in medians.items():
        first = by_model[models[0]]
        for model in models[1:]:
            other = by_model[model]
            print(f"{runner} {name} batch {batch_size}: {model} / {models[0]}: whole command "
                  f"{other[0] / first[0]:.2f}x, scoring loop {other[1] / first[1]:.2f}x")


if __name__ == "__main__":
    main()
