"""The packed recurrence (`keras_sentiment.core.packed`) gives the Keras model's logits, for every model it takes.

Weights are drawn large (not Keras' small initial ones), so that a wrong gate, bias, direction or
pooling would move the logits far beyond the tolerance.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_sentiment.core.ngrams import NgramLogit
from keras_sentiment.core.packed import direction_parts, packed_forward
from keras_sentiment.core.recurrent import (ARCHITECTURES, POOLINGS, FirstTokens, ModelConfig, build_ensemble,
                                            build_model, build_with_ngrams)
from keras_sentiment.core.scorer import make_text_scorer
from keras_sentiment.core.vectorizer import TextEncoder, build_vectorizer
from keras_sentiment.run.export import export_serving_model
from keras_sentiment.run.rundir import runs_packed_recurrence

VOCAB = 40


def with_large_weights(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.8, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def right_padded_ids(lengths, width, seed=0):
    """Token ids `[len(lengths), width]` in 2..VOCAB-1, each row 0 after its length (0-length rows too)."""
    ids = np.random.default_rng(seed).integers(2, VOCAB, size=(len(lengths), width)).astype("int32")
    for row, length in enumerate(lengths):
        ids[row, length:] = 0
    return ids


LENGTHS = [9, 1, 0, 4, 9, 2, 6, 3]


def model_of(arch, pooling, num_classes, seed=0):
    config = ModelConfig(vocab_size=VOCAB, embedding_dim=6, hidden_dim=5, pooling=pooling, num_classes=num_classes)
    return with_large_weights(build_model(arch, config), seed)


@pytest.mark.parametrize("num_classes", [2, 4])
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("arch", [arch for arch in ARCHITECTURES if arch != "stacked_lstm"])
def test_the_packed_recurrence_gives_the_models_logits(arch, pooling, num_classes):
    model = model_of(arch, pooling, num_classes)
    ids = right_padded_ids(LENGTHS, width=11)  # two columns of padding after the longest text
    expected = model(ids, training=False).numpy()
    assert np.abs(expected).max() > 0.5  # large enough that a wrong step would show
    np.testing.assert_allclose(packed_forward(model)(ids).numpy(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["bigru", "lstm", "rnn"])
def test_a_packed_forward_made_before_the_weights_change_computes_with_the_new_ones(arch):
    # `fit` validates by a packed forward made before training: it must read every weight, biases too, as it runs
    model = model_of(arch, "max", 2)
    forward, ids = packed_forward(model), right_padded_ids(LENGTHS, width=11)
    before = forward(ids).numpy()
    with_large_weights(model, seed=1)
    expected = model(ids, training=False).numpy()
    assert np.abs(expected - before).max() > 0.1
    np.testing.assert_allclose(forward(ids).numpy(), expected, atol=1e-4, rtol=1e-4)
    bias = next(w for w in model.weights if "bias" in w.path and "logit" not in w.path)  # the recurrent cell's
    bias.assign(bias.numpy() + 0.5)
    np.testing.assert_allclose(forward(ids).numpy(), model(ids, training=False).numpy(), atol=1e-4, rtol=1e-4)


def test_padding_and_batch_order_never_change_a_packed_logit():
    forward = packed_forward(model_of("bigru", "max", 2))
    ids = right_padded_ids(LENGTHS, width=9)
    alone = forward(ids).numpy()
    wider = forward(np.pad(ids, [[0, 0], [0, 7]])).numpy()
    shuffled = np.random.default_rng(1).permutation(len(LENGTHS))
    np.testing.assert_allclose(wider, alone, atol=1e-5)
    np.testing.assert_allclose(forward(ids[shuffled]).numpy(), alone[shuffled], atol=1e-5)


def test_ensembles_and_the_ngram_stack_are_packed_too():
    FirstTokens(3), NgramLogit(VOCAB, 1, 1)  # take Keras' plain names first, as another test in this process may
    members = [model_of("bigru", "max", 2, seed) for seed in (1, 2)]
    bag = NgramLogit(vocabulary_size=VOCAB, order=2, num_features=3)
    bag.set_feature_weights(np.array([5, 7, 7 * VOCAB + 5]), np.array([2.0, -1.0, 0.5]), bias=0.3)
    model = build_with_ngrams(build_ensemble(members, "bigru"), bag, (0.7, 1.2, -0.1), FirstTokens(5))
    ids = right_padded_ids(LENGTHS, width=9)
    np.testing.assert_allclose(packed_forward(model)(ids).numpy(), model(ids, training=False).numpy(), atol=1e-4)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_a_stack_that_gives_the_recurrent_part_no_weight_scores_by_the_ngrams_alone(num_classes):
    # a = 0 (`fit_stack` at a few long texts): the GRU's weights are NaN here, so running it would show in the logits
    FirstTokens(3), NgramLogit(VOCAB, 1, 1)  # take Keras' plain names first, as another test in this process may
    gru = model_of("bigru", "max", num_classes)
    gru.set_weights([np.full(w.shape, np.nan, w.dtype) for w in gru.get_weights()])
    units = 1 if num_classes == 2 else num_classes
    bag = NgramLogit(vocabulary_size=VOCAB, order=2, num_features=3, units=units)
    bag.set_feature_weights(np.array([5, 7, 7 * VOCAB + 5]), np.linspace(-1.0, 2.0, 3 * units).reshape(3, units),
                            bias=np.zeros(units))
    model = build_with_ngrams(gru, bag, (0.0, 1.2, [0.1 * i for i in range(units)] if units > 1 else -0.1))
    ids = right_padded_ids(LENGTHS, width=9)
    expected = 1.2 * bag(ids).numpy() + np.array([0.1 * i for i in range(units)] if units > 1 else [-0.1])
    assert np.isnan(model(ids, training=False).numpy()).all()  # Keras runs the GRU (0 x NaN)
    np.testing.assert_allclose(packed_forward(model)(ids).numpy(), expected, atol=1e-5)
    assert direction_parts(model) is None  # nothing for LiteRT to run beside the n-grams


def test_models_it_does_not_compute_are_left_to_keras():
    stacked = build_model("stacked_lstm", ModelConfig(vocab_size=VOCAB, embedding_dim=4, hidden_dim=3, num_layers=2))
    assert packed_forward(stacked) is None
    encoder = TextEncoder(build_vectorizer(VOCAB, ["good", "bad", "film"]), max_length=6)
    text = tf.constant(["good film", "bad"])
    expected = stacked(encoder(text), training=False).numpy()[:, 0]
    np.testing.assert_allclose(make_text_scorer(encoder, stacked)(text).numpy(), expected, atol=1e-6)


def test_the_text_scorer_runs_the_packed_recurrence():
    """The scorer every export, `score` and evaluation share gives the model's logits through the packed path."""
    model = model_of("bilstm", "mean", 3)
    encoder = TextEncoder(build_vectorizer(VOCAB, ["good", "bad", "film", "here", "plot"]), max_length=6)
    text = tf.constant(["good film here good", "bad", "", "a plot film"])
    expected = model(encoder(text), training=False).numpy()
    np.testing.assert_allclose(make_text_scorer(encoder, model)(text).numpy(), expected, atol=1e-4)


def test_an_export_records_whether_it_scores_by_the_packed_recurrence(tmp_path):
    encoder = TextEncoder(build_vectorizer(VOCAB, ["good", "bad", "film"]), max_length=6)
    packed = export_serving_model(model_of("bigru", "max", 2), encoder, tmp_path / "bigru")
    stacked = build_model("stacked_lstm", ModelConfig(vocab_size=VOCAB, embedding_dim=4, hidden_dim=3, num_layers=2))
    keras_only = export_serving_model(stacked, encoder, tmp_path / "stacked")
    assert runs_packed_recurrence(packed) and runs_packed_recurrence(tmp_path / "bigru")
    assert not runs_packed_recurrence(keras_only)
    text = tf.constant(["good film good", "bad", ""])
    served = tf.saved_model.load(str(packed)).signatures["serving_default"](text=text)["logits"].numpy()
    np.testing.assert_allclose(served, make_text_scorer(encoder, model_of("bigru", "max", 2))(text).numpy(), atol=1e-4)


SCORING_THREADS = """
import json, os, sys
from keras_sentiment.run.threads import set_scoring_threads
print(json.dumps([set_scoring_threads(sys.argv[1], cores=4), os.environ.get("TF_NUM_INTRAOP_THREADS"),
                  "tensorflow" in sys.modules]))
"""


@pytest.mark.parametrize("preset", [None, "3"])
def test_scoring_gives_each_direction_its_half_of_the_cores_unless_the_user_chose(tmp_path, preset):
    encoder = TextEncoder(build_vectorizer(VOCAB, ["good", "bad"]), max_length=6)
    export = export_serving_model(model_of("bigru", "max", 2), encoder, tmp_path / "bigru")
    env = {key: value for key, value in os.environ.items() if key != "TF_NUM_INTRAOP_THREADS"}
    if preset:
        env["TF_NUM_INTRAOP_THREADS"] = preset
    result = subprocess.run([sys.executable, "-c", SCORING_THREADS, str(export)], capture_output=True, text=True,
                            env=env, check=True)
    returned, threads, tensorflow_imported = json.loads(result.stdout)
    assert not tensorflow_imported  # decided before TensorFlow starts
    assert (returned, threads) == ((None, "3") if preset else (2, "2"))
