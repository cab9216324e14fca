"""Load a trained model for scoring, from a run directory or an exported SavedModel."""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_sentiment.errors import KerasSentimentError
from keras_sentiment.export import existing_versions, make_text_scorer, takes_token_ids

BEST_CHECKPOINT = "best.keras"


def resolve_saved_model(path):
    """`path` itself if it is a SavedModel, else its highest integer version."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = existing_versions(path)
    if versions:
        return path / str(versions[-1])
    return None


def load_scorer(path):
    """A function mapping strings `[batch]` to logits `[batch]` (a `tf.Tensor`).

    Args:
        path: a run directory (`config.json`, vectorizer, `best.keras`), a SavedModel
            directory, or an export base holding integer versions (the latest is used).
    """
    path = Path(path)
    if is_run_dir(path):
        return make_text_scorer(*load_run(path))
    saved_model, loaded = load_saved_model(path)
    signature = loaded.signatures["serving_default"]
    if takes_token_ids(saved_model):  # exported with --no-tokenizer: tokenize here, as a client would
        from keras_sentiment.client import BertTokenIds

        tokenize = BertTokenIds(saved_model)

        def score_token_ids(texts):
            ids = tokenize(list(tf.convert_to_tensor(texts, tf.string).numpy()))
            return signature(token_ids=tf.constant(ids, tf.int32) if ids else tf.zeros([0, 2], tf.int32))["logits"]

        return score_token_ids
    return lambda texts: signature(text=tf.convert_to_tensor(texts, tf.string))["logits"]


def load_saved_model(path):
    """`(version dir, loaded SavedModel)` of a SavedModel or export base (its latest version), with
    TensorFlow Text's ops registered; a one-line error for anything else (run dirs are the caller's)."""
    saved_model = resolve_saved_model(path)
    if saved_model is None:
        raise KerasSentimentError(
            f"{path}: neither a run directory (config.json + {BEST_CHECKPOINT}) nor a SavedModel "
            "(saved_model.pb, or integer version folders holding one)"
        )
    register_text_ops()
    return saved_model, tf.saved_model.load(str(saved_model))


def register_text_ops():
    """BERT exports use TensorFlow Text ops (word-piece splitting): register them before loading."""
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass


def is_run_dir(path):
    path = Path(path)
    return (path / "config.json").is_file() and (path / BEST_CHECKPOINT).is_file()


def read_run_config(run_dir):
    """A run directory's `config.json`: the resolved settings it trained with (see `keras_sentiment.settings`)."""
    return json.loads((Path(run_dir) / "config.json").read_text())


def load_run(run_dir):
    """`(encoder, model)` of a run directory: the text encoder and the best checkpoint.

    The encoder is rebuilt from the run's own files and resolved settings (`max_length`), by
    the builder module registered for its architecture.
    """
    import keras

    from keras_sentiment.settings import architecture_module

    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise KerasSentimentError(f"{run_dir}: not a run directory (needs config.json and {BEST_CHECKPOINT})")
    config = read_run_config(run_dir)
    encoder = architecture_module(config["arch"]).load_encoder(run_dir, config)  # also registers its layers
    return encoder, keras.models.load_model(run_dir / BEST_CHECKPOINT, compile=False)


def predict_texts(scorer, texts, batch_size=256):
    """Probabilities and labels (numpy) for a list of strings."""
    logits = [scorer(tf.constant(texts[i : i + batch_size], tf.string)).numpy() for i in range(0, len(texts), batch_size)]
    logits = np.concatenate(logits) if logits else np.zeros([0], "float32")
    return sigmoid(logits).astype(logits.dtype), (logits > 0).astype("int32")


def sigmoid(logits):
    """P(positive) for logits (numpy, float64); `tanh` form, so no overflow for large |logit|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, "float64")))
