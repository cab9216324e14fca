"""Masked recurrent sentiment classifiers, Keras functional API.

Every model maps right-padded token ids `[batch, seq_len]` (0 = padding) to logits: one per
text `[batch, 1]` for two classes (> 0: the second), one per class `[batch, k]` for k > 2 (a
softmax over them gives the probabilities). `Embedding(mask_zero=True)` carries a mask through every recurrent layer,
so padding never changes a prediction; with default activations, no `recurrent_dropout` and
right padding, each layer stays eligible for the cuDNN kernel on a GPU.

Example:
>>> import numpy as np
>>> model = build_model("bilstm", ModelConfig(vocab_size=100, embedding_dim=8, hidden_dim=4))
>>> model(np.array([[5, 6, 7, 0]])).shape
TensorShape([1, 1])
"""

import inspect
from dataclasses import asdict, dataclass, fields

import keras
import numpy as np
from keras import layers, ops

from keras_sentiment.core import ngrams  # NgramLogit: a model with --ngrams holds one (and loading needs it registered)
from keras_sentiment.core.errors import KerasSentimentError

POOLINGS = ("last", "max", "mean")  # the settings table offers the same (tests/test_layers.py checks)


@dataclass
class ModelConfig:
    """Hyper-parameters shared by every recurrent architecture.

    The defaults are the seed tutorials' design, as the settings table's (`keras_sentiment.run.settings`;
    tests/test_layers.py checks that they agree); training passes every value explicitly.

    Args:
        vocab_size: rows of the embedding matrix (PAD and OOV included).
        embedding_dim: width of a token embedding.
        hidden_dim: units per recurrent layer (per direction when bidirectional).
        num_layers: recurrent layers.
        dropout: rate on the embeddings, between recurrent layers and on the final state.
        pooling: how the top layer's states become one vector per text: "last" (its final
            state, the seed design), "max" or "mean" over the real (unmasked) tokens.
        num_classes: classes to tell apart: 2 gives one logit (sigmoid), more one logit per class (softmax).
    """

    vocab_size: int = 25_000
    embedding_dim: int = 100
    hidden_dim: int = 256
    num_layers: int = 1
    dropout: float = 0.5
    pooling: str = "last"
    num_classes: int = 2

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self):
        return asdict(self)


@keras.saving.register_keras_serializable(package="keras_sentiment")
class TargetAccuracy(keras.metrics.BinaryAccuracy):
    """Accuracy against targets rounded at 0.5: a distilled student's (`--teacher`) targets are the
    teacher's probabilities, which would never equal a 0/1 prediction. Defined here, beside the
    recurrent layers, so that loading a student's checkpoint (which records its metric) finds it."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(ops.cast(ops.greater(y_true, 0.5), self.dtype), y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="keras_sentiment")
class MacroF1(keras.metrics.Metric):
    """The mean over the classes of each class's F1 (2 TP / (2 TP + FP + FN); 0 for a class never true nor
    predicted), from logits: `[batch]` or `[batch, 1]` for two classes (> 0: the second), `[batch, k]` for k.
    Labels are class ids, or a teacher's probabilities of the second class (rounded at 0.5).

    Example:
    >>> metric = MacroF1(num_classes=3)
    >>> metric.update_state([0, 1, 2, 2], [[3.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0], [0, 0, 1.0]])
    >>> round(float(metric.result()), 4)  # F1 per class: 1, 2/3, 2/3
    0.7778
    """

    def __init__(self, num_classes, name="macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.confusion = self.add_variable(shape=(num_classes, num_classes), initializer="zeros", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        k = self.num_classes
        if k == 2 and (len(y_pred.shape) == 1 or y_pred.shape[-1] == 1):
            true = ops.cast(ops.greater(ops.reshape(y_true, [-1]), 0.5), "int32")
            predicted = ops.cast(ops.greater(ops.reshape(y_pred, [-1]), 0.0), "int32")
        else:
            true = ops.cast(ops.reshape(y_true, [-1]), "int32")
            predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        pairs = ops.one_hot(true, k)[:, :, None] * ops.one_hot(predicted, k)[:, None, :]  # [batch, k, k]
        self.confusion.assign_add(ops.cast(ops.sum(pairs, axis=0), self.confusion.dtype))

    def result(self):
        true_positives = ops.diagonal(self.confusion)
        wrong = ops.sum(self.confusion, axis=0) + ops.sum(self.confusion, axis=1) - 2 * true_positives  # FP + FN
        return ops.mean(ops.divide_no_nan(2 * true_positives, 2 * true_positives + wrong))

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="keras_sentiment")
class MaskedPooling(layers.Layer):
    """Max or mean over the real time steps: `[batch, seq_len, dim]` -> `[batch, dim]`.

    Padded steps (mask False) never contribute, so padding cannot change the result; a text
    with no real step (an empty string) pools to zeros rather than -inf or NaN. Keras'
    `GlobalMaxPooling1D` ignores the mask, hence this layer.

    Args:
        mode: "max" or "mean".

    Example:
    >>> import numpy as np
    >>> states = np.array([[[1.0], [5.0], [9.0]]], "float32")
    >>> MaskedPooling("max")(states, mask=np.array([[True, True, False]])).numpy()
    array([[5.]], dtype=float32)
    """

    def __init__(self, mode="max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise KerasSentimentError(f"MaskedPooling mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], "bool")
        mask = ops.expand_dims(ops.cast(mask, "bool"), -1)  # [batch, seq_len, 1]
        if self.mode == "max":
            pooled = ops.max(ops.where(mask, inputs, float("-inf")), axis=1)  # [batch, dim]
        else:
            count = ops.sum(ops.cast(mask, inputs.dtype), axis=1)  # [batch, 1]
            pooled = ops.sum(ops.where(mask, inputs, 0.0), axis=1) / ops.maximum(count, 1.0)
        return ops.where(ops.any(mask, axis=1), pooled, 0.0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def build_recurrent_classifier(config, recurrent_layer, num_layers, bidirectional, name):
    """Embedding -> `num_layers` masked recurrent layers -> pooling -> Dense logits (`logit_units`).

    With `pooling="last"` the top layer's final state (forward and backward concatenated when
    bidirectional) feeds the classifier; the mask makes that the state at each text's last real
    token. With "max" or "mean" the top layer returns every state and `MaskedPooling` reduces
    them over the real tokens, so a long review's early sentences reach the logit directly.
    """
    if num_layers < 1:
        raise KerasSentimentError(f"num_layers must be >= 1, got {num_layers}")
    if config.num_classes < 2:
        raise KerasSentimentError(f"num_classes must be >= 2, got {config.num_classes}")
    if config.pooling not in POOLINGS:
        raise KerasSentimentError(f"unknown pooling {config.pooling!r}; choose one of {list(POOLINGS)}")
    pool_states = config.pooling != "last"

    def recurrent(return_sequences, index):
        layer = recurrent_layer(config.hidden_dim, return_sequences=return_sequences, name=f"{name}_{index}")
        return layers.Bidirectional(layer, name=f"bi_{name}_{index}") if bidirectional else layer

    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")  # [batch, seq_len]
    x = layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True, name="embedding")(token_ids)
    x = layers.Dropout(config.dropout, name="embedding_dropout")(x)  # [batch, seq_len, emb_dim]
    for index in range(num_layers - 1):
        x = recurrent(return_sequences=True, index=index)(x)  # [batch, seq_len, hidden * directions]
        x = layers.Dropout(config.dropout, name=f"dropout_{index}")(x)
    x = recurrent(return_sequences=pool_states, index=num_layers - 1)(x)
    if pool_states:  # x: [batch, seq_len, hidden * directions]
        x = MaskedPooling(config.pooling, name=f"{config.pooling}_pooling")(x)
    x = layers.Dropout(config.dropout, name="state_dropout")(x)  # [batch, hidden * directions]
    logits = layers.Dense(logit_units(config.num_classes), name="logit")(x)  # [batch, 1 or k]
    return keras.Model(token_ids, logits, name=name)


def logit_units(num_classes):
    """Logits per text: one for two classes (the second's log-odds), else one per class."""
    return 1 if num_classes == 2 else num_classes


# The recurrent architectures: (recurrent layer, bidirectional). Their layer counts and other
# defaults are the run's business (`keras_sentiment.run.settings.ARCHITECTURES`).
RECURRENT_LAYERS = {
    "rnn": (layers.SimpleRNN, False),  # Elman RNN
    "lstm": (layers.LSTM, False),
    "stacked_lstm": (layers.LSTM, False),  # several layers by default
    "bilstm": (layers.LSTM, True),
    "gru": (layers.GRU, False),
    "bigru": (layers.GRU, True),
}
ARCHITECTURES = tuple(RECURRENT_LAYERS)


def build_model(arch, config=None):
    """Token ids -> logit model of a recurrent architecture by name (see `RECURRENT_LAYERS`)."""
    if arch not in RECURRENT_LAYERS:
        raise KerasSentimentError(f"unknown architecture {arch!r}; choose one of {sorted(RECURRENT_LAYERS)}")
    config = config or ModelConfig()
    recurrent_layer, bidirectional = RECURRENT_LAYERS[arch]
    return build_recurrent_classifier(config, recurrent_layer, config.num_layers, bidirectional, arch)


def build_ensemble(members, name):
    """One model whose logit is the mean of `members`' logits (`--ensemble N`).

    Each member is a whole token ids -> logit model with its own embedding and mask, so the
    ensemble is padding-invariant like its members. Averaging logits, not probabilities, keeps
    the output a logit that our loss, metrics, scorers and exports read unchanged.

    Args:
        members: trained classifiers (token ids `[batch, seq_len]` -> logit `[batch, 1]`); they are
            wrapped as `member_1`, `member_2`, ... so their names never clash.
        name: the model's name: the members' architecture.

    Example:
    >>> import numpy as np
    >>> members = [build_model("gru", ModelConfig(vocab_size=50, embedding_dim=4, hidden_dim=3)) for _ in range(2)]
    >>> ensemble = build_ensemble(members, "gru")
    >>> ids = np.array([[5, 6, 0]])
    >>> bool(np.allclose(ensemble(ids), (members[0](ids) + members[1](ids)) / 2, atol=1e-6))
    True
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")  # [batch, seq_len]
    member_logits = [keras.Model(member.input, member.output, name=f"member_{number}")(token_ids)
                     for number, member in enumerate(members, start=1)]  # each [batch, 1]
    logits = layers.Average(name="mean_logit")(member_logits)  # [batch, 1]
    return keras.Model(token_ids, logits, name=name)


def ensemble_members(model):
    """The member models of a `build_ensemble` model; [] for a single classifier."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name.startswith("member_")]


RECURRENT_PART, NGRAM_PART, STACK, FIRST_TOKENS = "recurrent", "ngram_logit", "stack", "first_tokens"


@keras.saving.register_keras_serializable(package="keras_sentiment")
class FirstTokens(layers.Layer):
    """Token ids `[batch, seq_len]` -> the first `length` of them, as the encoder would have given at `length`.

    So a model that reads fewer tokens than the n-grams beside it (`--ngram-max-length`) gets its
    own ids back from the longer ones. With `end_id` (BERT's `[SEP]`), a text cut here ends with it.

    Args:
        length: tokens kept.
        end_id: the id that ends every sequence, or None.

    Example:
    >>> FirstTokens(4, end_id=3)(np.array([[2, 5, 6, 7, 8, 3], [2, 5, 3, 0, 0, 0]])).numpy().tolist()
    [[2, 5, 6, 3], [2, 5, 3, 0]]
    """

    def __init__(self, length, end_id=None, **kwargs):
        super().__init__(**kwargs)
        self.length, self.end_id = int(length), None if end_id is None else int(end_id)

    def call(self, token_ids):
        kept = token_ids[:, : self.length]  # [batch, <= length]
        if self.end_id is None:
            return kept
        cut = ops.any(ops.not_equal(token_ids[:, self.length :], 0), axis=1)  # [batch]: the text went on
        last = ops.equal(ops.arange(ops.shape(kept)[1]), self.length - 1)  # [<= length]
        return ops.where(ops.logical_and(cut[:, None], last[None, :]), ops.cast(self.end_id, kept.dtype), kept)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None)

    def get_config(self):
        return {**super().get_config(), "length": self.length, "end_id": self.end_id}


def build_with_ngrams(recurrent, ngram_logit, stack, first_tokens=None):
    """One model: `a * recurrent logit + b * n-gram logit + c` (`--ngrams N`, `keras_sentiment.core.ngrams`),
    per class for k classes.

    Args:
        recurrent: a trained classifier (token ids `[batch, seq_len]` -> logits `[batch, 1]`, or `[batch, k]`).
        ngram_logit: a fitted `NgramLogit` layer over the same token ids, with as many logits.
        stack: `(a, b, c)`, fitted on the valid split (`ngrams.fit_stack`); `c` a number, or k of them.
        first_tokens: a `FirstTokens` when the n-grams read longer ids than `recurrent` (`--ngram-max-length`):
            `recurrent` reads its part of them.

    Example:
    >>> import numpy as np
    >>> from keras_sentiment.core.ngrams import NgramLogit
    >>> gru = build_model("gru", ModelConfig(vocab_size=50, embedding_dim=4, hidden_dim=3))
    >>> bag = NgramLogit(vocabulary_size=50, order=1, num_features=1)
    >>> bag.set_feature_weights(np.array([5]), np.array([2.0]), bias=0.0)
    >>> both = build_with_ngrams(gru, bag, (0.5, 1.0, 0.1))
    >>> ids = np.array([[5, 6, 0]])
    >>> bool(np.allclose(both(ids), 0.5 * gru(ids) + 2.0 + 0.1, atol=1e-6))
    True
    """
    a, b, c = stack
    units = recurrent.output.shape[-1]  # 1, or k
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")  # [batch, seq_len]
    recurrent_ids = first_tokens(token_ids) if first_tokens is not None else token_ids  # [batch, <= its max_length]
    recurrent_logit = keras.Model(recurrent.input, recurrent.output, name=RECURRENT_PART)(recurrent_ids)  # [batch, units]
    both = layers.Concatenate(name="logits")([recurrent_logit, ngram_logit(token_ids)])  # [batch, 2 * units]
    combine = layers.Dense(units, trainable=False, name=STACK)
    logits = combine(both)  # [batch, units]
    identity = np.eye(units, dtype="float32")  # each class's logit from its own two
    combine.set_weights([np.concatenate([a * identity, b * identity]), np.broadcast_to(np.float32(c), (units,))])
    return keras.Model(token_ids, logits, name=recurrent.name)


def ngram_parts(model):
    """`(first_tokens, ngram_logit)` of a `build_with_ngrams` model: its `FirstTokens` (None without one) and its one
    `NgramLogit` (None unless exactly one), found by type: their names are the caller's, and Keras numbers unnamed
    layers (`ngram_logit_1`)."""
    first_tokens = next((layer for layer in model.layers if isinstance(layer, FirstTokens)), None)
    bags = [layer for layer in model.layers if isinstance(layer, ngrams.NgramLogit)]
    return first_tokens, bags[0] if len(bags) == 1 else None


def stack_weights(stack):
    """`(a, b, c)` of a `build_with_ngrams` model's stack layer (`model.get_layer(STACK)`): the weights of its
    recurrent and its n-gram logits, and the bias (a number; k of them, an array, for k classes).

    Example:
    >>> from keras_sentiment.core.ngrams import NgramLogit
    >>> gru = build_model("gru", ModelConfig(vocab_size=50, embedding_dim=4, hidden_dim=3))
    >>> model = build_with_ngrams(gru, NgramLogit(vocabulary_size=50, order=1, num_features=1), (0.5, 2.0, 0.25))
    >>> stack_weights(model.get_layer(STACK))
    (0.5, 2.0, 0.25)
    """
    kernel, bias = stack.get_weights()  # [2 * units, units]: a * identity over b * identity; [units]
    units = kernel.shape[1]
    return float(kernel[0, 0]), float(kernel[units, 0]), (float(bias[0]) if units == 1 else bias)


def ngram_difference(model, other):
    """What `other`'s logits add to `model`'s, for two `build_with_ngrams` models that differ in their n-grams
    only (`--refit-ngrams` without `--refit`: the same recurrent part and weights a, b, c), without running the
    recurrent part: token ids `[batch, seq_len]` -> `b * (other's n-gram logit - model's)`, `[batch, units]`.

    Example:
    >>> import numpy as np
    >>> from keras_sentiment.core.ngrams import NgramLogit
    >>> gru = build_model("gru", ModelConfig(vocab_size=50, embedding_dim=4, hidden_dim=3))
    >>> bags = [NgramLogit(vocabulary_size=50, order=1, num_features=1, name=NGRAM_PART) for _ in range(2)]
    >>> bags[0].set_feature_weights(np.array([5]), np.array([2.0]), bias=0.0)
    >>> bags[1].set_feature_weights(np.array([5]), np.array([3.0]), bias=0.5)
    >>> first, second = (build_with_ngrams(gru, bag, (0.5, 2.0, 0.1)) for bag in bags)
    >>> ids = np.array([[5, 6, 0]])
    >>> bool(np.allclose(first(ids) + ngram_difference(first, second)(ids), second(ids), atol=1e-6))
    True
    """
    _, b, _ = stack_weights(model.get_layer(STACK))

    def ngram_logit(of, name):  # in a model of its own: both n-gram layers may have the same name
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        return keras.Model(token_ids, ngram_parts(of)[1](token_ids), name=name)

    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")  # [batch, seq_len]
    both = [ngram_logit(other, "other_ngrams")(token_ids), ngram_logit(model, "ngrams")(token_ids)]  # [batch, units] each
    return keras.Model(token_ids, layers.Rescaling(b)(layers.Subtract()(both)), name="ngram_difference")


def recurrent_part(model):
    """The recurrent classifier inside a `build_with_ngrams` model; the model itself otherwise."""
    names = [layer.name for layer in model.layers]
    return model.get_layer(RECURRENT_PART) if RECURRENT_PART in names else model


def embedding_path(model):
    """The model split at its word embeddings (`EmbeddingPath`), for Integrated Gradients.

    The layers after the embedding run in order with the text's padding mask given explicitly,
    so embeddings that are not the table's rows (the attribution path's) are masked like them.
    An ensemble's embeddings are its members' side by side (`[batch, seq_len, sum of widths]`):
    scaling them together scales each member's, so a token's attribution is the mean of its
    members' attributions, and they still add up to the ensemble's logit minus its baseline's.
    """
    members = ensemble_members(model)
    if members:
        return mean_of_paths([embedding_path(member) for member in members],
                             [member.get_layer("embedding").output_dim for member in members])
    embedding = model.get_layer("embedding")
    after = model.layers[model.layers.index(embedding) + 1 :]
    takes_mask = ["mask" in inspect.signature(layer.call).parameters for layer in after]

    def embed(token_ids):
        return ops.take(embedding.embeddings, token_ids, axis=0)  # [batch, seq_len, emb_dim]

    def logits(embeddings, token_ids):
        x, mask = embeddings, ops.not_equal(token_ids, 0)  # mask: [batch, seq_len]
        for layer, masked in zip(after, takes_mask):
            output = layer(x, mask=mask, training=False) if masked else layer(x, training=False)
            x, mask = output, layer.compute_mask(x, mask)  # None once the sequence is pooled
        return x[:, 0] if x.shape[-1] == 1 else x  # [batch], or [batch, k] for k classes

    return EmbeddingPath(embed, logits)


def mean_of_paths(paths, widths):
    """The `EmbeddingPath` of the mean of several models' logits, their embeddings concatenated."""
    ends = np.cumsum([0, *widths])

    def embed(token_ids):
        return ops.concatenate([path.embed(token_ids) for path in paths], axis=-1)  # [batch, seq_len, sum(widths)]

    def logits(embeddings, token_ids):
        parts = [path.logits(embeddings[..., start:end], token_ids) for path, start, end in zip(paths, ends, ends[1:])]
        return ops.mean(ops.stack(parts), axis=0)  # [batch]

    return EmbeddingPath(embed, logits)


def on_first_tokens(path, first_tokens):
    """The `EmbeddingPath` of a model that reads `first_tokens` of longer ids. The tokens past them get
    nothing from it; an end id that `first_tokens` put in place of a token keeps its own embedding,
    off the path (so it gets nothing either, and the path still ends at the model's logit)."""

    def logits(embeddings, token_ids):
        ids = first_tokens(token_ids)  # [batch, width]
        width = ops.shape(ids)[1]
        own = ops.equal(ids, token_ids[:, :width])[..., None]  # [batch, width, 1]: False where the end id went
        return path.logits(ops.where(own, embeddings[:, :width], ops.stop_gradient(path.embed(ids))), ids)

    return EmbeddingPath(path.embed, logits)


def with_ngrams(path, ngram_logit, stack):
    """The `EmbeddingPath` of `a * path's logit + b * n-gram logit + c` (per class for k classes). The n-gram
    part does not depend on the embeddings; its `token_shares` attribute it exactly (`NgramLogit.token_shares`).
    With `a = 0` the path's logit is not computed (nothing then depends on the embeddings: their gradient is 0)."""
    a, b, c = stack_weights(stack)

    def logits(embeddings, token_ids):
        ngram = ngram_logit(token_ids)  # [batch, units]
        ngram_part = b * (ngram[:, 0] if ngram_logit.units == 1 else ngram) + c  # [batch (, k)]
        return ngram_part if a == 0.0 else a * path.logits(embeddings, token_ids) + ngram_part

    def token_shares(token_ids):
        return b * ngram_logit.token_shares(token_ids)  # [batch, seq_len (, k)]

    return EmbeddingPath(path.embed, logits, token_shares)


@dataclass
class EmbeddingPath:
    """A model as two functions meeting at its token embeddings (`keras_sentiment.core.explanation`).

    Args:
        embed: token ids `[batch, seq_len]` -> their embeddings `[batch, seq_len, dim]`.
        logits: `(embeddings, token_ids)` -> logits `[batch]` (k classes: `[batch, k]`): the rest of
            the model, with the padding mask taken from `token_ids`; `logits(embed(ids), ids)` equals `model(ids)`.
        token_shares: None, or token ids -> `[batch, seq_len]`: exact attributions of a part of the
            logit that does not go through the embeddings (an n-gram branch), which the zero-embedding
            baseline keeps; explanations add them and take their sum off the baseline.
    """

    embed: object
    logits: object
    token_shares: object = None


def load_embedding_matrix(path, vocabulary, embedding_dim, seed=0):
    """A `[len(vocabulary), embedding_dim]` matrix from a GloVe-format text file.

    Words found in the file get their vectors; PAD (row 0) and OOV (row 1) are zero; other
    words are drawn like Keras' default `uniform(-0.05, 0.05)` embedding initializer.
    Returns `(matrix, num_found)`.
    """
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.05, 0.05, size=(len(vocabulary), embedding_dim)).astype("float32")
    matrix[:2] = 0.0
    index = {word: i for i, word in enumerate(vocabulary) if i >= 2}
    found = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                word, _, rest = line.rstrip().partition(" ")
                row = index.get(word)
                if row is None:
                    continue
                values = rest.split(" ")
                if len(values) != embedding_dim:
                    raise KerasSentimentError(
                        f"{path}:{number}: vector has {len(values)} values but --embedding-dim is "
                        f"{embedding_dim}; pass --embedding-dim {len(values)}"
                    )
                try:
                    matrix[row] = np.asarray(values, dtype="float32")
                except ValueError:
                    raise KerasSentimentError(f"{path}:{number}: not a GloVe line (word then numbers)") from None
                found.add(row)
    except OSError as error:
        raise KerasSentimentError(f"cannot read embeddings file {path}: {error.strerror}") from None
    return matrix, len(found)


