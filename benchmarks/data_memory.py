"""Peak memory of reading a user's training file, as the file grows (issue #35: "memory stays flat").

For each size, a generated CSV of that many megabytes (short labelled reviews, two classes) is
prepared for training in a fresh process the way `train --train-file F` does before its first step:
the file read and split (`prepare_data`; a file above `--stream-above-mb` is scanned once and then
streamed from disk), the vocabulary adapted on the training split (a streamed file's: on its
sample) and the training batches built (`EpochBatches`: its counting pass fills its cache, on disk
for a streamed file). Each row: the file size, the examples, whether it was streamed, the peak
resident memory (ru_maxrss) of that process and its wall time. Flat memory means the peak stays
about the same from 100 MB to 1 GB.

    python benchmarks/data_memory.py --sizes-mb 100 1000 [--stream-above-mb 0] --work-dir /tmp/data_memory
"""

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks.common import machine  # noqa: E402

WORDS = ("the film was a story of plot acting scenes music director cast ending great awful good bad boring "
         "superb dull moving fine long short funny sad").split()


def generated_csv(path, megabytes, seed=0):
    """A CSV of `megabytes` MB of (text, label) rows: 20-60 random words, labels "neg"/"pos"; written once."""
    if path.exists():
        return path
    rng, target, written = random.Random(seed), megabytes * 1_000_000, 0
    with open(path.with_suffix(".tmp"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        while written < target:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60)))
            writer.writerow([text, rng.choice(("neg", "pos"))])
            written += len(text) + 5
    path.with_suffix(".tmp").rename(path)
    return path


def prepare_once(train_file, stream_above_mb=None):
    """In this process: what `train --train-file F` does before its first step; prints a JSON row."""
    from keras_sentiment.run import streamed
    from keras_sentiment.run.batching import EpochBatches
    from keras_sentiment.run.settings import architecture_module, resolve_settings
    from keras_sentiment.run.training import prepare_data, streamed_cache

    if stream_above_mb is not None:
        streamed.STREAM_ABOVE_BYTES = int(stream_above_mb * 2**20)
    start = time.perf_counter()
    settings = resolve_settings({"train_file": str(train_file), "arch": "gru"})
    splits = prepare_data(settings)
    with tempfile.TemporaryDirectory(dir=Path(train_file).parent) as run_dir:  # the disk cache beside the file
        encoder = architecture_module("gru").build_encoder(settings, splits.bounded("train"), run_dir)
        batches = EpochBatches(splits.train, encoder, settings.batch_size, settings.max_length, seed=settings.seed,
                               cache_file=streamed_cache(splits, run_dir, "train"))
    print(json.dumps({"examples": splits.sizes["train"] + splits.sizes["valid"], "batches": batches.per_epoch,
                      "streamed": splits.streamed, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": time.perf_counter() - start}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000], help="file sizes to measure, in MB")
    parser.add_argument("--stream-above-mb", type=float, default=None,
                        help="stream files above this size (default: the package's STREAM_ABOVE_BYTES, 256 MiB); "
                             "0 streams every size, to see the streamed path alone grow")
    parser.add_argument("--work-dir", default="/tmp/data_memory", help="where the generated files are kept")
    parser.add_argument("--prepare", help=argparse.SUPPRESS)  # the child process: prepare this file
    args = parser.parse_args(argv)
    if args.prepare:
        return prepare_once(args.prepare, args.stream_above_mb)
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    print(f"| file | examples | read | peak memory | time |  ({machine()})\n| --- | --- | --- | --- | --- |", flush=True)
    for size in args.sizes_mb:
        train_file = generated_csv(Path(args.work_dir) / f"reviews_{size}mb.csv", size)
        stream = [] if args.stream_above_mb is None else ["--stream-above-mb", str(args.stream_above_mb)]
        child = subprocess.run([sys.executable, __file__, "--prepare", str(train_file), *stream], capture_output=True,
                               text=True)
        if child.returncode:
            sys.exit(f"{train_file}: preparing failed:\n{child.stderr[-2000:]}")
        row = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"| {size} MB | {row['examples']:,} | {'streamed' if row['streamed'] else 'in memory'} | "
              f"{row['peak_mib']:,.0f} MiB | {row['seconds']:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
