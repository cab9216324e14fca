"""Training: settings -> data -> encoder, word vectors, model -> fit -> (refit) -> evaluate -> export.

`train(settings)` reads as its steps: `start_run`, `prepare_data`, `build`, `fit`, `refit`
(with `--refit`), `evaluate`, then the export. Everything goes into one run directory:
`config.json` (the resolved settings, the source of each, and what the run measured: the real
vocabulary size, the word vectors file, refit epochs), the text encoder (`vocabulary.txt` +
`vectorizer.json`, or `tokenizer/` for BERT), `best.keras` (the model the run delivers: best
`val_loss`, or the refit model, with the selected one kept as `selected.keras`), `history.csv`
(and `refit_history.csv`), `curves.png`, `confusion_matrix.png`, `metrics.json`, `tensorboard/`;
with `--cache-encoder` also `encoder_cache.json`.
"""

import csv
import json
import os
import time
from pathlib import Path

import keras

from keras_sentiment.data import load_dataset, make_batches, subsample
from keras_sentiment.evaluation import classification_metrics, plot_confusion_matrix, plot_curves, score_dataset
from keras_sentiment.export import export_serving_model, make_text_scorer
from keras_sentiment.inference import BEST_CHECKPOINT
from keras_sentiment.settings import architecture_module
from keras_sentiment.word_vectors import word_vectors_for

# The model selected by early stopping on the valid split, kept beside a refit model.
SELECTED_CHECKPOINT = "selected.keras"


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs, so `history.csv` records time per epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


def train(settings):
    """Train, evaluate and export one model; returns `(run_dir, export_path, metrics)`.

    Args:
        settings: `ResolvedSettings`, as `keras_sentiment.settings.resolve_settings` makes them.

    Example:
    >>> train(resolve_settings({"arch": "gru", "dataset": "sst2", "data_dir": "data"}))  # doctest: +SKIP
    """
    run_dir = start_run(settings)
    splits = prepare_data(settings)
    encoder, model, settings = build(settings, splits, run_dir)
    best_epoch = fit(settings, model, encoder, splits, run_dir)
    if settings.refit:
        refit(settings, encoder, splits, run_dir, best_epoch)
    model = load_best(run_dir)  # the best epoch's weights even when training ran to the last epoch
    metrics = evaluate(settings, model, encoder, splits, run_dir)
    export_path = export_serving_model(model, encoder, settings.export_dir)
    return run_dir, export_path, metrics


# === Steps ===


def start_run(settings):
    """Create the run dir, seed everything, log the settings in force and write `config.json`."""
    run_dir = Path(settings.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(settings.seed)
    print(f"Settings (recipe {settings.recipe}; the source of each value in brackets):\n{settings.describe()}", flush=True)
    write_config(run_dir, settings)
    return run_dir


def prepare_data(settings):
    """The train/valid/test splits (seeded subsets when asked for)."""
    splits = load_dataset(settings.dataset, settings.data_dir, settings.data_source, settings.seed)
    splits = subsample(splits, settings.max_train_samples, settings.max_eval_samples, settings.seed)
    print(f"Data: {settings.dataset} from {splits.source}: {splits.sizes}", flush=True)
    return splits


def build(settings, splits, run_dir):
    """The text encoder (saved in the run dir), word vectors and the model.

    Returns `(encoder, model, settings)`, the settings now with the vocabulary size the training
    text gave and the word vectors used, as recorded in `config.json`.
    """
    builder = architecture_module(settings.arch)
    encoder = builder.build_encoder(settings, splits.train, run_dir)
    vocabulary_size = getattr(encoder, "vocabulary_size", None)
    if vocabulary_size is not None and vocabulary_size != settings.vocab_size:
        settings = settings.replace(vocab_size=vocabulary_size, source=f"training text (asked {settings.vocab_size:,})")
    word_vectors = word_vectors_for(settings, splits.train)
    if word_vectors is not None:
        settings = settings.with_record(word_vectors=str(word_vectors))
    write_config(run_dir, settings)
    return encoder, builder.build_classifier(settings, encoder, word_vectors), settings


def fit(settings, model, encoder, splits, run_dir):
    """Train with early stopping on `settings.monitor`; `best.keras` holds the best epoch. Returns its number (1-based)."""
    train_batches = make_batches(splits.train, encoder, settings.batch_size, settings.max_length, shuffle=True, seed=settings.seed)
    valid_batches = make_batches(splits.valid, encoder, settings.batch_size, settings.max_length)
    compile_model(model, settings.learning_rate)
    model.summary()
    plan = architecture_module(settings.arch).fit_plan(model, train_batches, valid_batches, run_dir, settings)
    if plan.fit_model is not model:
        compile_model(plan.fit_model, settings.learning_rate)
    checkpoint = run_dir / (BEST_CHECKPOINT if plan.finish is None else "best_part.keras")
    try:
        plan.fit_model.fit(
            plan.train_data,
            validation_data=plan.valid_data,
            epochs=settings.epochs,
            shuffle=False,  # the dataset shuffles itself (seeded)
            callbacks=selection_callbacks(settings, run_dir, checkpoint),
        )
    except KeyboardInterrupt:
        print(f"\nInterrupted: the best checkpoint so far is kept in {checkpoint}", flush=True)
        raise
    plot_curves(run_dir / "history.csv", run_dir / "curves.png")
    if plan.finish is not None:
        plan.finish(checkpoint)  # the best part's weights into the whole model
        model.save(run_dir / BEST_CHECKPOINT)
        checkpoint.unlink()
    best_epoch = best_epoch_of(run_dir / "history.csv", settings.monitor)
    print(f"Best epoch by {settings.monitor}: {best_epoch}", flush=True)
    return best_epoch


def refit(settings, encoder, splits, run_dir, epochs):
    """A fresh model trained on train + valid for `epochs`, replaying the selection run's learning rates.

    The selected model is kept as `selected.keras`; the refit one becomes `best.keras` (what
    `evaluate`, `predict` and the export use). Its history is `refit_history.csv`.
    """
    os.replace(run_dir / BEST_CHECKPOINT, run_dir / SELECTED_CHECKPOINT)
    learning_rates = learning_rates_of(run_dir / "history.csv")[:epochs]
    combined = splits.train.concatenate(splits.valid)
    size = splits.sizes["train"] + splits.sizes["valid"]
    print(f"Refit: a fresh model on train + valid ({size:,} examples) for {epochs} epochs", flush=True)
    keras.utils.set_random_seed(settings.seed)
    model = architecture_module(settings.arch).build_classifier(settings, encoder, settings.record.get("word_vectors"))
    compile_model(model, settings.learning_rate)
    batches = make_batches(combined, encoder, settings.batch_size, settings.max_length, shuffle=True, seed=settings.seed)
    model.fit(batches, epochs=epochs, shuffle=False, callbacks=[
        EpochTimer(),
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: learning_rates[epoch]),
        keras.callbacks.CSVLogger(str(run_dir / "refit_history.csv")),
    ])
    model.save(run_dir / BEST_CHECKPOINT)
    write_config(run_dir, settings.with_record(refit_epochs=epochs, refit_examples=size))


def evaluate(settings, model, encoder, splits, run_dir):
    """Test and valid metrics of the delivered `model` (`best.keras`) into `metrics.json`, plus the confusion matrix plot.

    After a refit the delivered model has trained on the valid split, so "valid" reports the
    selected model (`selected.keras`) instead, and "selected_test" its test metrics: the refit's
    effect, for reporting only (settings are chosen on the valid split).
    """
    scorers = {BEST_CHECKPOINT: make_text_scorer(encoder, model)}
    jobs = [("test", "test", BEST_CHECKPOINT), ("valid", "valid", BEST_CHECKPOINT)]
    if settings.refit:
        selected = keras.models.load_model(run_dir / SELECTED_CHECKPOINT, compile=False)
        scorers[SELECTED_CHECKPOINT] = make_text_scorer(encoder, selected)
        jobs = [("test", "test", BEST_CHECKPOINT), ("valid", "valid", SELECTED_CHECKPOINT),
                ("selected_test", "test", SELECTED_CHECKPOINT)]
    metrics = {}
    for key, split, checkpoint in jobs:
        print(f"Evaluating {checkpoint} on {split} ({splits.sizes[split]} examples)", flush=True)
        labels, logits, seconds = score_dataset(scorers[checkpoint], getattr(splits, split), splits.sizes[split])
        metrics[key] = {**classification_metrics(labels, logits, seconds), "model": checkpoint}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_confusion_matrix(metrics["test"]["confusion_matrix"], run_dir / "confusion_matrix.png", f"{settings.dataset} test: {settings.arch}")
    return metrics


# === Helpers ===


def load_best(run_dir):
    return keras.models.load_model(Path(run_dir) / BEST_CHECKPOINT, compile=False)


def write_config(run_dir, settings):
    """`config.json`: the resolved settings, their sources and what the run measured; replaced atomically."""
    path = Path(run_dir) / "config.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(settings.to_json(), indent=2))
    os.replace(tmp, path)


def compile_model(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
    )


def selection_callbacks(settings, run_dir, checkpoint):
    """Early stopping and the best checkpoint on `settings.monitor`, learning-rate decay, logs."""
    monitor = settings.monitor
    return [
        EpochTimer(),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=1, min_lr=1e-5, verbose=1),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=settings.patience, restore_best_weights=True, verbose=1),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=monitor, save_best_only=True),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")),
    ]


def best_epoch_of(history_csv, monitor="val_loss"):
    """The 1-based epoch `ModelCheckpoint` kept: lowest `val_loss`, or highest `val_accuracy` (first of ties)."""
    with open(history_csv, newline="") as handle:
        values = [float(row[monitor]) for row in csv.DictReader(handle)]
    best = max(values) if monitor == "val_accuracy" else min(values)
    return values.index(best) + 1


def learning_rates_of(history_csv):
    """The learning rate each epoch trained with (`ReduceLROnPlateau` logs it before it lowers it)."""
    with open(history_csv, newline="") as handle:
        return [float(row["learning_rate"]) for row in csv.DictReader(handle)]
