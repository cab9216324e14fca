"""What the frozen MiniLM features can give the GRU head (issue #12 §2), measured on SST-2's valid split.

The encoder runs once: every hidden state it computes (the embeddings' output and each of the
transformer layers', `[batch, seq_len, layers + 1, bert_dim]`, float16, plus the last layer in
float32) is cached on disk for the train, valid and test (GLUE dev) splits, batched exactly as
`train --cache-encoder` batches them. Each variant then trains only the `bert_gru` head on those
states for a fixed number of epochs, with the training command's optimizer (Adam, clipnorm 1.0),
learning-rate halving on `val_accuracy` and epoch order, and records valid accuracy per epoch:

- which states the head reads: the last layer (what `bert_gru` does), one lower layer, or a learned
  softmax-weighted mix of the top K (ELMo's scalar mix: `gamma * sum_k softmax(w)_k h_k`);
- head width, dropout and learning rate;
- the last layer cached in float16 vs float32 (does `--cache-dtype float16` cost accuracy?).

The test split is read once, only with `--report-test`, for the variant with the best valid accuracy.
Results accumulate in `WORK_DIR/results.jsonl` (a variant already there is not run again, so a
killed run continues where it stopped) and are printed as a Markdown table.

    python benchmarks/frozen_features.py --data-dir ../shared/data --work-dir /tmp/frozen_study \\
        --variants last16 mix7 last32 --epochs 6 --report-test
"""

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine  # noqa: E402
from keras_sentiment.core.bert import BertHiddenStates, BertTextEncoder, build_bert_gru_head, load_bert  # noqa: E402
from keras_sentiment.run.training import EpochTimer, compile_model, learning_rate_halving  # noqa: E402
from keras_sentiment.run.batching import EpochBatches, concatenate_epochs, epoch_order_seed, make_batches  # noqa: E402
from keras_sentiment.run.sources import load_dataset


@dataclass(frozen=True)
class Variant:
    """One head configuration. `states`: "last", "layer:K" (hidden state K, 0 = embeddings) or "mix:K" (top K mixed)."""

    states: str = "last"
    hidden_dim: int = 256
    dropout: float = 0.25
    learning_rate: float = 1e-3
    dtype: str = "float16"


BASE = Variant()  # the bert_gru head as `train --trainable-layers 0 --cache-encoder --cache-dtype float16` builds it
VARIANTS = {
    "last16": BASE,
    "last32": replace(BASE, dtype="float32"),
    "mix7": replace(BASE, states="mix:7"),
    "mix4": replace(BASE, states="mix:4"),
    "layer4": replace(BASE, states="layer:4"),
    "mix7_h128": replace(BASE, states="mix:7", hidden_dim=128),
    "mix7_d05": replace(BASE, states="mix:7", dropout=0.5),
    "mix7_lr3e-4": replace(BASE, states="mix:7", learning_rate=3e-4),
    "last_h128": replace(BASE, hidden_dim=128),
    "last_d05": replace(BASE, dropout=0.5),
    "last_lr3e-4": replace(BASE, learning_rate=3e-4),
}


# === Features: the encoder, once ===


def cache_features(data_dir, work_dir, batch_size, max_length, seed):
    """`{split: dataset of ((states16, last32, mask), labels)}`, computed once into `work_dir/features`."""
    folder = Path(work_dir) / "features"
    done = folder / "done.json"
    splits = load_dataset("sst2", data_dir, "auto", seed)
    tokenizer, backbone = load_bert()
    encoder = BertTextEncoder(tokenizer, max_length)
    train_batches = EpochBatches(splits.train, encoder, batch_size, max_length, seed=seed)
    batches = {
        "train": train_batches.epoch(0),
        "valid": make_batches(splits.valid, encoder, batch_size, max_length),
        "test": make_batches(splits.test, encoder, batch_size, max_length),
    }
    if not done.exists():  # a half-written cache would be read back silently
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    states_of = stacked_states(backbone)
    cached = {}
    for name, data in batches.items():
        cached[name] = data.map(states_of).cache(str(folder / name))
    if not done.exists():
        for name, data in cached.items():
            started = time.perf_counter()
            print(f"features: {name}", flush=True)
            progress = keras.utils.Progbar(train_batches.per_epoch if name == "train" else None)
            for _ in data:  # iterating writes the cache
                progress.add(1)
            print(f"features: {name}: {time.perf_counter() - started:.0f} s", flush=True)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        done.write_text(json.dumps({"bytes": size, "num_states": backbone.num_layers + 1,
                                    "train_batches": train_batches.per_epoch}))
    return cached, json.loads(done.read_text())


def stacked_states(backbone):
    """A function `(ids, labels) -> ((states16 [b, s, layers + 1, dim], last32 [b, s, dim], mask), labels)`."""
    every_state = BertHiddenStates(backbone, backbone.num_layers + 1)

    def states(token_ids, labels):
        stacked = every_state(token_ids, training=False)  # [batch, seq_len, layers + 1, dim]
        return (tf.cast(stacked, tf.float16), stacked[:, :, -1], tf.not_equal(token_ids, 0)), labels

    return states


# === Heads: one per variant ===


def head_states(variant):
    """`(state indices the head reads, how many it mixes)`: one state (mixes 1), or the top K (mixes K)."""
    kind, _, count = variant.states.partition(":")
    if variant.dtype == "float32":
        if kind != "last":
            raise SystemExit(f"{variant}: only the last layer is cached in float32")
        return None, 1
    if kind == "mix":
        return slice(-int(count), None), int(count)
    return (-1 if kind == "last" else int(count)), 1


def build_head(variant, bert_dim=384):
    """The `bert_gru` head as the training command builds it (`--encoder-states K` for a mix of K)."""
    _, mixed = head_states(variant)
    return build_bert_gru_head(bert_dim, variant.hidden_dim, 2, variant.dropout, num_states=mixed)


def inputs_for(variant):
    """`((states16, last32, mask), labels)` -> `((what the head reads, float32, mask), labels)`."""
    index, _ = head_states(variant)

    def select(inputs, labels):
        states16, last32, mask = inputs
        states = last32 if index is None else tf.cast(states16[:, :, index], tf.float32)
        return (states, mask), labels

    return select


def train_variant(name, variant, features, info, epochs, seed, work_dir):
    """Valid accuracy and loss per epoch; the best epoch's weights in `work_dir/NAME.weights.h5`."""
    keras.utils.set_random_seed(seed)
    steps_per_epoch = info["train_batches"]
    model = build_head(variant)
    compile_model(model, keras.optimizers.Adam(variant.learning_rate, clipnorm=1.0))
    select = inputs_for(variant)
    train = features["train"].map(select)
    valid = features["valid"].map(select).prefetch(2)
    weights = Path(work_dir) / f"{name}.weights.h5"
    callbacks = [
        learning_rate_halving("val_accuracy"),
        keras.callbacks.ModelCheckpoint(str(weights), monitor="val_accuracy", save_best_only=True, save_weights_only=True),
    ]
    def train_epoch(epoch):  # the training command's order: the first epoch's batches, reshuffled per epoch
        return train.shuffle(32, seed=epoch_order_seed(seed, epoch), reshuffle_each_iteration=False)

    # One fit over every epoch, so that ReduceLROnPlateau keeps its state from epoch to epoch.
    logs = model.fit(concatenate_epochs(train_epoch, 0, epochs), steps_per_epoch=steps_per_epoch, epochs=epochs,
                     validation_data=valid, callbacks=[EpochTimer(), *callbacks], shuffle=False, verbose=2).history
    history = {key: [round(float(v), 5) for v in logs[key]] for key in ("val_accuracy", "val_loss", "accuracy")}
    history["epoch_learning_rate"] = [float(f"{v:.3g}") for v in logs["learning_rate"]]
    history["seconds"] = [round(float(v), 1) for v in logs["epoch_seconds"]]
    best = max(range(epochs), key=lambda e: history["val_accuracy"][e])
    result = {"variant": name, **asdict(variant), "epochs": epochs, "best_epoch": best + 1,
              "best_val_accuracy": history["val_accuracy"][best], **history}
    if variant.states.startswith("mix"):  # the mix the best epoch learned
        model.load_weights(str(weights))
        mix = model.get_layer("scalar_mix")
        result["mix_weights"] = [round(w, 4) for w in mix.state_weights()]
        result["mix_gamma"] = round(float(mix.gamma), 4)
    return result, model


def report_test(best, features, work_dir):
    """Test (GLUE dev) accuracy of the variant chosen on valid, with its best epoch's weights."""
    variant = Variant(**{k: best[k] for k in asdict(BASE)})
    model = build_head(variant)
    model.load_weights(str(Path(work_dir) / f"{best['variant']}.weights.h5"))
    compile_model(model, "adam")  # the loss and metric of training; nothing trains here
    loss, accuracy = model.evaluate(features["test"].map(inputs_for(variant)), verbose=0)
    return {"variant": best["variant"], "test_accuracy": round(float(accuracy), 5), "test_loss": round(float(loss), 5)}


def markdown_table(results):
    rows = ["| variant | states | hidden | dropout | lr | cache | valid accuracy by epoch | best (epoch) | s/epoch |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        curve = ", ".join(f"{100 * a:.2f}" for a in r["val_accuracy"])
        seconds = sorted(r["seconds"])[len(r["seconds"]) // 2]
        rows.append(f"| {r['variant']} | {r['states']} | {r['hidden_dim']} | {r['dropout']} | {r['learning_rate']:g} | "
                    f"{r['dtype']} | {curve} | **{100 * r['best_val_accuracy']:.2f}%** ({r['best_epoch']}) | {seconds:.0f} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding SST-2/{train,dev}.tsv")
    parser.add_argument("--work-dir", required=True, help="feature cache (GBs) and results.jsonl")
    parser.add_argument("--variants", nargs="+", default=["last16", "mix7", "last32"], choices=sorted(VARIANTS),
                        help="head variants to train, in this order (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per variant (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="as train's default (default: %(default)s)")
    parser.add_argument("--max-length", type=int, default=512, help="word pieces per sentence (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1234, help="split, epoch order and initialisation (default: %(default)s)")
    parser.add_argument("--report-test", action="store_true", help="after training, evaluate the best-on-valid variant on test")
    args = parser.parse_args(argv)

    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine()}", flush=True)
    features, info = cache_features(args.data_dir, work_dir, args.batch_size, args.max_length, args.seed)
    print(f"features: {info['bytes'] / 2**30:.2f} GiB, {info['num_states']} states per word piece", flush=True)
    results_file = work_dir / "results.jsonl"
    results = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    for name in args.variants:
        if any(r["variant"] == name and r["epochs"] == args.epochs for r in results):
            continue
        print(f"=== {name}: {VARIANTS[name]}", flush=True)
        result, _ = train_variant(name, VARIANTS[name], features, info, args.epochs, args.seed, work_dir)
        with open(results_file, "a") as handle:
            handle.write(json.dumps(result) + "\n")
        results.append(result)
    chosen = [r for r in results if r["variant"] in args.variants and r["epochs"] == args.epochs]
    print(markdown_table(chosen), flush=True)
    if args.report_test and chosen:
        best = max(chosen, key=lambda r: r["best_val_accuracy"])
        print(f"Test (chosen on valid): {json.dumps(report_test(best, features, work_dir))}", flush=True)


if __name__ == "__main__":
    main()
