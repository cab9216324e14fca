"""The NumPy reference cells match Keras' layers, and the derivatives match finite differences."""

import doctest

import keras
import numpy as np
import pytest

from keras_sentiment.core import reference

BATCH, STEPS, DIM, UNITS = 4, 7, 5, 3
LENGTHS = [7, 4, 1, 0]  # a full row, two right-padded ones, an empty one


def masked_inputs(seed):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(BATCH, STEPS, DIM)).astype("float32")
    mask = np.arange(STEPS)[None, :] < np.array(LENGTHS)[:, None]  # [batch, steps], right padded
    return inputs, mask


def with_random_weights(layer, seed):
    """Build `layer` and give every weight (biases too) random values, so no term hides at zero."""
    layer.build((None, STEPS, DIM))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])
    return layer


KERAS_LAYERS = {"SimpleRNN": keras.layers.SimpleRNN, "LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU}


@pytest.mark.parametrize("name", sorted(KERAS_LAYERS))
def test_each_cell_over_a_masked_sequence_matches_keras(name):
    inputs, mask = masked_inputs(seed=1)
    layer = with_random_weights(
        KERAS_LAYERS[name](UNITS, return_sequences=True, return_state=True, zero_output_for_mask=True), seed=2)
    keras_outputs, keras_h, *_ = (np.asarray(x) for x in layer(inputs, mask=mask))
    outputs, state = reference.run_sequence(reference.CELLS[name], layer.get_weights(), inputs, mask)
    np.testing.assert_allclose(outputs, keras_outputs, atol=1e-5)
    np.testing.assert_allclose(reference.hidden_of(state), keras_h, atol=1e-5)
    assert np.all(outputs[3] == 0) and np.all(reference.hidden_of(state)[3] == 0), "an empty text stays at zero"


@pytest.mark.parametrize("name", sorted(KERAS_LAYERS))
def test_bidirectional_concatenation_matches_keras(name):
    inputs, mask = masked_inputs(seed=3)
    sequences = with_random_weights(keras.layers.Bidirectional(KERAS_LAYERS[name](UNITS, return_sequences=True)), 4)
    final = keras.layers.Bidirectional(KERAS_LAYERS[name](UNITS))
    final.build((None, STEPS, DIM))
    final.set_weights(sequences.get_weights())
    forward_weights = sequences.forward_layer.get_weights()
    backward_weights = sequences.backward_layer.get_weights()

    outputs, final_h = reference.run_bidirectional(reference.CELLS[name], forward_weights, backward_weights,
                                                   inputs, mask)
    np.testing.assert_allclose(outputs, np.asarray(sequences(inputs, mask=mask)), atol=1e-5)
    np.testing.assert_allclose(final_h, np.asarray(final(inputs, mask=mask)), atol=1e-5)


def test_padding_changes_no_real_output_nor_the_final_state():
    inputs, mask = masked_inputs(seed=5)
    weights = with_random_weights(keras.layers.LSTM(UNITS), seed=6).get_weights()
    noisy = np.where(mask[..., None], inputs, 100.0)  # garbage in every padded step
    for go_backwards in (False, True):
        clean = reference.run_sequence(reference.lstm_cell, weights, inputs, mask, go_backwards)
        padded = reference.run_sequence(reference.lstm_cell, weights, noisy, mask, go_backwards)
        np.testing.assert_array_equal(clean[0], padded[0])
        np.testing.assert_array_equal(clean[1][0], padded[1][0])


@pytest.mark.parametrize("function, derivative", [(reference.sigmoid, reference.sigmoid_derivative),
                                                  (reference.tanh, reference.tanh_derivative)])
def test_derivatives_match_central_finite_differences(function, derivative):
    x = np.linspace(-8.0, 8.0, 161)
    eps = 1e-5
    numeric = (function(x + eps) - function(x - eps)) / (2 * eps)
    np.testing.assert_allclose(derivative(x), numeric, rtol=1e-6, atol=1e-9)


def test_sigmoid_and_tanh_are_the_textbook_functions_without_overflow():
    x = np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0])
    np.testing.assert_allclose(reference.sigmoid(x[1:4]), 1 / (1 + np.exp(-x[1:4])), rtol=1e-12)
    assert reference.sigmoid(x)[0] == 0.0 and reference.sigmoid(x)[-1] == 1.0
    np.testing.assert_allclose(reference.tanh(x[1:4]), (np.exp(2 * x[1:4]) - 1) / (np.exp(2 * x[1:4]) + 1))


def test_module_example_runs():
    results = doctest.testmod(reference)
    assert results.attempted > 0 and results.failed == 0
