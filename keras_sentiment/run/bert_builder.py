"""The builder interface (`keras_sentiment.run.builder`) for `bert_gru`.

Settings in, `keras_sentiment.core.bert` constructors out: the preset's tokenizer saved into the
run dir, the encoder + GRU head (optionally started from another run's weights, `--init-from`),
the encoder-aware optimizer, and with `--cache-encoder` a fit plan that trains the head on the
frozen encoder's cached outputs.
"""

import csv
import json
import shutil

import keras
import tensorflow as tf

from keras_sentiment.core.bert import (HEAD_NAME, BertTextEncoder, build_bert_gru, load_bert, load_bert_tokenizer, save_bert_tokenizer,
                                       split_at_the_frozen_part, trainable_encoder_layers)
from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.optimizers import EncoderAwareAdam  # also registers it: best.keras may name it
from keras_sentiment.core.recurrent import recurrent_part
from keras_sentiment.run.batching import epoch_order_seed
from keras_sentiment.run.builder import FitPlan, delivered_input_length
from keras_sentiment.run.rundir import RunDir, class_names_of, read_run_config


def make_optimizer(settings, model, total_steps):
    """Adam at `--learning-rate` for the head; the unfrozen encoder layers at `--encoder-learning-rate`,
    warmed up and decayed over `total_steps` (`keras_sentiment.core.optimizers.EncoderAwareAdam`)."""

    prefixes = [f"{layer.name}/" for layer in trainable_encoder_layers(model)]
    if not prefixes:
        return keras.optimizers.Adam(settings.learning_rate, clipnorm=1.0)
    return EncoderAwareAdam(settings.learning_rate, prefixes, settings.encoder_learning_rate, total_steps, clipnorm=1.0)


def build_encoder(settings, train_texts, run_dir):
    """The preset's word-piece tokenizer, saved into `run_dir/tokenizer` (no adapting needed)."""
    tokenizer, _ = load_bert(settings.bert_preset, backbone=False)
    save_bert_tokenizer(tokenizer, RunDir(run_dir).tokenizer)
    return BertTextEncoder(tokenizer, settings.max_length)


def build_classifier(settings, encoder, word_vectors=None):
    """Frozen encoder + GRU head; BERT brings its own word-piece embeddings (`word_vectors` unused)."""
    _, backbone = load_bert(settings.bert_preset)
    # A run made before --encoder-states existed recorded none: its head read the last layer.
    class_names = class_names_of(settings.record)
    model = build_bert_gru(backbone, settings.hidden_dim, settings.num_layers, settings.dropout, settings.trainable_layers,
                           settings.encoder_states or 1, num_classes=len(class_names))
    if settings.init_from:
        load_weights_of_run(model, settings.init_from,
                            keep_head=class_names == class_names_of(read_run_config(settings.init_from)))
    return model


def load_weights_of_run(model, run_dir, keep_head=True):
    """Set `model`'s weights to those `run_dir`'s bert_gru delivers (without its n-grams), all but the
    output layer's unless `keep_head` (other classes: a new one); the shapes must agree."""

    source = recurrent_part(keras.models.load_model(RunDir(run_dir).best, compile=False))
    if keep_head:
        ours, theirs = model.weights, source.weights
    else:
        ours, theirs = outside_the_output_layer(model), outside_the_output_layer(source)
    if [tuple(w.shape) for w in ours] != [tuple(w.shape) for w in theirs]:
        # settings.check_init_from compares the settings that shape them; this is the last word
        raise KerasSentimentError(f"--init-from: {run_dir}'s bert_gru has {len(theirs)} weight arrays, this model "
                                  f"{len(ours)}, or their shapes differ")
    for mine, its in zip(ours, theirs):
        mine.assign(its)
    head = "its output layer too (the same classes)" if keep_head else "a new output layer"
    print(f"Initial weights: {run_dir}'s bert_gru ({len(ours)} arrays, {source.count_params():,} parameters); {head}",
          flush=True)


def outside_the_output_layer(model):
    """`model`'s weights but the GRU head's output layer's (`logit`)."""
    output_layer = model.get_layer(HEAD_NAME).get_layer("logit")
    skipped = {id(w) for w in output_layer.weights}
    return [w for w in model.weights if id(w) not in skipped]


def load_encoder(run_dir, config):
    """The run's saved tokenizer, giving the ids its delivered model takes (`delivered_input_length`)."""

    return BertTextEncoder(load_bert_tokenizer(RunDir(run_dir).tokenizer), delivered_input_length(config))


def fit_plan(model, train_batches, valid_batches, run_dir, settings):
    """With `cache_encoder`, compute the frozen part of the encoder once (epoch 1), cache its outputs on
    disk, and train only the rest (the head, plus the top `--trainable-layers`) on them.

    The cache holds the first epoch's batches: later epochs shuffle the order of batches (fixed
    by the seed and the epoch), not their contents. It is rebuilt by a resumed run and removed
    when training ends (`encoder_cache.json` records its size and the epoch times).
    """
    if not settings.cache_encoder:
        return FitPlan(model, train_batches.epoch, valid_batches)
    cache_dir = RunDir(run_dir).encoder_cache
    shutil.rmtree(cache_dir, ignore_errors=True)  # a stale or half-written cache would be read back silently
    cache_dir.mkdir(parents=True)
    features, trained = split_at_the_frozen_part(model)
    stored, restored = cast_states(settings.cache_dtype), cast_states("float32")
    cached_train = train_batches.epoch(0).map(features).map(stored).cache(str(cache_dir / "train")).map(restored)
    valid_data = valid_batches.map(features).map(stored).cache(str(cache_dir / "valid")).map(restored).prefetch(2)

    def train_epoch(epoch):
        return cached_train.shuffle(32, seed=epoch_order_seed(settings.seed, epoch), reshuffle_each_iteration=False)

    def finish(trained_checkpoint):
        trained.set_weights(keras.models.load_model(trained_checkpoint, compile=False).get_weights())
        report_and_remove_encoder_cache(run_dir, settings.cache_dtype)

    return FitPlan(trained, train_epoch, valid_data, finish)


def cast_states(dtype):
    """`((states, mask), labels)` with the states in `dtype`: what the cache stores, and what the head reads."""

    def cast(inputs, labels):
        states, mask = inputs
        return (tf.cast(states, dtype), mask), labels

    return cast


def report_and_remove_encoder_cache(run_dir, dtype="float32"):
    """Write `encoder_cache.json` (size, dtype, epoch times, speed-up), then delete the cache: only disk space now."""
    run_dir = RunDir(run_dir)
    with open(run_dir.history, newline="") as handle:
        epoch_seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]
    cache_dir = run_dir.encoder_cache
    size = sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file())
    report = {"cache_dir": str(cache_dir), "bytes": size, "dtype": dtype, "epoch_seconds": epoch_seconds}
    if len(epoch_seconds) > 1:
        later = sorted(epoch_seconds[1:])[len(epoch_seconds[1:]) // 2]
        report["speedup_after_first_epoch"] = epoch_seconds[0] / later
    (run_dir.path / f"{RunDir.ENCODER_CACHE}.json").write_text(json.dumps(report, indent=2))
    speedup = f", later epochs {report['speedup_after_first_epoch']:.1f}x faster" if "speedup_after_first_epoch" in report else ""
    print(f"Encoder cache: {size / 2**20:,.1f} MiB in {cache_dir}{speedup}; removed now that training is done", flush=True)
    # A later run rebuilds its own cache, so this one is only disk space (GBs for IMDB).
    shutil.rmtree(cache_dir, ignore_errors=True)
