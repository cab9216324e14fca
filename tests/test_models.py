import numpy as np
import pytest
import tensorflow as tf

import keras
from conftest import make_examples
from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.recurrent import ARCHITECTURES, POOLINGS, MaskedPooling, ModelConfig, build_model, load_embedding_matrix
from keras_sentiment.core.vectorizer import build_vectorizer, encode_texts
from keras_sentiment.run.settings import resolve_settings

SMALL = ModelConfig(vocab_size=64, embedding_dim=16, hidden_dim=16, dropout=0.1)


def encoded_examples(count, seed, vectorizer):
    texts, labels = zip(*make_examples(count, seed))
    ids = encode_texts(vectorizer, tf.constant(texts), max_length=32).numpy()
    return ids, np.array(labels, "float32")


@pytest.fixture(scope="module")
def vectorizer():
    vectorizer = build_vectorizer(vocab_size=64)
    vectorizer.adapt(tf.constant([text for text, _ in make_examples(400, seed=99)]))
    return vectorizer


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_each_arch_learns_a_separable_task(arch, vectorizer):
    keras.utils.set_random_seed(0)
    x_train, y_train = encoded_examples(600, seed=1, vectorizer=vectorizer)
    x_test, y_test = encoded_examples(200, seed=2, vectorizer=vectorizer)
    model = build_model(arch, SMALL)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
    model.fit(x_train, y_train, batch_size=32, epochs=6, verbose=0)
    accuracy = np.mean((model.predict(x_test, verbose=0)[:, 0] > 0) == y_test)
    assert accuracy >= 0.95, f"{arch} reached only {accuracy:.3f} on held-out data"


@pytest.mark.parametrize("pooling", ["max", "mean"])
@pytest.mark.parametrize("arch", ["bilstm", "gru"])
def test_pooled_models_learn_a_separable_task(arch, pooling, vectorizer):
    keras.utils.set_random_seed(0)
    x_train, y_train = encoded_examples(600, seed=1, vectorizer=vectorizer)
    x_test, y_test = encoded_examples(200, seed=2, vectorizer=vectorizer)
    model = build_model(arch, ModelConfig(**{**SMALL.to_dict(), "pooling": pooling}))
    assert model.get_layer(f"{pooling}_pooling").mode == pooling
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x_train, y_train, batch_size=32, epochs=6, verbose=0)
    accuracy = np.mean((model.predict(x_test, verbose=0)[:, 0] > 0) == y_test)
    assert accuracy >= 0.95, f"{arch} with {pooling} pooling reached only {accuracy:.3f} on held-out data"


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_padding_never_changes_a_prediction(arch, pooling):
    keras.utils.set_random_seed(1)
    model = build_model(arch, ModelConfig(**{**SMALL.to_dict(), "pooling": pooling}))
    rng = np.random.default_rng(0)
    short = rng.integers(2, 64, size=(1, 5))
    alone = model(short, training=False).numpy()
    # The same text right-padded beside texts 12x longer, at another batch position.
    batch = np.zeros((4, 60), "int64")
    batch[:, :] = rng.integers(2, 64, size=(4, 60))
    batch[2] = 0
    batch[2, :5] = short
    beside_longer = model(batch, training=False).numpy()[2]
    np.testing.assert_allclose(beside_longer, alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_recurrent_layer_stays_cudnn_eligible(arch):
    model = build_model(arch, SMALL)
    recurrent = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.RNN)]
    assert recurrent, arch
    for layer in recurrent:
        config = layer.get_config()
        assert config["recurrent_dropout"] == 0 and not config.get("unroll")
        if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
            assert config["activation"] == "tanh" and config["recurrent_activation"] == "sigmoid"
            assert config["use_bias"] is True
        if isinstance(layer, keras.layers.GRU):
            assert config["reset_after"] is True
    assert model.get_layer("embedding").get_config()["mask_zero"] is True


def test_default_layer_counts_and_final_state_width():
    """The seed design's layer counts are the settings table's (the architecture's defaults); the model
    code builds what it is given."""
    def count(arch, kind):
        settings = resolve_settings({"arch": arch, "recipe": "seed"}, stamp="x")
        model = build_model(arch, ModelConfig(vocab_size=50, embedding_dim=8, hidden_dim=6, num_layers=settings.num_layers))
        return sum(isinstance(layer, kind) for layer in model.layers)
    assert count("lstm", keras.layers.LSTM) == 1
    assert count("stacked_lstm", keras.layers.LSTM) == 2
    assert count("bilstm", keras.layers.Bidirectional) == 2
    assert sum(isinstance(layer, keras.layers.Bidirectional) for layer in build_model(
        "bigru", ModelConfig(vocab_size=50, embedding_dim=8, hidden_dim=6, num_layers=3)).layers) == 3
    # Forward and backward final states are concatenated into the logit layer.
    assert build_model("bilstm", ModelConfig(vocab_size=50, embedding_dim=8, hidden_dim=6)).get_layer("logit").kernel.shape == (12, 1)


def test_masked_pooling_ignores_padding_and_pools_empty_texts_to_zero():
    states = np.array([[[1.0, -4.0], [5.0, -2.0], [9.0, 7.0]], [[3.0, 3.0], [8.0, 8.0], [1.0, 1.0]]], "float32")
    mask = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_allclose(MaskedPooling("max")(states, mask=mask).numpy(), [[5.0, -2.0], [0.0, 0.0]])
    np.testing.assert_allclose(MaskedPooling("mean")(states, mask=mask).numpy(), [[3.0, -3.0], [0.0, 0.0]])
    np.testing.assert_allclose(MaskedPooling("max")(states).numpy(), [[9.0, 7.0], [8.0, 8.0]])
    with pytest.raises(KerasSentimentError, match="'max' or 'mean'"):
        MaskedPooling("sum")


def test_pooled_model_survives_save_and_load(tmp_path):
    model = build_model("bilstm", ModelConfig(**{**SMALL.to_dict(), "pooling": "max"}))
    ids = np.array([[5, 6, 7, 0, 0], [0, 0, 0, 0, 0]])
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded(ids).numpy(), model(ids).numpy(), atol=1e-6)
    assert np.isfinite(loaded(ids).numpy()).all()  # the all-padding row pools to zeros, not -inf
    assert loaded.get_layer("max_pooling").get_config()["mode"] == "max"


def test_unknown_pooling_is_a_clear_error():
    with pytest.raises(KerasSentimentError, match="unknown pooling 'attention'"):
        build_model("lstm", ModelConfig(vocab_size=50, pooling="attention"))


def test_no_dropout_after_the_logit():
    model = build_model("bilstm", SMALL)
    assert model.layers[-1].name == "logit" and isinstance(model.layers[-1], keras.layers.Dense)


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(KerasSentimentError, match="unknown architecture 'transformer'"):
        build_model("transformer")


def test_glove_embeddings_initialise_found_words(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("good 0.1 0.2 0.3\nunrelated 1 1 1\nbad -0.1 -0.2 -0.3\n")
    vocabulary = ["", "[UNK]", "good", "bad", "plot"]
    matrix, found = load_embedding_matrix(glove, vocabulary, 3)
    assert found == 2
    np.testing.assert_allclose(matrix[2], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(matrix[3], [-0.1, -0.2, -0.3])
    assert not matrix[:2].any() and matrix[4].any() and np.abs(matrix[4]).max() <= 0.05


def test_glove_dimension_mismatch_is_a_clear_error(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("good 0.1 0.2 0.3\n")
    with pytest.raises(KerasSentimentError, match=r"glove.txt:1: vector has 3 values but --embedding-dim is 5"):
        load_embedding_matrix(glove, ["", "[UNK]", "good"], 5)
