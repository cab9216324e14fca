"""Which tokens drove a prediction: Integrated Gradients over the token embeddings.

Integrated Gradients (Sundararajan, Taly and Yan, 2017) attributes the difference between the
logit of a text and that of a baseline to the text's tokens. Contract:

- Baseline: the zero vector at every real token position, with the text's own padding mask (the
  same length, the same padded steps): what the model says when the words carry no signal.
- Path: embeddings `alpha * e` for alpha in (0, 1], sampled at the midpoints of `steps` equal
  intervals, run as one batch per text. A token's attribution is
  `sum_d e[t, d] * mean_alpha d logit / d e[t, d]`, so attributions add up (completeness) to
  `logit(text) - logit(baseline)`, up to an integration error. When that error is over
  `COMPLETENESS_TOLERANCE` the text is integrated again with twice the steps (up to 16x); the
  `steps` output says how many each text took.
- Recurrent architectures attribute to the vectorizer's words (lowercased, punctuation removed;
  out-of-vocabulary words keep their own text and share the OOV embedding); `bert_gru` to word
  pieces, `[CLS]` and `[SEP]` included (`merge_word_pieces` sums the pieces of a word). Only the
  word-piece embeddings move; positions and segments stay as they are.
- An n-gram branch (`--ngrams N`) is linear in which n-grams a text holds, so it needs no path:
  each n-gram's weight is split evenly over its occurrences and their tokens
  (`NgramLogit.token_shares`), and the baseline drops it (no n-grams: only its bias).
- Padding never changes a text's attributions: padded positions are masked on the whole path and
  get exactly 0.

`make_explainer` is the one implementation: the library, the CLI (`keras-sentiment explain`) and
the SavedModel's `explain` signature (`keras_sentiment.export`) all run it.

Example:
>>> explanations = explain_texts("runs/imdb_bigru_...", ["A wonderful, moving film."])  # doctest: +SKIP
>>> [(e.token, round(e.attribution, 2)) for e in explanations[0].top(2)]  # doctest: +SKIP
[('wonderful', 2.31), ('moving', 0.74)]
"""

from dataclasses import dataclass, field

DEFAULT_STEPS = 32  # points on the path per model call, and the first try's count
# A text whose attributions miss logit - baseline logit by more than this fraction is integrated
# again with twice the steps, at most MAX_DOUBLINGS times (32 -> 512). Most texts of our real
# models meet it at 32 steps; a sharp turn in the path (a saturated model) needs more.
COMPLETENESS_TOLERANCE = 0.02
MAX_DOUBLINGS = 4
SPECIAL_PIECES = ("[CLS]", "[SEP]")


def make_explainer(encoder, model, steps=DEFAULT_STEPS):
    """A `tf.function` from strings `[batch]` to the explanation tensors.

    Returns a dict: `tokens` (string `[batch, seq_len]`, "" at padding), `attributions` (float32
    `[batch, seq_len]`), `probability` and `logits` (`[batch]`), `baseline_logits` (`[batch]`,
    the zero-embedding baseline's: `attributions` sum to `logits - baseline_logits`) and `steps`
    (int32 `[batch]`, the steps each text was integrated with).
    """
    import tensorflow as tf

    from keras_sentiment.export import TEXT_SPEC

    explain_ids = make_token_id_explainer(model, steps)

    @tf.function(input_signature=[TEXT_SPEC], reduce_retracing=True)
    def explain(text):
        token_ids = encoder(text)  # [batch, seq_len]
        return {"tokens": encoder.tokens(text, token_ids), **explain_ids(token_ids)}

    return explain


def make_token_id_explainer(model, steps=DEFAULT_STEPS):
    """Integrated Gradients on token ids `[batch, seq_len]` (see `make_explainer`; no `tokens`)."""
    import tensorflow as tf

    from keras_sentiment.models import embedding_path_of_any

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    path = embedding_path_of_any(model)
    most_steps = steps * 2**MAX_DOUBLINGS

    def gradient_sum(embeddings, token_ids, call, intervals):
        """The gradient `[seq_len, dim]` summed over `steps` midpoints (call number `call`) of the path
        cut into `intervals` equal steps: one model call, whatever `intervals`."""
        alphas = (tf.cast(tf.range(call * steps, (call + 1) * steps), tf.float32) + 0.5) / tf.cast(intervals, tf.float32)
        scaled = alphas[:, None, None] * embeddings[None]  # [steps, seq_len, dim]: points on the path
        with tf.GradientTape() as tape:
            tape.watch(scaled)
            logits = path.logits(scaled, tf.tile(token_ids[None], [steps, 1]))  # [steps]
        return tf.reduce_sum(tape.gradient(logits, scaled), axis=0)

    def attribute_one_text(inputs):
        """`(steps used, attributions [seq_len])`. One loop of model calls: when a pass over the path ends
        and the attributions miss `difference` by more than the tolerance, the next pass has twice the
        steps. (One loop, not one per pass, so the model's gradient is traced once.)"""
        embeddings, token_ids, difference = inputs  # [seq_len, dim], [seq_len], logit - baseline logit
        allowed = COMPLETENESS_TOLERANCE * tf.maximum(tf.abs(difference), 0.05)

        def one_call(intervals, call, total, attributions, done):
            total += gradient_sum(embeddings, token_ids, call, intervals)
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

    def explain_ids(token_ids):
        embeddings = path.embed(token_ids)  # [batch, seq_len, dim]
        # The texts and their baselines in one call: [2 * batch]
        both = path.logits(tf.concat([embeddings, tf.zeros_like(embeddings)], 0), tf.concat([token_ids, token_ids], 0))
        logits, baseline_logits = both[: tf.shape(token_ids)[0]], both[tf.shape(token_ids)[0] :]
        # One text at a time, each refined as far as it needs.
        steps_used, attributions = tf.map_fn(attribute_one_text, (embeddings, token_ids, logits - baseline_logits),
                                             fn_output_signature=(tf.int32, tf.float32))
        if path.token_shares is not None:  # an n-gram branch: its exact shares, and a baseline without it
            shares = path.token_shares(token_ids)  # [batch, seq_len]
            attributions += shares
            baseline_logits -= tf.reduce_sum(shares, axis=1)
        attributions *= tf.cast(tf.not_equal(token_ids, 0), tf.float32)  # exactly 0 at padding
        return {"attributions": attributions, "probability": tf.sigmoid(logits), "logits": logits,
                "baseline_logits": baseline_logits, "steps": steps_used}

    return explain_ids


# === Results in Python ===


@dataclass
class TokenAttribution:
    token: str
    attribution: float


@dataclass
class Explanation:
    """One text's explanation: its tokens in order, with P(positive) and the logits.

    `tokens` are word pieces for `bert_gru` unless merged (`merge_word_pieces`); padding is removed.
    """

    text: str
    tokens: list = field(default_factory=list)  # [TokenAttribution]
    probability: float = 0.0
    logit: float = 0.0
    baseline_logit: float = 0.0
    steps: int = 0  # Integrated Gradients steps it took (more when the first pass did not add up)

    @property
    def label(self):
        return int(self.logit > 0)

    def top(self, k):
        """The `k` tokens with the largest |attribution|, largest first."""
        return sorted(self.tokens, key=lambda t: -abs(t.attribution))[:k]

    def to_dict(self):
        return {"text": self.text, "probability": self.probability, "label": self.label, "logit": self.logit,
                "baseline_logit": self.baseline_logit, "steps": self.steps,
                "tokens": [t.token for t in self.tokens], "attributions": [t.attribution for t in self.tokens]}


def explanations_from_outputs(texts, outputs, merge_pieces=True):
    """`Explanation`s from the explainer's (or the `explain` signature's) outputs, as numpy or lists."""
    explanations = []
    for i, text in enumerate(texts):
        tokens = [t.decode("utf-8") if isinstance(t, bytes) else t for t in outputs["tokens"][i]]
        values = [float(v) for v in outputs["attributions"][i]]
        pairs = [TokenAttribution(t, v) for t, v in zip(tokens, values) if t]  # "" is padding
        if merge_pieces:
            pairs = merge_word_pieces(pairs)
        explanations.append(Explanation(text, pairs, float(outputs["probability"][i]), float(outputs["logits"][i]),
                                        float(outputs["baseline_logits"][i]), int(outputs["steps"][i])))
    return explanations


def merge_word_pieces(pairs):
    """Word pieces back to words: a `##` piece joins the word before it and adds its attribution;
    `[CLS]` and `[SEP]` are left out. Words of a recurrent model pass through unchanged.

    Example:
    >>> merge_word_pieces([TokenAttribution("[CLS]", 0.1), TokenAttribution("charm", 0.5),
    ...                    TokenAttribution("##ing", 0.25), TokenAttribution("[SEP]", 0.0)])
    [TokenAttribution(token='charming', attribution=0.75)]
    """
    words = []
    for pair in pairs:
        if pair.token in SPECIAL_PIECES:
            continue
        if pair.token.startswith("##") and words:
            last = words[-1]
            words[-1] = TokenAttribution(last.token + pair.token[2:], last.attribution + pair.attribution)
        else:
            words.append(TokenAttribution(pair.token, pair.attribution))
    return words


# === Printing ===

GREEN, RED, BOLD, RESET = "\033[32m", "\033[31m", "\033[1m", "\033[0m"


def format_explanation(explanation, colour=False):
    """A text's explanation for a terminal: the prediction, then one line per token (token, attribution).

    With `colour` the text is also shown whole, each word green (positive) or red (negative), bold
    when its |attribution| is at least half the largest; without, plain tab-separated columns.
    The last line checks completeness: the attributions' sum against logit - baseline logit.
    """
    label = "positive" if explanation.label else "negative"
    lines = [f"{explanation.probability:.4f}\t{label}\t{explanation.text}"]
    largest = max((abs(t.attribution) for t in explanation.tokens), default=0.0) or 1.0
    width = max((len(t.token) for t in explanation.tokens), default=0)

    def paint(text, value):
        if not colour:
            return text
        strong = BOLD if abs(value) >= largest / 2 else ""
        return f"{strong}{GREEN if value > 0 else RED if value < 0 else ''}{text}{RESET}"

    if colour:
        lines.append("  " + " ".join(paint(t.token, t.attribution) for t in explanation.tokens))
    for t in explanation.tokens:
        lines.append(f"  {paint(t.token.ljust(width), t.attribution)}\t{t.attribution:+.4f}" if colour
                     else f"  {t.token}\t{t.attribution:+.4f}")
    total = sum(t.attribution for t in explanation.tokens)
    lines.append(f"  sum {total:+.4f}\tlogit {explanation.logit:+.4f} - baseline {explanation.baseline_logit:+.4f} "
                 f"= {explanation.logit - explanation.baseline_logit:+.4f}\t({explanation.steps} steps)")
    return "\n".join(lines)


# === Loading ===


def load_explainer(path, steps=DEFAULT_STEPS):
    """A function from a list of strings to the explanation outputs (numpy).

    A run directory is explained with `steps`; a SavedModel runs its own `explain` signature (the
    steps it was exported with, `export --explain-steps`), with no `keras_sentiment` code involved.
    """
    import tensorflow as tf

    from keras_sentiment.errors import KerasSentimentError
    from keras_sentiment.inference import is_run_dir, load_run, load_saved_model

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


def explain_texts(path, texts, steps=DEFAULT_STEPS, batch_size=8, merge_pieces=True):
    """`Explanation`s for `texts` from a run directory or SavedModel (see `load_explainer`)."""
    return list(explain_in_batches(load_explainer(path, steps), texts, batch_size, merge_pieces))


def explain_in_batches(explain, texts, batch_size=8, merge_pieces=True):
    """Yield the `Explanation` of each text, `batch_size` texts per call of `explain` (a `load_explainer` result)."""
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        yield from explanations_from_outputs(chunk, explain(chunk), merge_pieces)
