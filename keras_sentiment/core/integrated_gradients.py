"""Integrated Gradients over the token embeddings: the computation behind every explanation.

The contract (baseline, path, completeness, padding) is stated in
`keras_sentiment.core.explanation`; this module computes it. `make_token_id_explainer` is the one
implementation: the library and the CLI (`keras-sentiment explain`) run it through `make_explainer`, the
SavedModel's `explain` and `explain_class` signatures through `make_class_explainer`.
"""

import tensorflow as tf

from keras_sentiment.core import bert, recurrent
from keras_sentiment.core.explanation import COMPLETENESS_TOLERANCE, DEFAULT_STEPS, MAX_DOUBLINGS
from keras_sentiment.core.scorer import TEXT_SPEC, log_odds


CLASS_NAME_SPEC = tf.TensorSpec([None], tf.string, name="class_name")  # the class to explain per text; "": the default
DEFAULT_CLASS = -1  # a class id meaning: the default class to explain


def make_explainer(encoder, model, steps=DEFAULT_STEPS, threshold=0.5):
    """A `tf.function` from strings `[batch]` to the explanation tensors of the default class.

    Returns a dict: `tokens` (string `[batch, seq_len]`, "" at padding), `attributions` (float32
    `[batch, seq_len]`), `probability` and `logits` (`[batch]`, the explained class's),
    `baseline_logits` (`[batch]`, the zero-embedding baseline's: `attributions` sum to `logits -
    baseline_logits`), `steps` (int32 `[batch]`, the steps each text was integrated with), `class_id`
    (int32 `[batch]`, the class explained) and `label` (int32 `[batch]`, the predicted class).

    What is explained is one logit per text. The default class: a two-class model's second (its one
    logit, evidence for the second class against the first: positive minus negative for sentiment);
    with k > 2 classes, the predicted class. `make_class_explainer` explains a class chosen per text.
    `threshold`: two classes' decision threshold, for `label`.
    """

    explain_ids = make_token_id_explainer(model, steps, threshold)

    @tf.function(input_signature=[TEXT_SPEC], reduce_retracing=True)
    def explain(text):
        token_ids = encoder(text)  # [batch, seq_len]
        return {"tokens": encoder.tokens(text, token_ids), **explain_ids(token_ids)}

    return explain


def make_class_explainer(encoder, model, class_names, steps=DEFAULT_STEPS, threshold=0.5):
    """A `tf.function` from strings `[batch]` and class names `[batch]` to the explanation tensors of the
    named class of each text ("": the default class, as `make_explainer`). Two classes: the first class's
    logit is the one logit negated, so its attributions are the second's negated. A name that is not one
    of `class_names` fails with an InvalidArgumentError naming the model's classes."""

    explain_ids = make_token_id_explainer(model, steps, threshold)
    names = tf.constant(list(class_names), tf.string)  # [k]
    known = ", ".join(class_names)

    @tf.function(input_signature=[TEXT_SPEC, CLASS_NAME_SPEC], reduce_retracing=True)
    def explain_class(text, class_name):
        matches = tf.equal(class_name[:, None], names[None])  # [batch, k]
        tf.debugging.Assert(tf.reduce_all(tf.reduce_any(matches, axis=1) | tf.equal(class_name, "")),
                            [f"class_name must be one of: {known} (or empty: the default class); got", class_name])
        class_ids = tf.where(tf.equal(class_name, ""), DEFAULT_CLASS,
                             tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int32))  # [batch]
        token_ids = encoder(text)  # [batch, seq_len]
        return {"tokens": encoder.tokens(text, token_ids), **explain_ids(token_ids, class_ids)}

    return explain_class


def make_token_id_explainer(model, steps=DEFAULT_STEPS, threshold=0.5):
    """Integrated Gradients on token ids `[batch, seq_len]` (see `make_explainer`; no `tokens`)."""

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    path = embedding_path_of_any(model)
    most_steps = steps * 2**MAX_DOUBLINGS

    def gradient_sum(embeddings, token_ids, class_id, call, intervals):
        """The gradient `[seq_len, dim]` of class `class_id`'s logit summed over `steps` midpoints (call
        number `call`) of the path cut into `intervals` equal steps: one model call, whatever `intervals`."""
        alphas = (tf.cast(tf.range(call * steps, (call + 1) * steps), tf.float32) + 0.5) / tf.cast(intervals, tf.float32)
        scaled = alphas[:, None, None] * embeddings[None]  # [steps, seq_len, dim]: points on the path
        with tf.GradientTape() as tape:
            tape.watch(scaled)
            logits = path.logits(scaled, tf.tile(token_ids[None], [steps, 1]))  # [steps] or [steps, k]
            logits = pick_class(logits, tf.fill([steps], class_id))  # [steps]
        # ZERO: a logit that does not read the embeddings (an n-gram stack with a = 0) has gradient 0, not None
        gradient = tape.gradient(logits, scaled, unconnected_gradients=tf.UnconnectedGradients.ZERO)  # [steps, seq_len, dim]
        return tf.reduce_sum(gradient, axis=0)

    def attribute_one_text(inputs):
        """`(steps used, attributions [seq_len])`. One loop of model calls: when a pass over the path ends
        and the attributions miss `difference` by more than the tolerance, the next pass has twice the
        steps. (One loop, not one per pass, so the model's gradient is traced once.)"""
        embeddings, token_ids, difference, class_id = inputs  # [seq_len, dim], [seq_len], logit - baseline logit, class
        allowed = COMPLETENESS_TOLERANCE * tf.maximum(tf.abs(difference), 0.05)

        def one_call(intervals, call, total, attributions, done):
            total += gradient_sum(embeddings, token_ids, class_id, call, intervals)
            call += 1
            pass_ends = call * steps >= intervals
            attributions = tf.where(pass_ends, tf.reduce_sum(total / tf.cast(intervals, tf.float32) * embeddings, -1),
                                    attributions)
            complete = tf.abs(tf.reduce_sum(attributions) - difference) <= allowed
            done = pass_ends & (complete | (intervals >= most_steps))
            again = pass_ends & ~done
            return (tf.where(again, 2 * intervals, intervals), tf.where(again, 0, call),
                    tf.where(again, tf.zeros_like(total), total), attributions, done)

        start = (tf.constant(steps), tf.constant(0), tf.zeros_like(embeddings), tf.zeros_like(token_ids, tf.float32),
                 tf.constant(False))
        intervals, _, _, attributions, _ = tf.while_loop(lambda *state: ~state[-1], one_call, start)
        return intervals, attributions

    def explain_ids(token_ids, class_ids=None):
        """`class_ids` (int32 `[batch]`): the class to explain per text, `DEFAULT_CLASS` or None: the default."""
        embeddings = path.embed(token_ids)  # [batch, seq_len, dim]
        # The texts and their baselines in one call: [2 * batch]
        both = path.logits(tf.concat([embeddings, tf.zeros_like(embeddings)], 0), tf.concat([token_ids, token_ids], 0))
        all_logits, all_baseline_logits = both[: tf.shape(token_ids)[0]], both[tf.shape(token_ids)[0] :]
        if class_ids is None:
            class_ids = tf.fill(tf.shape(token_ids)[:1], DEFAULT_CLASS)
        if all_logits.shape.rank == 1:  # two classes: the one logit is the second class's
            predicted = tf.cast(all_logits > log_odds(threshold), tf.int32)
            class_ids = tf.where(class_ids == DEFAULT_CLASS, 1, class_ids)
            probability = tf.sigmoid(pick_class(all_logits, class_ids))
        else:  # k classes: the default is the predicted one
            predicted = tf.argmax(all_logits, axis=-1, output_type=tf.int32)
            class_ids = tf.where(class_ids == DEFAULT_CLASS, predicted, class_ids)
            probability = pick_class(tf.nn.softmax(all_logits, axis=-1), class_ids)
        logits, baseline_logits = pick_class(all_logits, class_ids), pick_class(all_baseline_logits, class_ids)
        # One text at a time, each refined as far as it needs.
        steps_used, attributions = tf.map_fn(attribute_one_text, (embeddings, token_ids, logits - baseline_logits, class_ids),
                                             fn_output_signature=(tf.int32, tf.float32))
        if path.token_shares is not None:  # an n-gram branch: its exact shares, and a baseline without it
            shares = path.token_shares(token_ids)  # [batch, seq_len], or [batch, seq_len, k] for k classes
            if shares.shape.rank == 3:
                shares = tf.gather(shares, class_ids, axis=2, batch_dims=1)  # [batch, seq_len]: the class's
            else:
                shares *= tf.where(class_ids == 0, -1.0, 1.0)[:, None]
            attributions += shares
            baseline_logits -= tf.reduce_sum(shares, axis=1)
        attributions *= tf.cast(tf.not_equal(token_ids, 0), tf.float32)  # exactly 0 at padding
        return {"attributions": attributions, "probability": probability, "logits": logits,
                "baseline_logits": baseline_logits, "steps": steps_used, "class_id": class_ids, "label": predicted}

    return explain_ids


def pick_class(logits, class_ids):
    """Each row's logit of its class, `[batch]`: of `[batch, k]` logits the class's column; of a two-class
    model's `[batch]` logits (the second class's, against the first) the logit, negated for class 0."""
    if logits.shape.rank == 1:
        return tf.where(class_ids == 0, -logits, logits)
    return tf.gather(logits, class_ids, axis=1, batch_dims=1)


def embedding_path_of_any(model):
    """The `EmbeddingPath` of any of our models, told apart by their layers: a bert_gru's or a recurrent
    model's, and for a model with `--ngrams` (`build_with_ngrams`, whatever its first part) that of its
    first part with the n-gram part on top."""
    part = recurrent.recurrent_part(model)
    path = bert.embedding_path(part) if bert.is_bert_gru(part) else recurrent.embedding_path(part)
    if part is model:
        return path
    first_tokens, ngram = recurrent.ngram_parts(model)
    if ngram is None:
        raise ValueError(f"{model.name}: a model with n-grams beside its recurrent part holds one NgramLogit layer")
    if first_tokens is not None:
        path = recurrent.on_first_tokens(path, first_tokens)
    return recurrent.with_ngrams(path, ngram, model.get_layer(recurrent.STACK))
