"""Training: data -> vectorizer -> model -> fit -> evaluate -> export, into one run directory.

Run directory contents: `config.json`, `vocabulary.txt` + `vectorizer.json`, `best.keras`
(best `val_loss`), `history.csv`, `curves.png`, `confusion_matrix.png`, `metrics.json`,
`tensorboard/`.
"""

import json
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import keras

from keras_sentiment.data import load_dataset, make_batches
from keras_sentiment.errors import KerasSentimentError
from keras_sentiment.evaluation import classification_metrics, plot_confusion_matrix, plot_curves, score_dataset
from keras_sentiment.export import export_serving_model, make_text_scorer
from keras_sentiment.inference import BEST_CHECKPOINT
from keras_sentiment.models import ModelConfig, build_model, load_embedding_matrix
from keras_sentiment.vectorizer import TextEncoder, adapt_vectorizer, build_vectorizer, save_vectorizer

# IMDB: 400 tokens keep 86.6% of training reviews whole and 89.1% of all tokens (median 174,
# 90th percentile 459); bucketing means the cost is the tokens kept, so longer buys little.
# SST-2 sentences are at most 48 tokens: 64 truncates nothing.
DEFAULT_MAX_LENGTH = {"imdb": 400, "sst2": 64}


@dataclass
class TrainConfig:
    """Everything `train` needs; saved as the run's `config.json`.

    Args mirror the `train` CLI flags (see `keras-sentiment train --help`).
    """

    arch: str = "bilstm"
    dataset: str = "imdb"
    data_dir: str | None = None
    data_source: str = "auto"
    epochs: int = 10
    batch_size: int = 64
    max_length: int | None = None
    vocab_size: int = 25_000
    embedding_dim: int = 100
    hidden_dim: int = 256
    num_layers: int | None = None
    dropout: float = 0.5
    learning_rate: float = 1e-3
    patience: int = 2
    embeddings: str | None = None
    max_train_samples: int | None = None
    seed: int = 1234
    run_dir: str | None = None
    export_dir: str | None = None

    def __post_init__(self):
        if self.max_length is None:
            self.max_length = DEFAULT_MAX_LENGTH.get(self.dataset, 400)
        for name in ("epochs", "batch_size", "max_length", "vocab_size", "embedding_dim", "hidden_dim"):
            if getattr(self, name) < 1:
                raise KerasSentimentError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.vocab_size < 3:
            raise KerasSentimentError("--vocab-size must be >= 3 (PAD, OOV and at least one word)")
        if not 0.0 <= self.dropout < 1.0:
            raise KerasSentimentError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.embeddings and not Path(self.embeddings).is_file():
            raise KerasSentimentError(f"--embeddings: no such file {self.embeddings}")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.run_dir = self.run_dir or f"runs/{self.dataset}_{self.arch}_{stamp}"
        self.export_dir = self.export_dir or f"saved_models/{self.dataset}_{self.arch}"

    def model_config(self):
        return ModelConfig.from_dict(asdict(self))


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs, so `history.csv` records time per epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


def train(config):
    """Train, evaluate and export one model; returns `(run_dir, export_path, metrics)`."""
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))

    splits = load_dataset(config.dataset, config.data_dir, config.data_source, config.seed)
    train_texts = splits.train
    if config.max_train_samples:
        train_texts = train_texts.take(config.max_train_samples)
    print(f"Data: {config.dataset} from {splits.source}: {splits.sizes}", flush=True)

    vectorizer = adapt_vectorizer(build_vectorizer(config.vocab_size), train_texts.map(lambda text, label: text))
    save_vectorizer(vectorizer, run_dir)

    encoder = TextEncoder(vectorizer, config.max_length)

    train_batches = make_batches(train_texts, encoder, config.batch_size, config.max_length, shuffle=True, seed=config.seed)
    valid_batches = make_batches(splits.valid, encoder, config.batch_size, config.max_length)

    model = build_model(config.arch, config.model_config())
    if config.embeddings:
        _load_pretrained_embeddings(model, vectorizer, config)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
    )
    model.summary()

    # Bucketed batches have no known count until the first epoch ends; Keras warns about that.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    try:
        model.fit(
            train_batches,
            validation_data=valid_batches,
            epochs=config.epochs,
            shuffle=False,  # the dataset shuffles itself (seeded)
            callbacks=_callbacks(config, run_dir),
        )
    except KeyboardInterrupt:
        print(f"\nInterrupted: the best checkpoint so far is kept in {run_dir / BEST_CHECKPOINT}", flush=True)
        raise
    plot_curves(run_dir / "history.csv", run_dir / "curves.png")

    # The checkpoint holds the best val_loss weights whether or not training stopped early.
    model = keras.models.load_model(run_dir / BEST_CHECKPOINT, compile=False)
    scorer = make_text_scorer(encoder, model)
    metrics = {}
    for split in ("test", "valid"):
        print(f"Evaluating on {split} ({splits.sizes[split]} examples)", flush=True)
        labels, logits, seconds = score_dataset(scorer, getattr(splits, split), splits.sizes[split])
        metrics[split] = classification_metrics(labels, logits, seconds)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_confusion_matrix(metrics["test"]["confusion_matrix"], run_dir / "confusion_matrix.png", f"{config.dataset} test: {config.arch}")

    export_path = export_serving_model(model, encoder, config.export_dir)
    return run_dir, export_path, metrics


def _callbacks(config, run_dir):
    return [
        EpochTimer(),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-5, verbose=1),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True, verbose=1),
        keras.callbacks.ModelCheckpoint(str(run_dir / BEST_CHECKPOINT), monitor="val_loss", save_best_only=True),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")),
    ]


def _load_pretrained_embeddings(model, vectorizer, config):
    vocabulary = vectorizer.get_vocabulary()
    matrix, found = load_embedding_matrix(config.embeddings, vocabulary, config.embedding_dim, config.seed)
    model.get_layer("embedding").set_weights([matrix])
    words = len(vocabulary) - 2
    print(f"Embeddings: {found:,} of {words:,} vocabulary words found in {config.embeddings} ({found / max(words, 1):.1%})", flush=True)
