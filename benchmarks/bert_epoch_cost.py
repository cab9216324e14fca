"""What a full IMDB `bert_gru` run costs on this machine for each `--trainable-layers`: which one fits a session?

A frozen or partly fine-tuned run with `--cache-encoder` computes the frozen lower part of the
encoder once (epoch 1) and then trains only the part above it; fine-tuning every layer runs the
whole model forward and backward every epoch. This measures, per review, on a seeded random
sample of IMDB's training reviews batched as `train` batches them (length buckets, the model,
optimizer and split built by `keras_sentiment` itself):

- `frozen_forward`: the frozen lower part's forward pass (the cache write; 0 when every layer trains),
- `trained_step`: one training step of the part that trains (head + top N layers, or the whole model),
- `trained_forward`: that part's forward pass (valid accuracy from the cache),
- `model_forward`: the whole model's forward pass (the final valid and test evaluation),

each timed on a second pass over the same batches (the first traces every batch shape), and
projects a run of `--epochs` epochs over IMDB's 17,500 train / 7,500 valid / 25,000 test reviews:

    epoch 1   = 17,500 x (frozen_forward + trained_step) + 7,500 x (frozen_forward + trained_forward)
    epoch k   = 17,500 x trained_step + 7,500 x trained_forward
    evaluation = (25,000 + 7,500) x model_forward

    python benchmarks/bert_epoch_cost.py --data-dir ../shared/data --trainable-layers 0 1 2 all
    python benchmarks/bert_epoch_cost.py --data-dir ../shared/data --trainable-layers all --max-length 256
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import machine  # noqa: E402
from keras_sentiment.core import bert  # noqa: E402
from keras_sentiment.run.sources import load_dataset  # noqa: E402
from keras_sentiment.run.batching import make_batches
from keras_sentiment.run.settings import resolve_settings  # noqa: E402
from keras_sentiment.run.training import compile_model  # noqa: E402

def bert_gru_settings(args, trainable_layers="0"):
    """`train`'s resolved settings for bert_gru on IMDB (`--cache-encoder` unless every layer trains)."""
    given = {"arch": "bert_gru", "dataset": "imdb", "trainable_layers": trainable_layers,
             "cache_encoder": trainable_layers != "all", "batch_size": args.batch_size, "seed": args.seed}
    if args.max_length is not None:
        given["max_length"] = args.max_length
    return resolve_settings(given, stamp="cost")


def sample_batches(encoder, args):
    """`(batches, split sizes)`: `--reviews` training reviews drawn with `--seed`, as a list of `(ids, labels)`
    length-bucketed batches (the same for every `--trainable-layers`: the tokenizer and length do not change)."""
    splits = load_dataset("imdb", args.data_dir, "auto", args.seed)
    sample = splits.train.shuffle(splits.sizes["train"], seed=args.seed).take(args.reviews)
    return list(make_batches(sample, encoder, args.batch_size, encoder.max_length)), splits.sizes


def seconds_per_review(step, batches):
    """Time `step(ids, labels)` over every batch, after one untimed pass that traces each batch shape."""
    for ids, labels in batches:
        step(ids, labels)
    start = time.perf_counter()
    for ids, labels in batches:
        step(ids, labels)
    return (time.perf_counter() - start) / sum(int(labels.shape[0]) for _, labels in batches)


def forward(model):
    """`(inputs, labels) -> logits` of `model` at inference, traced once per input shape."""
    call = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    return lambda inputs, labels: call(inputs)


def measure(trainable_layers, encoder, batches, train_size, args):
    """Per-review seconds of the four passes for one `--trainable-layers` value."""
    settings = bert_gru_settings(args, trainable_layers)
    keras.utils.set_random_seed(settings.seed)
    model = bert.build_classifier(settings, encoder)
    total_steps = args.epochs * train_size // settings.batch_size
    model_forward = seconds_per_review(forward(model), batches)
    compile_model(model, bert.make_optimizer(settings, model, total_steps))
    if settings.cache_encoder:
        features, trained = bert.split_at_the_frozen_part(model)
        features = tf.function(features, reduce_retracing=True)  # as tf.data's map runs it in training
        compile_model(trained, bert.make_optimizer(settings, trained, total_steps))
        cached = [features(ids, labels) for ids, labels in batches]  # what epoch 1 writes to the cache
        return {
            "frozen_forward": seconds_per_review(features, batches),
            "trained_step": seconds_per_review(lambda x, y: trained.train_on_batch(x, y), cached),
            "trained_forward": seconds_per_review(forward(trained), cached),
            "model_forward": model_forward,
        }
    return {"frozen_forward": 0.0, "trained_step": seconds_per_review(lambda x, y: model.train_on_batch(x, y), batches),
            "trained_forward": model_forward, "model_forward": model_forward}


def project(per_review, epochs, sizes):
    """Projected seconds of a whole run over splits of `sizes`: `(first epoch, each later epoch, evaluation, total)`."""
    train, valid, test = sizes["train"], sizes["valid"], sizes["test"]
    first = train * (per_review["frozen_forward"] + per_review["trained_step"]) + valid * (
        per_review["frozen_forward"] + per_review["trained_forward"])
    later = train * per_review["trained_step"] + valid * per_review["trained_forward"]
    evaluation = (test + valid) * per_review["model_forward"]
    return first, later, evaluation, first + (epochs - 1) * later + evaluation


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder holding aclImdb/ or aclImdb_v1.tar.gz")
    parser.add_argument("--trainable-layers", nargs="+", default=["0", "1", "2", "all"],
                        help="values of train's --trainable-layers to measure (default: 0 1 2 all)")
    parser.add_argument("--reviews", type=int, default=128, help="training reviews in the timed sample (default: 128)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="reviews per batch (default: 16, what fits fine-tuning every layer at 512 word pieces)")
    parser.add_argument("--max-length", type=int,
                        help="word pieces kept per review, as train's --max-length (default: bert_gru's, 512)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the projected run (default: 2)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the sample and the model (default: 1234)")
    parser.add_argument("--json", help="also write the measurements and projections to this file")
    args = parser.parse_args(argv)

    settings = bert_gru_settings(args)
    encoder = bert.BertTextEncoder(bert.load_bert(settings.bert_preset, backbone=False)[0], settings.max_length)
    batches, sizes = sample_batches(encoder, args)
    longest = max(int(ids.shape[1]) for ids, _ in batches)
    print(f"Machine: {machine()}; {args.reviews} IMDB training reviews, batch {args.batch_size}, "
          f"up to {longest} word pieces; projected to {sizes}", flush=True)
    print("| --trainable-layers | frozen forward | trained step | trained forward | model forward | epoch 1 | later epoch | "
          f"evaluation | {args.epochs}-epoch run |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for trainable_layers in args.trainable_layers:
        per_review = measure(trainable_layers, encoder, batches, sizes["train"], args)
        first, later, evaluation, total = project(per_review, args.epochs, sizes)
        rows.append({"trainable_layers": trainable_layers, "seconds_per_review": per_review,
                     "projected_seconds": {"epoch_1": first, "later_epoch": later, "evaluation": evaluation, "total": total}})
        ms = [f"{1000 * per_review[k]:.0f} ms" for k in ("frozen_forward", "trained_step", "trained_forward", "model_forward")]
        hours = [f"{s / 3600:.2f} h" for s in (first, later, evaluation, total)]
        print(f"| {trainable_layers} | " + " | ".join(ms + hours) + " |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
