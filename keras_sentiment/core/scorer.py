"""Text in, logits out: the scoring function every path shares.

`make_text_scorer(encoder, model)` is what an export serves (strings `[batch]` -> logits `[batch]`,
or `[batch, k]` for k > 2 classes); `score_texts` runs any such scorer over a list of texts in
batches of similar length (little padding) and returns the logits in input order: batch scoring, the teacher's
targets, `SentimentModel.logits` and Beam all call it.
"""

import collections
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf

from keras_sentiment.core.packed import packed_forward

TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")


TOKEN_IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name="token_ids")  # [batch, seq_len]


def make_text_scorer(encoder, model):
    """A `tf.function` mapping strings `[batch]` to logits: `[batch]` for two classes, `[batch, k]` for k.

    `encoder` maps strings to token ids (`TextEncoder`, `BertTextEncoder`); `model` maps token
    ids to logits `[batch, 1]` (two classes) or `[batch, k]`. A recurrent model runs as the packed
    recurrence (`keras_sentiment.core.packed`: the same logits, faster), any other as itself.
    """
    forward = packed_forward(model) or (lambda token_ids: model(token_ids, training=False))

    @tf.function(input_signature=[TEXT_SPEC], reduce_retracing=True)
    def score(text):
        token_ids = encoder(text)  # [batch, seq_len]
        return per_text(forward(token_ids))

    return score


def model_logits(model, token_ids):
    """`model`'s logits for token ids: `[batch]` (two classes: the second's log-odds) or `[batch, k]`."""
    return per_text(model(token_ids, training=False))


def per_text(logits):
    """Logits `[batch, 1]` (two classes) -> `[batch]`, the second class's log-odds; `[batch, k]` unchanged."""
    return logits[:, 0] if logits.shape[-1] == 1 else logits


def serving_outputs(logits, class_names, threshold=0.5):
    """The `serving_default` outputs from logits (`[batch]` for two classes, `[batch, k]` for k).

    Every export: `scores` (float32 `[batch, k]`, the probabilities) and `classes` (string `[batch, k]`,
    the class names), TF Serving's classification outputs, plus `label` (int32 `[batch]`, the
    predicted class id) and `logits`. Two classes also keep `probability` (`[batch]`, P(second class));
    their `label` is the second class where `probability` is above `threshold`.
    """
    names = tf.constant(list(class_names), tf.string)  # [k]
    if logits.shape.rank == 1:
        probability = tf.sigmoid(logits)
        scores = tf.stack([1.0 - probability, probability], axis=1)  # [batch, 2]
        outputs = {"probability": probability, "label": tf.cast(logits > log_odds(threshold), tf.int32)}
    else:
        scores = tf.nn.softmax(logits, axis=-1)  # [batch, k]
        outputs = {"label": tf.argmax(logits, axis=-1, output_type=tf.int32)}
    classes = tf.tile(names[None], [tf.shape(scores)[0], 1])  # [batch, k]
    return {**outputs, "logits": logits, "scores": scores, "classes": classes}


def class_probabilities(logits):
    """Probabilities `[n, k]` (numpy float64) from numpy logits: `[n]` for two classes, `[n, k]` for k."""
    logits = np.asarray(logits, "float64")
    if logits.ndim == 1:
        positive = sigmoid(logits)
        return np.stack([1.0 - positive, positive], axis=1)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predicted_classes(logits, threshold=0.5):
    """The predicted class id of each text (numpy int64) from logits `[n]` or `[n, k]`; two classes: the
    second where its probability is above `threshold` (the decision threshold; 0.5: logit > 0)."""
    logits = np.asarray(logits)
    return (logits > log_odds(threshold)).astype("int64") if logits.ndim == 1 else np.argmax(logits, axis=1)


def log_odds(probability):
    """The logit of a probability in (0, 1): a decision threshold as the logit it compares with."""
    return float(np.log(probability) - np.log1p(-probability))


def score_texts(scorer, texts, batch_size=256, progress=False, in_flight=2):
    """`scorer`'s logits for `texts` (float32 numpy, input order), in batches of similar length.

    Texts are sorted by length (characters, stable) before batching, so a batch pads little; the
    logits are put back in input order. `progress` shows a bar with the total. `in_flight` batches
    are scored at once, on as many threads: while one batch's recurrence keeps the cores busy, the
    next one's tokenizer and the last one's outputs fill the gaps (1.2x for the shipped export on 2
    cores: docs/PERFORMANCE.md). `scorer` must be safe to call from several threads, as every
    scorer `load_scorer` returns is; `in_flight=1` calls it on this thread only.

    Example:
    >>> score_texts(lambda batch: tf.strings.length(batch), ["ccc", "a", "bb"], batch_size=2).tolist()
    [3.0, 1.0, 2.0]
    """
    order = np.argsort([len(text) for text in texts], kind="stable")
    batches = [order[start : start + batch_size] for start in range(0, len(texts), batch_size)]
    logits = None
    bar = keras.utils.Progbar(len(texts), unit_name="text") if progress else None

    def logits_of(chosen):
        return np.asarray(scorer(tf.constant([texts[i] for i in chosen], tf.string)), "float32")

    for chosen, batch in zip(batches, _in_order(logits_of, batches, in_flight)):
        if logits is None:  # [n], or [n, k] for k classes
            logits = np.zeros([len(texts), *batch.shape[1:]], "float32")
        logits[chosen] = batch
        if bar:
            bar.add(len(chosen))
    return logits if logits is not None else np.zeros([0], "float32")


def _in_order(function, items, in_flight):
    """`function(item)` for each of `items`, in order, at most `in_flight` running at once on worker threads; on
    an error the calls not started yet are cancelled (an interrupted run does not score the rest first)."""
    if in_flight <= 1 or len(items) <= 1:
        yield from map(function, items)
        return
    pool = ThreadPoolExecutor(in_flight, thread_name_prefix="score")
    running = collections.deque()
    try:
        for item in items:
            running.append(pool.submit(function, item))
            if len(running) > in_flight:  # one queued beyond the running ones: a worker never waits for the next
                yield running.popleft().result()
        while running:
            yield running.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def sigmoid(logits):
    """P(positive) for logits (numpy, float64); `tanh` form, so no overflow for large |logit|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, "float64")))
