"""Explanations of a trained model: a run directory explained here, or an export's own `explain` signature."""

import tensorflow as tf

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.explanation import DEFAULT_STEPS, explanations_from_outputs
from keras_sentiment.core.integrated_gradients import make_explainer
from keras_sentiment.run.loading import load_run, load_saved_model
from keras_sentiment.run.rundir import SENTIMENT_CLASSES, is_run_dir


def load_explainer(path, steps=DEFAULT_STEPS):
    """A function from a list of strings to the explanation outputs (numpy).

    A run directory is explained with `steps`; a SavedModel runs its own `explain` signature (the
    steps it was exported with, `export --explain-steps`), with no `keras_sentiment` code involved.
    """

    if is_run_dir(path):
        explain = make_explainer(*load_run(path), steps=steps)
        return lambda texts: to_numpy(explain(tf.constant(texts, tf.string)))
    saved_model, loaded = load_saved_model(path)
    if "explain" not in loaded.signatures:
        raise KerasSentimentError(
            f"{saved_model} has no explain signature (exported before explanations existed, or with --no-tokenizer): "
            "export its run directory again (keras-sentiment export RUN_DIR), or pass the run directory")
    signature = loaded.signatures["explain"]
    return lambda texts: to_numpy(signature(text=tf.constant(texts, tf.string)))


def to_numpy(outputs):
    return {name: value.numpy() for name, value in outputs.items()}


def explain_in_batches(explain, texts, batch_size=8, merge_pieces=True, class_names=SENTIMENT_CLASSES):
    """Yield the `Explanation` of each text, `batch_size` texts per call of `explain` (a `load_explainer` result)."""
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        yield from explanations_from_outputs(chunk, explain(chunk), merge_pieces, class_names)
