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
the SavedModel's `explain` signature (`keras_sentiment.run.export`) all run it.

Example:
>>> import keras_sentiment as ks
>>> explanations = ks.load("runs/imdb_bigru_...").explain(["A wonderful, moving film."])  # doctest: +SKIP
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


# === Results in Python ===


@dataclass
class TokenAttribution:
    token: str
    attribution: float


@dataclass
class Explanation:
    """One text's explanation: its tokens in order, with the explained class's probability and logits.

    `tokens` are word pieces for `bert_gru` unless merged (`merge_word_pieces`); padding is removed.
    `class_id` is the class explained: by default a two-class model's second (its one logit, evidence
    for the second class against the first) and with k > 2 classes the predicted one; `probability`
    is that class's. `predicted` is the predicted class id (None: told by the logit's sign, as exports
    before chosen classes said it). `class_names` names the classes in class-id order.
    """

    text: str
    tokens: list = field(default_factory=list)  # [TokenAttribution]
    probability: float = 0.0
    logit: float = 0.0
    baseline_logit: float = 0.0
    steps: int = 0  # Integrated Gradients steps it took (more when the first pass did not add up)
    class_id: int = 1
    class_names: tuple = ("negative", "positive")
    predicted: int = None
    # bert_gru's word pieces merged into words leave [CLS] and [SEP] out of `tokens`: their attributions' sum,
    # which completeness counts (None: nothing left out)
    special_pieces: float = None

    @property
    def label(self):
        """The predicted class id."""
        if self.predicted is not None:
            return self.predicted
        return int(self.logit > 0) if len(self.class_names) == 2 else self.class_id

    @property
    def label_name(self):
        """The predicted class's name."""
        return self.class_names[self.label]

    @property
    def explained_name(self):
        """The explained class's name."""
        return self.class_names[self.class_id]

    @property
    def is_default_class(self):
        """Whether the class explained is the one explained by default (two classes: the second; more: the predicted)."""
        return self.class_id == (1 if len(self.class_names) == 2 else self.label)

    def top(self, k):
        """The `k` tokens with the largest |attribution|, largest first."""
        return sorted(self.tokens, key=lambda t: -abs(t.attribution))[:k]

    def to_dict(self):
        return {"text": self.text, "probability": self.probability, "label": self.label, "class": self.label_name,
                "explained": self.explained_name, "logit": self.logit,
                "baseline_logit": self.baseline_logit, "steps": self.steps,
                "tokens": [t.token for t in self.tokens], "attributions": [t.attribution for t in self.tokens],
                **({} if self.special_pieces is None else {"special_pieces": self.special_pieces})}


def explanations_from_outputs(texts, outputs, merge_pieces=True, class_names=("negative", "positive")):
    """`Explanation`s from the explainer's (or the `explain` signature's) outputs, as numpy or lists.

    Exports from before chosen classes have no `label` output, and a two-class one's `class_id` is 0 for
    the one logit: that is the second class explained."""
    explanations = []
    chosen = "label" in outputs
    for i, text in enumerate(texts):
        tokens = [t.decode("utf-8") if isinstance(t, bytes) else t for t in outputs["tokens"][i]]
        values = [float(v) for v in outputs["attributions"][i]]
        pairs = [TokenAttribution(t, v) for t, v in zip(tokens, values) if t]  # "" is padding
        special = [pair.attribution for pair in pairs if pair.token in SPECIAL_PIECES]
        if merge_pieces:
            pairs = merge_word_pieces(pairs)
        class_id = int(outputs["class_id"][i]) if chosen or len(class_names) > 2 else 1
        explanations.append(Explanation(text, pairs, float(outputs["probability"][i]), float(outputs["logits"][i]),
                                        float(outputs["baseline_logits"][i]), int(outputs["steps"][i]), class_id,
                                        tuple(class_names), int(outputs["label"][i]) if chosen else None,
                                        sum(special) if merge_pieces and special else None))
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
    The last line checks completeness: the attributions' sum against logit - baseline logit (with
    bert_gru's merged words, the sum counts the [CLS] and [SEP] pieces they leave out, and says so).
    """
    if explanation.is_default_class:
        lines = [f"{explanation.probability:.4f}\t{explanation.label_name}\t{explanation.text}"]
    else:
        lines = [f"P({explanation.explained_name}) {explanation.probability:.4f}\tpredicted {explanation.label_name}\t"
                 f"{explanation.text}"]
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
    words = sum(t.attribution for t in explanation.tokens)
    total = words + (explanation.special_pieces or 0.0)
    left_out = "" if explanation.special_pieces is None else (
        f" (words {words:+.4f}, [CLS] and [SEP] {explanation.special_pieces:+.4f})")
    lines.append(f"  sum {total:+.4f}{left_out}\tlogit {explanation.logit:+.4f} - baseline {explanation.baseline_logit:+.4f} "
                 f"= {explanation.logit - explanation.baseline_logit:+.4f}\t({explanation.steps} steps)")
    return "\n".join(lines)


# === Loading ===


