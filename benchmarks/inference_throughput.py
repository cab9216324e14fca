"""Inference throughput: our exported SavedModel against peer (1), on the 25,000 IMDB test reviews.

- `ours`: the SavedModel (`--model`, an export base or version: the one `make train` ships, or
  one of the reference BiLSTM) loaded as `keras-sentiment score` loads it, scoring raw strings in
  batches sorted by length within windows of 8 batches (`keras_sentiment.apps.scoring.score_texts`);
  vectorizing is inside the graph. The worker sizes TensorFlow's threads as `score` does for that
  export (`keras_sentiment.run.threads`).
- `torch_packed`: the seeds' PyTorch design (`benchmarks/peers/torch_packed.py`) in eval mode
  under `torch.no_grad()`: its tokenizer, padding per batch, `pack_padded_sequence`, with the
  dimensions of `--peer-model` (`shipped`: the BiGRU with max pooling at 800 tokens, as `make
  train` ships it, without the n-gram part; `reference`: the 2-layer BiLSTM at 400, issue #5's).
  Its weights are untrained (the speed of a forward pass does not depend on them).

Both score the same reviews in the same order with the same batch size, each in its own worker
process, interleaved, the median of `--repeats` timed runs after a warm-up. Timed: raw strings
in memory -> probabilities in memory (file reading and TensorFlow start-up are not included).

    python benchmarks/inference_throughput.py --data-dir ../shared/data --model saved_models/imdb_bilstm

The last line is `ratio_vs_torch_packed=X` (ours over peer, reviews/s).
"""

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS, WorkerProcess, imdb_split, machine  # noqa: E402

DESIGNS = ("ours", "torch_packed")


def worker(args):
    with open(args.work_file, "rb") as handle:
        work = pickle.load(handle)
    texts, batch_size = work["texts"], work["batch_size"]
    if args.worker == "ours":
        from keras_sentiment.run.threads import set_scoring_threads

        set_scoring_threads(work["model"])  # before TensorFlow starts, as `score` does
        from keras_sentiment.run.loading import load_scorer
        from keras_sentiment.core.scorer import score_texts

        scorer = load_scorer(work["model"])
        window = batch_size * 8

        def run(items):
            for start in range(0, len(items), window):
                score_texts(scorer, items[start : start + window], batch_size)
    else:
        import torch

        from peers import torch_packed

        torch.set_num_threads(os.cpu_count())
        config = MODELS[work["peer_model"]]
        vocab = torch_packed.build_vocab(work["vocab_texts"], config["vocab_size"])
        model, _ = torch_packed.make_model(config["vocab_size"], config)

        def run(items):
            torch_packed.predict_from_text(model, vocab, items, batch_size, config["max_length"])

    run(texts[: batch_size * 8])  # warm-up: tracing, allocator
    print("READY", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        run(texts)
        print("RESULT " + json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder holding aclImdb/ or aclImdb_v1.tar.gz")
    parser.add_argument("--model", help="our SavedModel: export base (latest version) or version dir")
    parser.add_argument("--peer-model", choices=sorted(MODELS), default="shipped",
                        help="the torch peer's dimensions: those of make train's BiGRU, or the reference BiLSTM")
    parser.add_argument("--batch-size", type=int, default=256, help="reviews per batch, both designs")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per design")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test reviews (quick check)")
    parser.add_argument("--output", help="also write the results as JSON here")
    WorkerProcess.add_flags(parser, DESIGNS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not (args.data_dir and args.model):
        parser.error("--data-dir and --model are required")

    with tempfile.TemporaryDirectory() as tmp:
        vocab_texts, _ = imdb_split(args.data_dir, "train")
        texts, _ = imdb_split(args.data_dir, "test")
        texts = texts[: args.limit] if args.limit else texts
        work_file = Path(tmp) / "work.pkl"
        with open(work_file, "wb") as handle:
            pickle.dump({"texts": texts, "vocab_texts": vocab_texts, "batch_size": args.batch_size,
                         "model": str(Path(args.model).resolve()), "peer_model": args.peer_model}, handle)
        print(f"{machine()}\n{len(texts):,} test reviews, batch {args.batch_size}, model {args.model}, "
              f"peer {args.peer_model}", flush=True)
        workers = {name: WorkerProcess(__file__, name, work_file) for name in DESIGNS}
        runs = {name: [] for name in DESIGNS}
        for repeat in range(args.repeats):
            for name in DESIGNS if repeat % 2 == 0 else DESIGNS[::-1]:
                runs[name].append(workers[name].run("score")["seconds"])
            print(f"repeat {repeat + 1}: " + ", ".join(f"{n} {runs[n][-1]:.1f} s" for n in DESIGNS), flush=True)
        for process in workers.values():
            process.close()

    rates = {name: len(texts) / statistics.median(r) for name, r in runs.items()}
    print("\n| design | median s | reviews/s | runs (s) |\n| --- | --- | --- | --- |")
    for name in DESIGNS:
        print(f"| {name} | {statistics.median(runs[name]):.1f} | {rates[name]:,.0f} | "
              f"{', '.join(f'{r:.1f}' for r in runs[name])} |")
    if args.output:
        Path(args.output).write_text(json.dumps({"machine": machine(), "args": vars(args), "runs": runs,
                                                 "reviews_per_second": rates}, indent=2))
    print(f"\nratio_vs_torch_packed={rates['ours'] / rates['torch_packed']:.2f}")


if __name__ == "__main__":
    main()
