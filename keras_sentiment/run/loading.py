"""Load a trained model for scoring, from a run directory or an exported SavedModel."""

from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.scorer import make_text_scorer
from keras_sentiment.core.wordpiece import BertTokenIds
from keras_sentiment.run.litert import LiteRecurrence
from keras_sentiment.run.rundir import (SAVED_MODEL_FILE, RunDir, is_run_dir, not_a_model_message, resolve_saved_model,
                                        takes_token_ids)
from keras_sentiment.run.settings import architecture_module


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
        tokenize = BertTokenIds(saved_model)

        def score_token_ids(texts):
            ids = tokenize(list(tf.convert_to_tensor(texts, tf.string).numpy()))
            return signature(token_ids=tf.constant(ids, tf.int32) if ids else tf.zeros([0, 2], tf.int32))["logits"]

        return score_token_ids
    lite = LiteRecurrence.of(saved_model, loaded.signatures)  # the recurrence by LiteRT, where the export holds it
    if lite is not None:
        return lambda texts: lite(texts)["logits"]
    return lambda texts: signature(text=tf.convert_to_tensor(texts, tf.string))["logits"]


def load_saved_model(path):
    """`(version dir, loaded SavedModel)` of a SavedModel or export base (its latest version), with
    TensorFlow Text's ops registered; a one-line error for anything else (run dirs are the caller's)."""
    saved_model = resolve_saved_model(path)
    if saved_model is None:
        raise KerasSentimentError(not_a_model_message(path))
    register_text_ops(saved_model)
    return saved_model, tf.saved_model.load(str(saved_model))


def register_text_ops(saved_model_dir):
    """Register TensorFlow Text's ops before loading an export that uses them (BERT exports split word pieces with
    them). Only then: importing TensorFlow Text takes ~0.4 s of a command's start, and the other exports use core
    ops alone (reading which ops an export uses takes ~15 ms)."""
    if all(op_def_registry.get(op) is not None for op in ops_used(saved_model_dir)):
        return
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass  # the load names the missing op


def ops_used(saved_model_dir):
    """Every op type in a SavedModel's graphs: the graph's nodes and those of its function library."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(saved_model_dir) / SAVED_MODEL_FILE).read_bytes())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def load_run(run_dir):
    """`(encoder, model)` of a run directory: the text encoder and the best checkpoint.

    The encoder is rebuilt from the run's own files and resolved settings (`max_length`), by
    the builder module registered for its architecture.
    """
    run = RunDir(run_dir)
    if not run.holds_model():
        raise KerasSentimentError(f"{run}: not a run directory (needs {RunDir.CONFIG} and {RunDir.BEST})")
    config = run.read_config()
    encoder = architecture_module(config["arch"]).load_encoder(run.path, config)  # also registers its layers
    return encoder, keras.models.load_model(run.best, compile=False)


