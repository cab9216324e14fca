"""Epochs of the shipped BiGRU on a GPU, Keras on the JAX backend, from `benchmarks/gpu_bundle.py`'s
token ids (#36, section 4): the card, each epoch's wall time and the accuracy after it, and the same
epochs of the torch peer (`benchmarks/peers/torch_packed.py`'s BiGRU, cuDNN) on the same card.

The model is `keras_sentiment.core.recurrent.build_model` with the recipe's settings and word
vectors, trained as `make train` trains (Adam at the recipe's peak rate, held there, clipnorm 1.0,
batches of 64 by length bucket) on its 22,500 training reviews, then tested on the 25,000 test reviews. Under JAX each
batch shape compiles once: every batch is padded to its bucket's boundary (about 10 lengths) and to
the full batch size (rows of weight 0 fill a bucket's last batch), so the first epoch includes the
compiles and the second is the steady state. `--peer torch` trains the torch design on the same
batches (its own padding per batch, packed sequences; the same word vectors; its padding rows left
out) instead.

Usage (on the device; `benchmarks/gpu_epoch.sh` installs Keras from the bundle and runs both):
    KERAS_BACKEND=jax python benchmarks/gpu_epoch.py --bundle gpu_bundle --out $OUT [--peer torch]
On CPU with JAX installed the same command checks the script (`--limit 512` for a quick one).
"""

import os
import sys
import types

os.environ.setdefault("KERAS_BACKEND", "jax")
# The n-gram layer's module (registered by the recurrent module) uses TensorFlow ops, and the device
# has no TensorFlow; the recurrent model measured here does not hold that layer.
sys.modules.setdefault("keras_sentiment.core.ngrams", types.ModuleType("keras_sentiment.core.ngrams"))

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_sentiment.core.recurrent import ModelConfig, build_model  # noqa: E402
from ragged_ids import rows_of  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def load_split(arrays, name, limit=None):
    """A split's reviews as a list of uint16 id arrays and their labels (the first `limit` only)."""
    reviews = rows_of(arrays[f"{name}_ids"], arrays[f"{name}_offsets"], limit)
    return reviews, arrays[f"{name}_labels"][:len(reviews)].astype("float32")


def bucketed_batches(reviews, labels, boundaries, batch_size, rng=None):
    """Batches `(ids [batch_size, boundary], labels [batch_size, 1], weights [batch_size])`: reviews
    grouped by the first boundary that holds them and right-padded to it, a bucket's last batch filled
    with rows of weight 0, so only one shape per bucket exists; shuffled within and across buckets
    when `rng` is given."""
    bucket_of = np.searchsorted(boundaries, [len(review) for review in reviews])
    batches = []
    for bucket, width in enumerate(boundaries):
        members = np.flatnonzero(bucket_of == bucket)
        if rng is not None:
            members = rng.permutation(members)
        for start in range(0, len(members), batch_size):
            chosen = members[start:start + batch_size]
            ids = np.zeros((batch_size, width), "int32")  # [batch, boundary], 0 = padding
            for row, index in enumerate(chosen):
                ids[row, :len(reviews[index])] = reviews[index]
            batch_labels = np.zeros((batch_size, 1), "float32")
            batch_labels[:len(chosen), 0] = labels[chosen]
            weights = (np.arange(batch_size) < len(chosen)).astype("float32")
            batches.append((ids, batch_labels, weights))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def card_name():
    """The GPU's name as nvidia-smi gives it, else JAX's device kind."""
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return jax.devices()[0].device_kind


def build_recipe_model(recipe, embedding):
    config = ModelConfig(vocab_size=recipe["vocab_size"], embedding_dim=recipe["embedding_dim"],
                         hidden_dim=recipe["hidden_dim"], num_layers=recipe["num_layers"],
                         pooling=recipe["pooling"], dropout=recipe["dropout"], num_classes=2)
    model = build_model(recipe["arch"], config)
    model.get_layer("embedding").set_weights([embedding.astype("float32")])
    model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"], clipnorm=1.0),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)])
    return model


def keras_epochs(recipe, embedding, epochs, train_batches_of, test_batches):
    """Per epoch: (steps, train seconds, train accuracy, test accuracy, test seconds) of our BiGRU."""
    model = build_recipe_model(recipe, embedding)
    for epoch in range(epochs):
        batches = train_batches_of(epoch)
        start = time.perf_counter()
        history = model.fit((batch for batch in batches), steps_per_epoch=len(batches), epochs=1, verbose=2)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        _, accuracy = model.evaluate((batch for batch in test_batches), steps=len(test_batches), verbose=0)
        yield len(batches), seconds, float(history.history["accuracy"][-1]), float(accuracy), time.perf_counter() - start


def torch_epochs(recipe, embedding, epochs, train_batches_of, test_batches):
    """The same, for the torch peer's BiGRU on the GPU: each batch without its padding rows, cut to its
    longest review, packed; the same word vectors, optimizer and clipping."""
    import torch  # only this peer needs torch (on the device, beside JAX)

    from benchmarks.peers.torch_packed import BiRecurrent

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(recipe["seed"])
    model = BiRecurrent(recipe["vocab_size"], recipe["embedding_dim"], recipe["hidden_dim"], recipe["num_layers"],
                        recipe["dropout"], cell="gru", pooling=recipe["pooling"]).to(device)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(embedding.astype("float32")))
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["learning_rate"])
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def tensors(batch):
        ids, labels, weights = batch
        rows = weights > 0
        lengths = np.count_nonzero(ids[rows], axis=1)
        tokens = torch.from_numpy(ids[rows, :lengths.max()]).to(device)  # [batch, longest]
        return tokens, torch.from_numpy(lengths), torch.from_numpy(labels[rows, 0]).to(device)

    def run(batches, train):
        model.train(train)
        correct = total = 0
        with torch.set_grad_enabled(train):
            for batch in batches:
                tokens, lengths, labels = tensors(batch)
                logits = model(tokens, lengths)  # [batch]
                if train:
                    optimizer.zero_grad()
                    loss_fn(logits, labels).backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                correct += int(((logits > 0).float() == labels).sum())
                total += len(labels)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return correct / total

    for epoch in range(epochs):
        batches = train_batches_of(epoch)
        start = time.perf_counter()
        train_accuracy = run(batches, train=True)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        accuracy = run(test_batches, train=False)
        yield len(batches), seconds, train_accuracy, accuracy, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=str(ROOT / "gpu_bundle"), help="benchmarks/gpu_bundle.py's folder")
    parser.add_argument("--out", default=os.environ.get("OUT", "."),
                        help="where gpu_epoch.json (gpu_epoch_torch.json for the peer) is written, after each epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs to time (the first includes the compiles)")
    parser.add_argument("--peer", choices=("keras", "torch"), default="keras",
                        help="keras: our BiGRU on the JAX backend; torch: the torch peer's BiGRU on the same batches")
    parser.add_argument("--limit", type=int, default=None, help="only the first N reviews of each split (a check)")
    args = parser.parse_args(argv)

    bundle = Path(args.bundle)
    recipe = json.loads((bundle / "recipe.json").read_text())
    arrays = np.load(bundle / "imdb.npz")
    keras.utils.set_random_seed(recipe["seed"])
    train, test = load_split(arrays, "train", args.limit), load_split(arrays, "test", args.limit)
    boundaries = recipe["bucket_boundaries"]
    test_batches = bucketed_batches(*test, boundaries, 256)
    rng = np.random.default_rng(recipe["seed"])
    epochs_of = keras_epochs if args.peer == "keras" else torch_epochs
    result = {"peer": args.peer, "card": card_name(), "backend": keras.backend.backend(), "keras": keras.__version__,
              "jax": jax.__version__, "python": platform.python_version(), "train_reviews": len(train[1]),
              "test_reviews": len(test[1]), "batch_size": recipe["batch_size"], "arch": recipe["arch"], "epochs": []}
    if args.peer == "torch":
        result["torch"] = importlib.metadata.version("torch")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "gpu_epoch.json" if args.peer == "keras" else "gpu_epoch_torch.json"
    epochs = epochs_of(recipe, arrays["embedding"], args.epochs,
                       lambda epoch: bucketed_batches(*train, boundaries, recipe["batch_size"], rng), test_batches)
    for epoch, (steps, seconds, train_accuracy, accuracy, test_seconds) in enumerate(epochs, start=1):
        result["epochs"].append({"epoch": epoch, "train_seconds": round(seconds, 2), "steps": steps,
                                 "ms_per_step": round(1000 * seconds / steps, 1),
                                 "train_accuracy": round(train_accuracy, 4), "test_accuracy": round(accuracy, 4),
                                 "test_seconds": round(test_seconds, 2)})
        print(json.dumps(result["epochs"][-1]), flush=True)
        result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (out / name).write_text(json.dumps(result, indent=2) + "\n")  # after each epoch: a timeout keeps the rest
    print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()
