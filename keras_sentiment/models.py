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
from keras import layers

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
    """

    vocab_size: int = 25_000
    embedding_dim: int = 100
    hidden_dim: int = 256
    num_layers: int | None = None
    dropout: float = 0.5

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self):
        return asdict(self)


def build_recurrent_classifier(config, recurrent_layer, num_layers, bidirectional, name):
    """Embedding -> `num_layers` masked recurrent layers -> Dense(1) logit.

    The top layer's final state (forward and backward concatenated when bidirectional)
    feeds the classifier; the mask makes that the state at each text's last real token.
    """
    if num_layers < 1:
        raise KerasSentimentError(f"num_layers must be >= 1, got {num_layers}")

    def recurrent(return_sequences, index):
        layer = recurrent_layer(config.hidden_dim, return_sequences=return_sequences, name=f"{name}_{index}")
        return layers.Bidirectional(layer, name=f"bi_{name}_{index}") if bidirectional else layer

    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")  # [batch, seq_len]
    x = layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True, name="embedding")(token_ids)
    x = layers.Dropout(config.dropout, name="embedding_dropout")(x)  # [batch, seq_len, emb_dim]
    for index in range(num_layers - 1):
        x = recurrent(return_sequences=True, index=index)(x)  # [batch, seq_len, hidden * directions]
        x = layers.Dropout(config.dropout, name=f"dropout_{index}")(x)
    x = recurrent(return_sequences=False, index=num_layers - 1)(x)  # [batch, hidden * directions]
    x = layers.Dropout(config.dropout, name="state_dropout")(x)
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
