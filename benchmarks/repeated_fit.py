"""Does training get slower the more often one process trains? `make_batches` + a new model's `fit`,
repeated in one process on the same reviews, each round timed (#36).

The Python API, `--ensemble`, `--refit` and the tests train several times in one process, so a cost
that grows from one round to the next (functions traced and kept, caches, thread pools) is paid by
users, not only by the throughput benchmark. Each round: `make_batches` over the same reviews (with
its counting pass) and then one epoch of a freshly built and compiled model, as `train` builds it;
RSS after each round. The last line compares the last rounds with the first ones after warm-up.

    python benchmarks/repeated_fit.py --data-dir ../shared/data [--reviews 512] [--rounds 8] [--arch bigru]
"""

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REFERENCE, imdb_split, machine  # noqa: E402

from keras_sentiment.core.recurrent import ModelConfig, build_model  # noqa: E402
from keras_sentiment.core.vectorizer import TextEncoder, adapt_vectorizer, build_vectorizer  # noqa: E402
from keras_sentiment.run.batching import make_batches  # noqa: E402
from keras_sentiment.run.training import compile_model  # noqa: E402


def resident_mib():
    """This process's peak resident memory so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_round(encoder, texts, labels, arch, vocab_size):
    """`make_batches` then one epoch of a new model; the seconds of each."""
    start = time.perf_counter()
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
    batches = make_batches(dataset, encoder, REFERENCE["batch_size"], REFERENCE["max_length"], shuffle=True)
    batching = time.perf_counter() - start
    start = time.perf_counter()
    config = ModelConfig(vocab_size=vocab_size, embedding_dim=REFERENCE["embedding_dim"],
                         hidden_dim=REFERENCE["hidden_dim"], num_layers=1 if arch == "bigru" else REFERENCE["num_layers"],
                         pooling="max" if arch == "bigru" else REFERENCE["pooling"])
    model = build_model(arch, config)
    compile_model(model, keras.optimizers.Adam(REFERENCE["learning_rate"], clipnorm=1.0))
    model.fit(batches, epochs=1, shuffle=False, verbose=0)
    return batching, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--reviews", type=int, default=512, help="reviews per round (IMDB valid split)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds in this one process")
    parser.add_argument("--arch", default="bigru", choices=("bigru", "bilstm"),
                        help="bigru: the shipped recipe's model; bilstm: the throughput reference")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    vocab_texts, _ = imdb_split(args.data_dir, "train")
    texts, labels = (part[: args.reviews] for part in imdb_split(args.data_dir, "valid"))
    vectorizer = adapt_vectorizer(build_vectorizer(REFERENCE["vocab_size"]), tf.data.Dataset.from_tensor_slices(vocab_texts))
    encoder = TextEncoder(vectorizer, REFERENCE["max_length"])
    print(f"{machine()}; {args.reviews} reviews a round, {args.arch}, max length {REFERENCE['max_length']}")
    print("round  make_batches_s  fit_s  peak_rss_mib")
    rounds = []
    for index in range(args.rounds):
        batching, fitting = one_round(encoder, texts, labels, args.arch, vectorizer.vocabulary_size())
        rounds.append((batching, fitting))
        print(f"{index + 1:5d}  {batching:14.2f}  {fitting:5.2f}  {resident_mib():12.0f}", flush=True)
    half = max((len(rounds) - 1) // 2, 1)
    early, late = rounds[1:1 + half], rounds[-half:]  # round 1 pays the first traces
    for name, column in (("make_batches", 0), ("fit", 1)):
        first, last = statistics.median(r[column] for r in early), statistics.median(r[column] for r in late)
        print(f"{name}: median {first:.2f} s in rounds 2-{1 + half}, {last:.2f} s in the last {half} "
              f"(x{last / first:.2f})")


if __name__ == "__main__":
    main()
