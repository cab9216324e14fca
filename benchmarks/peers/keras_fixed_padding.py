"""Peer (2): the keras-io style baseline (examples/nlp/bidirectional_lstm_imdb.py).

Token ids padded with `keras.utils.pad_sequences` to one fixed length, no bucketing and no mask:
`Embedding` -> `Bidirectional(LSTM, return_sequences=True)` -> `Bidirectional(LSTM)` ->
`Dense(1)`, trained with `model.fit` on the padded arrays. `config["arch"]` "bigru" makes the
layers GRUs; `config["pooling"]` "max" takes the maximum over every position's states (padding
included: this design has no mask) instead of the final state. Raw text is turned into ids with a
`TextVectorization` adapted on the training texts (the example starts from pre-tokenized ids).
"""

import keras
import numpy as np
from keras import layers


def build_model(vocab_size, config):
    inputs = keras.Input(shape=(None,), dtype="int32")  # [batch, max_length]
    recurrent = layers.GRU if config["arch"] == "bigru" else layers.LSTM
    x = layers.Embedding(vocab_size, config["embedding_dim"])(inputs)  # [batch, max_length, emb_dim]
    for _ in range(config["num_layers"] - 1):
        x = layers.Bidirectional(recurrent(config["hidden_dim"], return_sequences=True))(x)
    if config["pooling"] == "max":
        x = layers.Bidirectional(recurrent(config["hidden_dim"], return_sequences=True))(x)
        x = layers.GlobalMaxPooling1D()(x)  # [batch, 2 * hidden]
    else:
        x = layers.Bidirectional(recurrent(config["hidden_dim"]))(x)  # [batch, 2 * hidden]
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def build_vectorizer(texts, vocab_size):
    vectorizer = layers.TextVectorization(max_tokens=vocab_size)
    vectorizer.adapt(texts)
    return vectorizer


def encode(vectorizer, texts, max_length):
    """Raw texts to `[n, max_length]` ids, padded and truncated as pad_sequences does (at the front)."""
    rows = []
    for start in range(0, len(texts), 1000):  # in chunks: a whole split padded to its longest is large
        ids = vectorizer(np.asarray(texts[start : start + 1000], dtype=object)).numpy()  # [chunk, longest]
        rows.extend(row[row != 0].tolist() for row in ids)
    return keras.utils.pad_sequences(rows, maxlen=max_length)


def train_from_text(model, vectorizer, texts, labels, batch_size, max_length, callbacks=()):
    x = encode(vectorizer, texts, max_length)
    model.fit(x, np.asarray(labels, "float32"), batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
              callbacks=list(callbacks))


def predict_from_text(model, vectorizer, texts, batch_size, max_length):
    return model.predict(encode(vectorizer, texts, max_length), batch_size=batch_size, verbose=0)[:, 0]
