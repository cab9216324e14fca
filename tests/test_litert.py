"""An export's recurrence by LiteRT (`keras_sentiment.run.litert`) gives the outputs of its `serving_default`.

Weights are drawn large (as in test_packed.py), so that a wrong direction, pooling or head would move the
outputs far beyond the tolerance.
"""

import threading

import numpy as np
import pytest
import tensorflow as tf

from keras_sentiment.core.ngrams import NgramLogit
from keras_sentiment.core.packed import direction_parts
from keras_sentiment.core.recurrent import FirstTokens, build_ensemble, build_with_ngrams
from keras_sentiment.core.vectorizer import TextEncoder, build_vectorizer
from keras_sentiment.run.export import export_serving_model
from keras_sentiment.run.litert import LITERT_FILE, SWITCH, LiteRecurrence
from keras_sentiment.run.loading import load_scorer
from test_packed import VOCAB, model_of, right_padded_ids

WORDS = ["good", "bad", "film", "here", "plot", "dull", "fine", "great"]
TEXTS = ["good film here good", "bad", "", "a plot film", "dull dull plot " * 30, "fine great film", "unseen words"]


def encoder():
    return TextEncoder(build_vectorizer(VOCAB, WORDS), max_length=64)


def with_bigrams(recurrent):
    units = recurrent.output.shape[-1]  # 1, or k
    bag = NgramLogit(vocabulary_size=VOCAB, order=2, num_features=3, units=units)
    weights = np.array([2.0, -1.0, 0.5]) if units == 1 else np.linspace(-2, 2, 3 * units).reshape(3, units)
    bag.set_feature_weights(np.array([5, 7, 7 * VOCAB + 5]), weights, bias=0.3 if units == 1 else np.full(units, 0.3))
    return build_with_ngrams(recurrent, bag, (0.7, 1.2, -0.1))


def exported(model, folder):
    path = export_serving_model(model, encoder(), folder, class_names=[f"c{i}" for i in range(
        max(2, model.output.shape[-1]))])
    return path, tf.saved_model.load(str(path)).signatures


@pytest.mark.parametrize("arch, pooling, num_classes, ngrams", [
    ("bigru", "max", 2, True),  # what `make train` ships
    ("bigru", "max", 3, False),
    ("bilstm", "mean", 2, False),
    ("gru", "last", 2, False),
    ("rnn", "max", 4, True),
])
def test_the_litert_recurrence_gives_the_exports_serving_outputs(arch, pooling, num_classes, ngrams, tmp_path):
    model = model_of(arch, pooling, num_classes)
    if ngrams:
        model = with_bigrams(model)
    path, signatures = exported(model, tmp_path)
    lite = LiteRecurrence.of(path, signatures)
    assert (path / LITERT_FILE).is_file() and len(lite.keys) == (2 if arch.startswith("bi") else 1)
    expected = signatures["serving_default"](text=tf.constant(TEXTS))
    got = lite(TEXTS)
    assert set(got) == set(expected)
    assert np.abs(expected["logits"].numpy()).max() > 0.5  # large enough that a wrong part would show
    np.testing.assert_allclose(got["logits"].numpy(), expected["logits"].numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(got["label"].numpy(), expected["label"].numpy())
    np.testing.assert_array_equal(got["classes"].numpy(), expected["classes"].numpy())
    # and `score` / the Python API read it: load_scorer gives the same logits
    np.testing.assert_allclose(np.asarray(load_scorer(path)(TEXTS)), expected["logits"].numpy(), atol=1e-4, rtol=1e-4)


def test_the_directions_and_head_compose_to_the_model():
    model = with_bigrams(model_of("bigru", "max", 2))
    directions, head = direction_parts(model)
    ids = right_padded_ids([9, 1, 0, 4, 9, 2], width=11)
    pooled = tf.concat([direction(ids) for direction in directions], axis=1)
    np.testing.assert_allclose(head(ids, pooled).numpy(), model(ids, training=False).numpy(), atol=1e-4)


def test_models_it_does_not_split_keep_their_savedmodel_alone(tmp_path):
    FirstTokens(3), NgramLogit(VOCAB, 1, 1)  # take Keras' plain names first, as another test in this process may
    ensemble = build_ensemble([model_of("bigru", "max", 2, seed) for seed in (1, 2)], "bigru")
    bag = NgramLogit(vocabulary_size=VOCAB, order=2, num_features=1)
    bag.set_feature_weights(np.array([5]), np.array([1.0]), bias=0.0)
    longer_ids = build_with_ngrams(model_of("bigru", "max", 2), bag, (1.0, 1.0, 0.0), FirstTokens(5))
    for model in (ensemble, longer_ids):
        assert direction_parts(model) is None
    path, signatures = exported(ensemble, tmp_path)
    assert not (path / LITERT_FILE).exists() and LiteRecurrence.of(path, signatures) is None


def test_a_failed_conversion_keeps_the_export_which_scores_by_tensorflow(tmp_path, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise RuntimeError("converter says no\nand more lines")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", fail)
    path, signatures = exported(with_bigrams(model_of("bigru", "max", 2)), tmp_path)
    assert "could not be converted (RuntimeError: converter says no)" in capsys.readouterr().out
    assert not (path / LITERT_FILE).exists() and LiteRecurrence.of(path, signatures) is None
    expected = signatures["serving_default"](text=tf.constant(TEXTS))["logits"].numpy()
    assert np.abs(expected).max() > 0.5
    np.testing.assert_allclose(np.asarray(load_scorer(path)(TEXTS)), expected, atol=1e-5)


def test_the_switch_turns_it_off(tmp_path, monkeypatch):
    path, signatures = exported(model_of("bigru", "max", 2), tmp_path)
    assert LiteRecurrence.of(path, signatures) is not None
    monkeypatch.setenv(SWITCH, "off")
    assert LiteRecurrence.of(path, signatures) is None


def test_calls_from_several_threads_at_once_each_get_their_own_answers(tmp_path):
    path, signatures = exported(model_of("bigru", "max", 2), tmp_path)
    lite = LiteRecurrence.of(path, signatures)
    batches = [TEXTS[i:] + TEXTS[:i] for i in range(len(TEXTS))]
    expected = [signatures["serving_default"](text=tf.constant(b))["logits"].numpy() for b in batches]
    results, errors = {}, []

    def worker(k):
        try:
            for _ in range(5):
                i = (k + _) % len(batches)
                results.setdefault(i, []).append(lite(batches[i])["logits"].numpy())
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for i, outputs in results.items():
        for output in outputs:
            np.testing.assert_allclose(output, expected[i], atol=1e-4, rtol=1e-4)
