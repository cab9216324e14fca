"""The packed training recurrence (`keras_sentiment.core.packed_training`) gives Keras' training logits and gradients.

Weights are drawn large (not Keras' small initial ones), so that a wrong gate, bias, direction, pooled step or
gradient term would move the numbers far beyond the tolerance.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sentiment.core.packed_training import fitted_by_packed_recurrence, packed_training_forward
from keras_sentiment.core.recurrent import ModelConfig, build_model
from keras_sentiment.run.training import compile_model

VOCAB = 40
LENGTHS = [9, 1, 0, 4, 9, 2, 6, 3, 7]  # an empty text, a one-token one, ties, two columns of padding after 9


def right_padded_ids(lengths, width, seed=0):
    ids = np.random.default_rng(seed).integers(2, VOCAB, size=(len(lengths), width)).astype("int32")
    for row, length in enumerate(lengths):
        ids[row, length:] = 0
    return ids


def model_of(arch, num_classes, dropout=0.0, pooling="max", seed=0):
    keras.utils.set_random_seed(seed)
    model = build_model(arch, ModelConfig(vocab_size=VOCAB, embedding_dim=6, hidden_dim=5, pooling=pooling,
                                          num_classes=num_classes, dropout=dropout))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.8, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def loss_of(num_classes):
    if num_classes == 2:
        return lambda labels, logits: keras.losses.BinaryCrossentropy(from_logits=True)(labels[:, None], logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def as_array(gradient):
    return np.asarray(tf.convert_to_tensor(gradient))


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("arch", ["bigru", "gru"])
def test_the_packed_training_pass_gives_keras_logits_and_gradients_for_every_weight(arch, num_classes):
    model = model_of(arch, num_classes)
    ids = right_padded_ids(LENGTHS, width=11)
    labels = np.arange(len(LENGTHS)) % num_classes
    loss, forward, weights = loss_of(num_classes), packed_training_forward(model), model.trainable_variables

    @tf.function  # a graph, as `fit` runs it (and eager Keras GRU gradients take minutes)
    def logits_and_gradients(compute):
        with tf.GradientTape() as tape:
            logits = compute(ids)
            value = loss(labels, logits)
        return logits, tape.gradient(value, weights)

    expected, expected_gradients = logits_and_gradients(lambda x: model(x, training=True))
    packed, packed_gradients = logits_and_gradients(forward)
    assert np.abs(expected.numpy()).max() > 0.5  # large enough that a wrong step would show
    np.testing.assert_allclose(packed.numpy(), expected.numpy(), atol=1e-5, rtol=1e-5)
    for weight, ours, theirs in zip(weights, packed_gradients, expected_gradients):
        assert np.abs(as_array(theirs)).max() > 1e-4, weight.path  # every weight gets a gradient to compare
        np.testing.assert_allclose(as_array(ours), as_array(theirs), atol=1e-5, rtol=1e-4, err_msg=weight.path)


def test_the_packed_training_pass_draws_the_models_own_dropout():
    model = model_of("bigru", 2, dropout=0.5)
    ids = right_padded_ids(LENGTHS, width=11)
    generators = [layer.seed_generator for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    states = [generator.state.numpy() for generator in generators]
    expected = model(ids, training=True).numpy()
    for generator, state in zip(generators, states):  # the same draws again
        generator.state.assign(state)
    packed = packed_training_forward(model)(ids).numpy()
    np.testing.assert_allclose(packed, expected, atol=1e-5, rtol=1e-5)
    assert np.abs(packed - model(ids, training=False).numpy()).max() > 1e-3  # dropout did change the logits


def test_fit_inside_takes_the_same_steps_as_keras_and_the_model_is_its_own_again_after():
    ids = right_padded_ids(LENGTHS, width=11, seed=1)
    labels = (np.arange(len(LENGTHS)) % 2).astype("int32")
    valid = right_padded_ids([5, 8, 2, 11, 3, 1, 7], width=11, seed=5), np.arange(7) % 2
    steps, val_losses = {}, {}
    for packed in (False, True):
        model = model_of("bigru", 2)
        compile_model(model, keras.optimizers.Adam(0.01, clipnorm=1.0))
        if packed:
            with fitted_by_packed_recurrence(model) as used:
                assert used
                history = model.fit(ids, labels, batch_size=len(LENGTHS), epochs=3, verbose=0, validation_data=valid)
            assert "call" not in vars(model) and model.train_function is None
        else:
            history = model.fit(ids, labels, batch_size=len(LENGTHS), epochs=3, verbose=0, validation_data=valid)
        steps[packed], val_losses[packed] = model.get_weights(), history.history["val_loss"]
    for ours, theirs in zip(steps[True], steps[False]):
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)
    # each epoch validated with that epoch's weights, as Keras' layers do (which picks the epoch and the rate)
    np.testing.assert_allclose(val_losses[True], val_losses[False], atol=1e-5, rtol=1e-5)
    assert max(np.abs(a - b).max() for a, b in zip(steps[True], model_of("bigru", 2).get_weights())) > 1e-3


def test_a_bigru_fitted_by_the_packed_recurrence_learns_which_token_decides():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, size=256)
    ids = right_padded_ids(lengths, width=12, seed=2)
    labels = (ids == 7).any(axis=1).astype("int32")  # positive exactly when token 7 occurs anywhere
    keras.utils.set_random_seed(0)
    model = build_model("bigru", ModelConfig(vocab_size=VOCAB, embedding_dim=8, hidden_dim=8, pooling="max"))
    compile_model(model, keras.optimizers.Adam(0.02, clipnorm=1.0))
    with fitted_by_packed_recurrence(model):
        history = model.fit(ids, labels, batch_size=32, epochs=15, verbose=0, validation_data=(ids, labels))
    assert history.history["val_accuracy"][-1] >= 0.95
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


@pytest.mark.parametrize("arch, pooling", [("bilstm", "max"), ("bigru", "mean"), ("bigru", "last"), ("rnn", "max")])
def test_other_models_keep_keras_training(arch, pooling):
    model = model_of(arch, 2, pooling=pooling)
    assert packed_training_forward(model) is None
    with fitted_by_packed_recurrence(model) as used:
        assert not used
        assert "call" not in vars(model)
