"""How long `train`'s evaluation step takes for a finished run, code against code (#36).

Runs `keras_sentiment.run.training.evaluate` (the delivered model on test, and for a run that trained on
valid the selected model on valid and test; plots included) on a copy of RUN_DIR, in a fresh process per
try, each code tree in turn (`--code DIR`: that checkout's `keras_sentiment` first on the path; `.` is
this one). Prints one line per try: seconds and the accuracy and loss of every split, so two trees can be
compared for time and checked for the same metrics.

    python benchmarks/train_evaluation.py runs/imdb_bigru_20261206-001734 --code ../old-checkout . --repeats 2
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

WORKER = """
import json, sys, time
import keras_sentiment
from keras_sentiment.run import training
from keras_sentiment.run.loading import load_run
from keras_sentiment.run.settings import settings_of_run
run_dir = sys.argv[1]
settings = settings_of_run(run_dir)
splits = training.prepare_data(settings)
encoder, model = load_run(run_dir)
start = time.perf_counter()
metrics = training.evaluate(settings, model, encoder, splits, run_dir)
seconds = time.perf_counter() - start
print("RESULT " + json.dumps({"code": keras_sentiment.__file__, "seconds": seconds, "metrics": {key: [m["accuracy"], m["loss"]] for key, m in metrics.items()}}))
"""


def evaluate_once(code, run_dir):
    """`evaluate` of a copy of `run_dir` by the code in `code`, in a fresh process: its RESULT line as a dict."""
    with tempfile.TemporaryDirectory(prefix="train-evaluation-") as scratch:
        copy = Path(scratch) / "run"
        shutil.copytree(run_dir, copy)
        environment = dict(os.environ, PYTHONPATH=str(Path(code).resolve()), TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run([sys.executable, "-c", WORKER, str(copy)], env=environment, capture_output=True, text=True,
                              cwd=code)  # `-c` puts the working directory first on the path
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not result:
        sys.exit(f"{code}: evaluate failed:\n{done.stderr[-3000:]}")
    return json.loads(result[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished run directory (its data must be where it was read from)")
    parser.add_argument("--code", nargs="+", default=["."], help="checkouts whose code evaluates, in turn")
    parser.add_argument("--repeats", type=int, default=2, help="tries of each checkout, interleaved")
    args = parser.parse_args()
    print(f"# {machine()}; run {args.run_dir}", flush=True)
    for repeat in range(args.repeats):
        for code in args.code:
            start = time.perf_counter()
            result = evaluate_once(code, args.run_dir)
            splits = ", ".join(f"{key} {accuracy:.5f} / {loss:.6f}" for key, (accuracy, loss) in result["metrics"].items())
            print(f"{Path(result['code']).parents[1]}: evaluate {result['seconds']:.1f} s (process {time.perf_counter() - start:.0f} s); "
                  f"accuracy / loss: {splits}", flush=True)


if __name__ == "__main__":
    main()
