"""Masked recurrent sentiment classifiers, Keras functional API.

Every model maps right-padded token ids `[batch, seq_len]` (0 = padding) to one logit per
text `[batch, 1]`. `Embedding(mask_zero=True)` carries a mask through every recurrent layer,
so padding never changes a prediction; with default activations, no `recurrent_dropout` and
right padding, each layer stays eligible for the cuDNN kernel on a GPU.

Example:
>>> import numpy as np
>>> model = build_model("bilstm", ModelConfig(vocab_size=100, embedding_dim=8, hidden_dim=4))
>>> model(np.array([[5, 6, 7, 0]])).shape
TensorShape([1, 1])
"""

from dataclasses import asdict, dataclass, fields

import keras
import numpy as np
from keras import layers, ops

from keras_sentiment.errors import KerasSentimentError


@dataclass
class ModelConfig:
    """Hyper-parameters shared by every recurrent architecture.

    Args:
        vocab_size: rows of the embedding matrix (PAD and OOV included).
        embedding_dim: width of a token embedding.
        hidden_dim: units per recurrent layer (per direction when bidirectional).
        num_layers: recurrent layers; None takes the architecture's default.
        dropout: rate on the embeddings, between recurrent layers and on the final state.
        pooling: how the top layer's states become one vector per text: "last" (its final
            state, the seed design), "max" or "mean" over the real (unmasked) tokens.
    """

    vocab_size: int = 25_000
    embedding_dim: int = 100
    hidden_dim: int = 256
    num_layers: int | None = None
    dropout: float = 0.5
    pooling: str = "last"

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self):
        return asdict(self)


POOLINGS = ("last", "max", "mean")


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
    """Embedding -> `num_layers` masked recurrent layers -> pooling -> Dense(1) logit.

    With `pooling="last"` the top layer's final state (forward and backward concatenated when
    bidirectional) feeds the classifier; the mask makes that the state at each text's last real
    token. With "max" or "mean" the top layer returns every state and `MaskedPooling` reduces
    them over the real tokens, so a long review's early sentences reach the logit directly.
    """
    if num_layers < 1:
        raise KerasSentimentError(f"num_layers must be >= 1, got {num_layers}")
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
    logits = layers.Dense(1, name="logit")(x)  # [batch, 1]
    return keras.Model(token_ids, logits, name=name)


def build_rnn(config):
    """Elman `SimpleRNN`, 1 layer by default."""
    return build_recurrent_classifier(config, layers.SimpleRNN, config.num_layers or 1, False, "rnn")


def build_lstm(config):
    """Unidirectional LSTM, 1 layer by default."""
    return build_recurrent_classifier(config, layers.LSTM, config.num_layers or 1, False, "lstm")


def build_stacked_lstm(config):
    """Two (or `num_layers`) stacked unidirectional LSTMs."""
    return build_recurrent_classifier(config, layers.LSTM, config.num_layers or 2, False, "stacked_lstm")


def build_bilstm(config):
    """Two (or `num_layers`) stacked bidirectional LSTMs."""
    return build_recurrent_classifier(config, layers.LSTM, config.num_layers or 2, True, "bilstm")


def build_gru(config):
    """Unidirectional GRU, 1 layer by default."""
    return build_recurrent_classifier(config, layers.GRU, config.num_layers or 1, False, "gru")


def build_bigru(config):
    """Two (or `num_layers`) stacked bidirectional GRUs."""
    return build_recurrent_classifier(config, layers.GRU, config.num_layers or 2, True, "bigru")


ARCHITECTURES = {
    "rnn": build_rnn,
    "lstm": build_lstm,
    "stacked_lstm": build_stacked_lstm,
    "bilstm": build_bilstm,
    "gru": build_gru,
    "bigru": build_bigru,
}


def build_model(arch, config=None):
    """Build a registered architecture by name (see `ARCHITECTURES`)."""
    if arch not in ARCHITECTURES:
        raise KerasSentimentError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](config or ModelConfig())


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
