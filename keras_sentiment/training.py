"""Training: data -> vectorizer -> model -> fit -> evaluate -> export, into one run directory.

Run directory contents: `config.json`, the text encoder (`vocabulary.txt` + `vectorizer.json`,
or `tokenizer/` for BERT), `best.keras` (best `val_loss`), `history.csv`, `curves.png`,
`confusion_matrix.png`, `metrics.json`, `tensorboard/`; with `--cache-encoder` also
`encoder_cache.json` (the cache's size and the epoch-time speed-up; the cache itself, in
`encoder_cache/`, is removed when training ends).
"""

import csv
import json
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

import keras

from keras_sentiment.data import load_dataset, make_batches, subsample
from keras_sentiment.errors import KerasSentimentError
from keras_sentiment.evaluation import classification_metrics, plot_confusion_matrix, plot_curves, score_dataset
from keras_sentiment.export import export_serving_model, make_text_scorer
from keras_sentiment.inference import BEST_CHECKPOINT
from keras_sentiment.models import ModelConfig, build_model, load_embedding_matrix
from keras_sentiment.vectorizer import TextEncoder, adapt_vectorizer, build_vectorizer, save_vectorizer

# IMDB: 400 tokens keep 86.6% of training reviews whole and 89.1% of all tokens (median 174,
# 90th percentile 459); bucketing means the cost is the tokens kept, so longer buys little.
# SST-2 sentences are at most 48 tokens: 64 truncates nothing. BERT takes [CLS] + 510 + [SEP].
DEFAULT_MAX_LENGTH = {"imdb": 400, "sst2": 64}
BERT_MAX_LENGTH = 512
BERT_ARCH = "bert_gru"
# Seed designs: dropout 0.5 for the recurrent models, 0.25 for the BERT + GRU head.
DEFAULT_DROPOUT = {BERT_ARCH: 0.25}


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
    dropout: float | None = None
    pooling: str = "last"
    learning_rate: float = 1e-3
    patience: int = 2
    embeddings: str | None = None
    bert_preset: str | None = None
    cache_encoder: bool = False
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    seed: int = 1234
    run_dir: str | None = None
    export_dir: str | None = None

    def __post_init__(self):
        if self.max_length is None:
            self.max_length = BERT_MAX_LENGTH if self.arch == BERT_ARCH else DEFAULT_MAX_LENGTH.get(self.dataset, 400)
        if self.dropout is None:
            self.dropout = DEFAULT_DROPOUT.get(self.arch, 0.5)
        if self.pooling != "last" and self.arch == BERT_ARCH:
            raise KerasSentimentError(f"--pooling {self.pooling}: {BERT_ARCH}'s head always uses its final GRU state")
        if self.cache_encoder and self.arch != BERT_ARCH:
            raise KerasSentimentError(f"--cache-encoder needs a frozen encoder: use it with --arch {BERT_ARCH}")
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
    splits = subsample(splits, config.max_train_samples, config.max_eval_samples, config.seed)
    train_texts = splits.train
    print(f"Data: {config.dataset} from {splits.source}: {splits.sizes}", flush=True)

    encoder, model = build_encoder_and_model(config, train_texts, run_dir)
    train_batches = make_batches(train_texts, encoder, config.batch_size, config.max_length, shuffle=True, seed=config.seed)
    valid_batches = make_batches(splits.valid, encoder, config.batch_size, config.max_length)
    _compile(model, config)
    model.summary()

    # With a frozen encoder, --cache-encoder computes its outputs once and trains only the head.
    fit_model, train_data, valid_data, checkpoint = model, train_batches, valid_batches, run_dir / BEST_CHECKPOINT
    if config.cache_encoder:
        fit_model, train_data, valid_data = _with_cached_encoder(model, train_batches, valid_batches, run_dir)
        _compile(fit_model, config)
        checkpoint = run_dir / "best_head.keras"

    # Bucketed batches have no known count until the first epoch ends; Keras warns about that.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    try:
        fit_model.fit(
            train_data,
            validation_data=valid_data,
            epochs=config.epochs,
            shuffle=False,  # the dataset shuffles itself (seeded)
            callbacks=_callbacks(config, run_dir, checkpoint),
        )
    except KeyboardInterrupt:
        print(f"\nInterrupted: the best checkpoint so far is kept in {checkpoint}", flush=True)
        raise
    plot_curves(run_dir / "history.csv", run_dir / "curves.png")
    if fit_model is not model:
        fit_model.set_weights(keras.models.load_model(checkpoint, compile=False).get_weights())
        model.save(run_dir / BEST_CHECKPOINT)
        checkpoint.unlink()
        _report_encoder_cache(run_dir)

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


def build_encoder_and_model(config, train_texts, run_dir):
    """The text encoder (saved into the run dir) and the token-ids-to-logit model."""
    if config.arch == BERT_ARCH:
        from keras_sentiment.bert import BertTextEncoder, build_bert_gru, load_bert, save_bert_tokenizer

        tokenizer, backbone = load_bert(config.bert_preset)
        save_bert_tokenizer(tokenizer, run_dir / "tokenizer")
        model = build_bert_gru(backbone, config.hidden_dim, config.num_layers or 2, config.dropout)
        return BertTextEncoder(tokenizer, config.max_length), model
    vectorizer = adapt_vectorizer(build_vectorizer(config.vocab_size), train_texts.map(lambda text, label: text))
    save_vectorizer(vectorizer, run_dir)
    # The vocabulary can come out smaller than --vocab-size (SST-2 has ~14k words): size the
    # embedding to what the vectorizer actually produces.
    model_config = replace(config.model_config(), vocab_size=vectorizer.vocabulary_size())
    model = build_model(config.arch, model_config)
    if config.embeddings:
        _load_pretrained_embeddings(model, vectorizer, config)
    return TextEncoder(vectorizer, config.max_length), model


def _compile(model, config):
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
    )


def _with_cached_encoder(model, train_batches, valid_batches, run_dir):
    """The head model and datasets of encoder outputs, computed in epoch 1 and cached on disk.

    The cache holds whole batches: later epochs reshuffle the order of batches, not their
    contents.
    """
    from keras_sentiment.bert import HEAD_NAME, encoder_features

    cache_dir = run_dir / "encoder_cache"
    shutil.rmtree(cache_dir, ignore_errors=True)  # a stale cache from another run would be read back silently
    cache_dir.mkdir(parents=True)
    features = encoder_features(model)
    train_data = train_batches.map(features).cache(str(cache_dir / "train")).shuffle(32, seed=0).prefetch(2)
    valid_data = valid_batches.map(features).cache(str(cache_dir / "valid")).prefetch(2)
    return model.get_layer(HEAD_NAME), train_data, valid_data


def _report_encoder_cache(run_dir):
    with open(run_dir / "history.csv", newline="") as handle:
        epoch_seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]
    cache_dir = run_dir / "encoder_cache"
    size = sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file())
    report = {"cache_dir": str(cache_dir), "bytes": size, "epoch_seconds": epoch_seconds}
    if len(epoch_seconds) > 1:
        later = sorted(epoch_seconds[1:])[len(epoch_seconds[1:]) // 2]
        report["speedup_after_first_epoch"] = epoch_seconds[0] / later
    (run_dir / "encoder_cache.json").write_text(json.dumps(report, indent=2))
    speedup = f", later epochs {report['speedup_after_first_epoch']:.1f}x faster" if "speedup_after_first_epoch" in report else ""
    print(f"Encoder cache: {size / 2**20:,.1f} MiB in {cache_dir}{speedup}; removed now that training is done", flush=True)
    # A later run rebuilds its own cache, so this one is only disk space (GBs for IMDB).
    shutil.rmtree(cache_dir, ignore_errors=True)


def _callbacks(config, run_dir, checkpoint):
    return [
        EpochTimer(),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-5, verbose=1),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True, verbose=1),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")),
    ]


def _load_pretrained_embeddings(model, vectorizer, config):
    vocabulary = vectorizer.get_vocabulary()
    matrix, found = load_embedding_matrix(config.embeddings, vocabulary, config.embedding_dim, config.seed)
    model.get_layer("embedding").set_weights([matrix])
    words = len(vocabulary) - 2
    print(f"Embeddings: {found:,} of {words:,} vocabulary words found in {config.embeddings} ({found / max(words, 1):.1%})", flush=True)
