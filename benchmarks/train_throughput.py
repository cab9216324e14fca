"""Training throughput of ours against two peers, on the same real IMDB reviews, in one run.

Designs, all with one configuration: `--model reference` (`common.REFERENCE`: 2-layer bidirectional
LSTM, final states, embedding 100, hidden 128, vocabulary 25,000, max length 400, batch 64, Adam) or
`--model shipped` (`common.SHIPPED`: the model `make train` ships, one BiGRU layer with max pooling
over the states, 800 tokens; the peers build the same):

- `ours`: `keras_sentiment` as `train` runs it: `make_batches` (vectorize inside `tf.data`,
  cache, shuffle, length buckets) + the masked model + `model.fit` (the shipped BiGRU by the packed
  recurrence, `keras_sentiment.core.packed_training`, as `train` fits it).
- `torch_packed`: peer (1), `benchmarks/peers/torch_packed.py`: the seeds' PyTorch design on CPU
  (own tokenizer, padding per batch, `pack_padded_sequence`).
- `fixed_padding`: peer (2), `benchmarks/peers/keras_fixed_padding.py`: keras-io style,
  `pad_sequences` to 400, no buckets, no mask.

Each design runs in its own worker process (no thread pools of one library next to another's),
set up (vocabulary, model) and warmed up once; then the driver interleaves them: each round runs
every design once end to end (raw text -> tokens -> batches -> training steps over the same
reviews) and once model-only (identical token-id batches, made once with our vectorizer; the
fixed-padding peer pads them to the max length as its design requires), rotating the order each round.
Reported: the median of the timed rounds, as reviews/s and real (non-padding) tokens/s, real
tokens being the reviews' tokens after truncation to the max length (counted once, with our vectorizer).

    python benchmarks/train_throughput.py --data-dir ../shared/data [--quick] [--model shipped]

The last line is `ratio_vs_torch_packed=X ratio_vs_fixed_padding=Y`: ours over each peer, end to
end (reviews/s); the line before it gives the same without the time `fit` spends after `on_train_end` (its
tf.data iterator's teardown), which has cost the Keras designs up to 5 s a call on some machines.
"""

import argparse
import contextlib
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

DESIGNS = ("ours", "torch_packed", "fixed_padding")
MODES = ("end_to_end", "model_only")
TRAIN_ENDS = []  # when Keras' fit in this worker reached on_train_end (perf_counter); see `fit_clock`


def fit_clock():
    """A Keras callback that notes when `fit` reaches `on_train_end`. What `fit` spends after it (its
    tf.data iterator's teardown, in 5.1-s steps on some runs: docs/PERFORMANCE.md) is reported apart."""
    import keras

    class TrainEndClock(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            TRAIN_ENDS.append(time.perf_counter())

    return TrainEndClock()


# ------------------------------------------------------------------------------------ workers


class Ours:
    def __init__(self, vocab_texts, options):
        import keras
        import tensorflow as tf

        from keras_sentiment.core.recurrent import ModelConfig, build_model
        from keras_sentiment.core.packed_training import fitted_by_packed_recurrence
        from keras_sentiment.run.training import compile_model
        from keras_sentiment.core.vectorizer import TextEncoder, adapt_vectorizer, build_vectorizer

        self.tf, self.num_buckets, self.config = tf, options.buckets, MODELS[options.model]
        keras.utils.set_random_seed(0)
        vectorizer = build_vectorizer(vocab_size=self.config["vocab_size"])
        adapt_vectorizer(vectorizer, tf.data.Dataset.from_tensor_slices(vocab_texts))
        self.encoder = TextEncoder(vectorizer, self.config["max_length"])
        config = ModelConfig(vocab_size=vectorizer.vocabulary_size(), embedding_dim=self.config["embedding_dim"],
                             hidden_dim=self.config["hidden_dim"], num_layers=self.config["num_layers"],
                             pooling=self.config["pooling"])
        self.model = build_model(self.config["arch"], config)
        compile_model(self.model, keras.optimizers.Adam(self.config["learning_rate"], clipnorm=1.0))  # as `train` compiles
        if options.jit_compile:
            self.model.jit_compile = True  # Keras leaves XLA off on CPU-only machines
        # As `train` fits: a GRU with max pooling (the shipped model) by the packed recurrence, others by Keras' layers.
        self.fitting = contextlib.ExitStack()
        self.packed = self.fitting.enter_context(fitted_by_packed_recurrence(self.model))

    def end_to_end(self, texts, labels):
        from keras_sentiment.run.batching import default_bucket_boundaries, make_batches

        dataset = self.tf.data.Dataset.from_tensor_slices((texts, labels))
        boundaries = default_bucket_boundaries(self.config["max_length"], self.num_buckets)
        batches = make_batches(dataset, self.encoder, self.config["batch_size"], self.config["max_length"], shuffle=True,
                               bucket_boundaries=boundaries)
        self.model.fit(batches, epochs=1, verbose=0, callbacks=[fit_clock()])

    def model_only(self, batches):
        from keras_sentiment.run.batching import without_autotuning

        tf = self.tf
        dataset = tf.data.Dataset.from_generator(
            lambda: iter(batches),
            output_signature=(tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)))
        # As `train` feeds Keras: with autotuning on, this run's iterator, freed later by the garbage
        # collector, stalled the next end-to-end run for ~4 s (docs/PERFORMANCE.md, "Training again and again").
        self.model.fit(without_autotuning(dataset.prefetch(2)), epochs=1, verbose=0, callbacks=[fit_clock()])


class TorchPacked:
    def __init__(self, vocab_texts, options):
        import torch

        from peers import torch_packed

        self.peer, self.config = torch_packed, MODELS[options.model]
        torch.set_num_threads(os.cpu_count())
        self.vocab = torch_packed.build_vocab(vocab_texts, self.config["vocab_size"])
        self.model, self.optimizer = torch_packed.make_model(self.config["vocab_size"], self.config)

    def end_to_end(self, texts, labels):
        self.peer.train_from_text(self.model, self.optimizer, self.vocab, texts, labels, self.config["batch_size"],
                                  self.config["max_length"])

    def model_only(self, batches):
        collated = (self.peer.collate([row[row != 0].tolist() for row in ids], labels.tolist()) for ids, labels in batches)
        self.peer.train_batches(self.model, self.optimizer, collated)


class FixedPadding:
    def __init__(self, vocab_texts, options):
        import keras

        from peers import keras_fixed_padding

        keras.utils.set_random_seed(0)
        self.peer, self.config = keras_fixed_padding, MODELS[options.model]
        self.vectorizer = keras_fixed_padding.build_vectorizer(vocab_texts, self.config["vocab_size"])
        self.model = keras_fixed_padding.build_model(self.config["vocab_size"], self.config)

    def end_to_end(self, texts, labels):
        self.peer.train_from_text(self.model, self.vectorizer, texts, labels, self.config["batch_size"],
                                  self.config["max_length"], callbacks=[fit_clock()])

    def model_only(self, batches):
        import keras
        import numpy as np

        x = np.concatenate([keras.utils.pad_sequences([r[r != 0].tolist() for r in ids], maxlen=self.config["max_length"])
                            for ids, _ in batches])
        y = np.concatenate([labels for _, labels in batches]).astype("float32")
        self.model.fit(x, y, batch_size=self.config["batch_size"], epochs=1, shuffle=False, verbose=0,
                       callbacks=[fit_clock()])


WORKERS = {"ours": Ours, "torch_packed": TorchPacked, "fixed_padding": FixedPadding}


def worker(args):
    """Set up one design, then answer `end_to_end` / `model_only` commands with timings."""
    with open(args.work_file, "rb") as handle:
        work = pickle.load(handle)
    design = WORKERS[args.worker](work["vocab_texts"], args)
    print("READY", flush=True)
    for command in sys.stdin:
        mode = command.strip()
        TRAIN_ENDS.clear()
        start = time.perf_counter()
        if mode == "end_to_end":
            design.end_to_end(work["texts"], work["labels"])
        else:
            design.model_only(work["batches"])
        end = time.perf_counter()
        print("RESULT " + json.dumps({"seconds": end - start, "teardown_seconds": end - TRAIN_ENDS[-1] if TRAIN_ENDS else 0.0}),
              flush=True)


# ------------------------------------------------------------------------------------- driver


def prepare_work(args, folder):
    import random

    import numpy as np

    from keras_sentiment.core.vectorizer import TextEncoder, adapt_vectorizer, build_vectorizer
    import tensorflow as tf

    config = MODELS[args.model]
    vocab_texts, _ = imdb_split(args.data_dir, "train")
    texts, labels = imdb_split(args.data_dir, "valid")  # reviews the vocabulary never saw
    rng = random.Random(0)
    batch_size = config["batch_size"]
    index = rng.sample(range(len(texts)), min(len(texts), args.steps * batch_size))
    texts, labels = [texts[i] for i in index], [labels[i] for i in index]
    vectorizer = build_vectorizer(vocab_size=config["vocab_size"])
    adapt_vectorizer(vectorizer, tf.data.Dataset.from_tensor_slices(vocab_texts))
    encoder = TextEncoder(vectorizer, config["max_length"])
    batches, tokens = [], 0
    for start in range(0, len(texts), batch_size):
        ids = encoder(tf.constant(texts[start : start + batch_size])).numpy()  # [64, longest <= max_length]
        tokens += int(np.count_nonzero(ids))
        batches.append((ids, np.asarray(labels[start : start + batch_size], "int32")))
    work_file = folder / "work.pkl"
    with open(work_file, "wb") as handle:
        pickle.dump({"vocab_texts": vocab_texts, "texts": texts, "labels": labels, "batches": batches}, handle)
    return work_file, len(texts), tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder holding aclImdb/ or aclImdb_v1.tar.gz")
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats: under 15 minutes on 2 cores")
    parser.add_argument("--steps", type=int, default=None, help="batches of 64 per timed run (default 20; quick 8)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds after the warm-up (default 5; quick 3)")
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=DESIGNS, help="designs to time")
    parser.add_argument("--model", default="reference", choices=sorted(MODELS),
                        help="reference: issue #5's 2-layer BiLSTM at 400 tokens; shipped: make train's BiGRU with max "
                             "pooling at 800 tokens (every design builds the same)")
    parser.add_argument("--jit-compile", action="store_true", help="ours: compile the train step with XLA")
    parser.add_argument("--buckets", type=int, default=10, help="ours: number of length buckets (train's default 10)")
    parser.add_argument("--output", help="also write the results as JSON here")
    WorkerProcess.add_flags(parser, DESIGNS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not args.data_dir:
        parser.error("--data-dir is required")
    args.steps = args.steps or (8 if args.quick else 20)
    args.repeats = args.repeats or (3 if args.quick else 5)

    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work_file, num_reviews, num_tokens = prepare_work(args, Path(tmp))
        print(f"{machine()}\n{args.model}: {MODELS[args.model]}\n{num_reviews} reviews ({num_tokens:,} real tokens) per run, "
              f"{args.repeats} timed rounds after 1 warm-up", flush=True)
        extra = ["--buckets", str(args.buckets), "--model", args.model] + (["--jit-compile"] if args.jit_compile else [])
        workers = {name: WorkerProcess(__file__, name, work_file, extra) for name in args.designs}
        times = {(name, mode): [] for name in args.designs for mode in MODES}
        teardowns = {(name, mode): [] for name in args.designs for mode in MODES}
        for round_index in range(args.repeats + 1):
            shift = round_index % len(args.designs)
            for name in args.designs[shift:] + args.designs[:shift]:
                for mode in MODES:
                    result = workers[name].run(mode)
                    seconds, teardown = result["seconds"], result["teardown_seconds"]
                    print(f"  round {round_index} {name} {mode}: {seconds:.2f} s (fit's teardown {teardown:.2f} s)",
                          flush=True)
                    if round_index:  # round 0 is the warm-up (tracing, caches, allocator)
                        times[name, mode].append(seconds)
                        teardowns[name, mode].append(teardown)
            print(f"round {round_index}{' (warm-up)' if not round_index else ''} done at "
                  f"{time.time() - started:.0f} s", flush=True)
        for process in workers.values():
            process.close()

    results = {}
    print("\n| design | mode | median s | reviews/s | real tokens/s | runs (s) | without fit's teardown, median s |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for (name, mode), runs in times.items():
        median = statistics.median(runs)
        without_teardown = statistics.median(r - t for r, t in zip(runs, teardowns[name, mode]))
        results[f"{name}/{mode}"] = {"median_seconds": median, "reviews_per_second": num_reviews / median,
                                     "tokens_per_second": num_tokens / median, "runs": runs,
                                     "teardowns": teardowns[name, mode], "median_seconds_without_teardown": without_teardown}
        print(f"| {name} | {mode} | {median:.2f} | {num_reviews / median:,.0f} | {num_tokens / median:,.0f} | "
              f"{', '.join(f'{r:.2f}' for r in runs)} | {without_teardown:.2f} |")
    if args.output:
        Path(args.output).write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results}, indent=2))

    def ratio(peer, mode="end_to_end", seconds="median_seconds"):
        """Ours over `peer` in speed: the peer's median seconds over ours (`seconds`: which median)."""
        key = f"{peer}/{mode}"
        if key not in results or f"ours/{mode}" not in results:
            return float("nan")
        return results[key][seconds] / results[f"ours/{mode}"][seconds]

    print(f"\nmodel-only: ours/torch_packed={ratio('torch_packed', 'model_only'):.2f} "
          f"ours/fixed_padding={ratio('fixed_padding', 'model_only'):.2f}")
    print(f"without fit's teardown: ratio_vs_torch_packed={ratio('torch_packed', seconds='median_seconds_without_teardown'):.2f} "
          f"ratio_vs_fixed_padding={ratio('fixed_padding', seconds='median_seconds_without_teardown'):.2f}")
    print(f"ratio_vs_torch_packed={ratio('torch_packed'):.2f} ratio_vs_fixed_padding={ratio('fixed_padding'):.2f}")


if __name__ == "__main__":
    main()
