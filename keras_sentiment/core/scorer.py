"""Text in, logits out: the scoring function every path shares.

`make_text_scorer(encoder, model)` is what an export serves (strings `[batch]` -> logits
`[batch]`); `score_texts` runs any such scorer over a list of texts in batches of similar
length (little padding) and returns the logits in input order: batch scoring, the teacher's
targets, `predict` and Beam all call it.
"""

import keras
import numpy as np
import tensorflow as tf


TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")


TOKEN_IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name="token_ids")  # [batch, seq_len]


def make_text_scorer(encoder, model):
    """A `tf.function` mapping strings `[batch]` to logits `[batch]`; what the export serves.

    `encoder` maps strings to token ids (`TextEncoder`, `BertTextEncoder`); `model` maps token
    ids to logits `[batch, 1]`.
    """

    @tf.function(input_signature=[TEXT_SPEC], reduce_retracing=True)
    def score(text):
        token_ids = encoder(text)  # [batch, seq_len]
        return model(token_ids, training=False)[:, 0]  # [batch]

    return score


def serving_outputs(logits):
    """The signature's outputs from logits `[batch]`."""
    return {"probability": tf.sigmoid(logits), "label": tf.cast(logits > 0, tf.int32), "logits": logits}


def score_texts(scorer, texts, batch_size=256, progress=False):
    """`scorer`'s logits for `texts` (float32 numpy, input order), in batches of similar length.

    Texts are sorted by length (characters, stable) before batching, so a batch pads little; the
    logits are put back in input order. `progress` shows a bar with the total.

    Example:
    >>> score_texts(lambda batch: tf.strings.length(batch), ["ccc", "a", "bb"], batch_size=2).tolist()
    [3.0, 1.0, 2.0]
    """
    order = np.argsort([len(text) for text in texts], kind="stable")
    logits = np.zeros([len(texts)], "float32")
    bar = keras.utils.Progbar(len(texts), unit_name="text") if progress else None
    for start in range(0, len(texts), batch_size):
        chosen = order[start : start + batch_size]
        logits[chosen] = np.asarray(scorer(tf.constant([texts[i] for i in chosen], tf.string))).reshape([-1])
        if bar:
            bar.add(len(chosen))
    return logits


def predict_texts(scorer, texts, batch_size=256):
    """P(positive) and labels (numpy) for a list of strings."""
    logits = score_texts(scorer, list(texts), batch_size)
    return sigmoid(logits).astype(logits.dtype), (logits > 0).astype("int32")


def sigmoid(logits):
    """P(positive) for logits (numpy, float64); `tanh` form, so no overflow for large |logit|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, "float64")))
