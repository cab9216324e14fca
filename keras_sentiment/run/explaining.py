"""Explanations of a trained model: a run directory explained here, or an export's own `explain` signature."""

import tensorflow as tf

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.explanation import DEFAULT_STEPS, explanations_from_outputs
from keras_sentiment.core.integrated_gradients import make_class_explainer, make_explainer
from keras_sentiment.run.loading import load_run, load_saved_model
from keras_sentiment.run.rundir import (EXPLAIN_CLASS_SIGNATURE, EXPLAIN_SIGNATURE, SENTIMENT_CLASSES, is_run_dir,
                                        read_class_names, read_threshold)


def load_explainer(path, steps=DEFAULT_STEPS, class_name=None):
    """A function from a list of strings to the explanation outputs (numpy) of the default class, or of
    `class_name` (one of the model's class names, checked by the caller).

    A run directory is explained with `steps`; a SavedModel runs its own `explain` (or `explain_class`)
    signature (the steps it was exported with, `export --explain-steps`), with no `keras_sentiment` code.
    """

    if is_run_dir(path):
        encoder, model = load_run(path)
        threshold = read_threshold(path)
        if class_name is None:
            explain = make_explainer(encoder, model, steps, threshold)
            return lambda texts: to_numpy(explain(tf.constant(texts, tf.string)))
        explain_class = make_class_explainer(encoder, model, read_class_names(path), steps, threshold)
        return lambda texts: to_numpy(explain_class(tf.constant(texts, tf.string), tf.constant([class_name] * len(texts))))
    saved_model, loaded = load_saved_model(path)
    if EXPLAIN_SIGNATURE not in loaded.signatures:
        raise KerasSentimentError(
            f"{saved_model} has no explain signature (exported before explanations existed, or with --no-tokenizer): "
            "export its run directory again (keras-sentiment export RUN_DIR), or pass the run directory")
    if class_name is None:
        signature = loaded.signatures[EXPLAIN_SIGNATURE]
        return lambda texts: to_numpy(signature(text=tf.constant(texts, tf.string)))
    if EXPLAIN_CLASS_SIGNATURE not in loaded.signatures:
        raise KerasSentimentError(f"{saved_model} was exported before a class could be chosen to explain: export its "
                                  "run directory again (keras-sentiment export RUN_DIR), or pass the run directory")
    signature = loaded.signatures[EXPLAIN_CLASS_SIGNATURE]
    return lambda texts: to_numpy(signature(text=tf.constant(texts, tf.string),
                                            class_name=tf.constant([class_name] * len(texts))))


def to_numpy(outputs):
    return {name: value.numpy() for name, value in outputs.items()}


def explain_in_batches(explain, texts, batch_size=8, merge_pieces=True, class_names=SENTIMENT_CLASSES):
    """Yield the `Explanation` of each text, `batch_size` texts per call of `explain` (a `load_explainer` result)."""
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        yield from explanations_from_outputs(chunk, explain(chunk), merge_pieces, class_names)
