"""`--ngrams N`: the bag-of-n-grams model (`keras_sentiment.core.ngrams`) and its combination with a
recurrent model: presence features that padding never changes, an NB-scaled logistic regression
that learns what single words cannot, exact token shares, and `train --ngrams 2 --refit` end to end."""

import json
import re
import shutil
import subprocess
import sys
from itertools import product
from types import SimpleNamespace

import keras
import keras_sentiment.core.recurrent  # noqa: F401  (registers the custom layers best.keras holds)
import numpy as np
import pytest

import keras_sentiment as ks
from conftest import (TINY_GRU, assert_attributions_add_up, load_keras_model, predicted_probability, train_in_process,
                      train_on_generated_sst2)
from keras_sentiment.core import ngrams
from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.integrated_gradients import make_token_id_explainer
from keras_sentiment.core.scorer import make_text_scorer
from keras_sentiment.run.evaluation import classification_metrics
from keras_sentiment.run.export import ops_outside_core_tensorflow
from keras_sentiment.run.loading import load_run, load_scorer
from keras_sentiment.run.rundir import resolve_saved_model
from keras_sentiment.core.recurrent import NGRAM_PART, STACK, embedding_path, recurrent_part
from keras_sentiment.run.settings import resolve_settings, settings_of_run
from keras_sentiment.run.training import (add_ngram_model, fit_ngram_part, prepare_data, stack_on_valid,
                                          start_ngram_part)
from test_export import LOAD_WITHOUT_PACKAGE
from test_own_data import TINY as OWN_DATA_TINY, make_rows, write_csv

VOCABULARY = 40


def reference_logit(ids, table, order):
    """The layer's contract in plain Python: the sum of the weights of the distinct n-grams present."""
    tokens = [int(i) for i in ids if i != 0]
    present = {tuple(tokens[i : i + k]) for k in range(1, order + 1) for i in range(len(tokens) - k + 1)}
    return sum(table.get(ngrams.ngram_key(gram, VOCABULARY), 0.0) for gram in present)


def random_layer(order, rng, num_features=300):
    grams = [rng.integers(1, VOCABULARY, size=rng.integers(1, order + 1)) for _ in range(num_features)]
    table = {ngrams.ngram_key(gram, VOCABULARY): float(rng.normal()) for gram in grams}
    layer = ngrams.NgramLogit(VOCABULARY, order, len(table))
    layer.set_feature_weights(np.array(list(table)), np.array(list(table.values())), bias=0.25)
    return layer, table


@pytest.mark.parametrize("order", [1, 2, 3])
def test_the_logit_sums_the_weights_of_the_distinct_ngrams_present_and_padding_changes_nothing(order):
    rng = np.random.default_rng(order)
    layer, table = random_layer(order, rng)
    ids = rng.integers(1, 8, size=(6, 12))  # few distinct ids: repeated n-grams, some in the table
    ids[1, 7:] = 0  # a shorter text
    logits = np.asarray(layer(ids))[:, 0]
    expected = [reference_logit(row, table, order) + 0.25 for row in ids]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    padded = np.concatenate([ids, np.zeros((6, 9), int)], axis=1)
    np.testing.assert_allclose(np.asarray(layer(padded))[:, 0], logits, rtol=1e-6, atol=1e-6)


def test_token_shares_add_up_to_the_logit_less_its_bias_and_padding_gets_none():
    rng = np.random.default_rng(7)
    layer, _ = random_layer(3, rng)
    ids = rng.integers(1, 8, size=(4, 10))
    ids[2, 6:] = 0
    shares = np.asarray(layer.token_shares(ids))
    np.testing.assert_allclose(shares.sum(axis=1), np.asarray(layer(ids))[:, 0] - 0.25, rtol=1e-5, atol=1e-5)
    assert np.all(shares[2, 6:] == 0)


def test_the_layer_survives_a_keras_file_round_trip(tmp_path):
    layer, _ = random_layer(2, np.random.default_rng(3))
    inputs = keras.Input(shape=(None,), dtype="int32")
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "bag.keras")
    loaded = keras.models.load_model(tmp_path / "bag.keras")
    ids = np.random.default_rng(4).integers(0, 8, size=(5, 9))
    np.testing.assert_array_equal(np.asarray(loaded(ids)), np.asarray(model(ids)))


def negation_rows(count, rng):
    """Rows of n-gram keys where only the order of a pair decides: 'not good' (2 3) is negative,
    'good not' (3 2) positive: both classes hold the same words, so single words cannot tell."""
    rows, labels = [], []
    for _ in range(count):
        label = int(rng.integers(0, 2))
        filler = list(rng.integers(4, VOCABULARY, size=6))
        words = filler[:3] + ([2, 3] if label == 0 else [3, 2]) + filler[3:]
        ids = np.array([words])
        keys, first = (np.asarray(t) for t in ngrams.present_keys(ids, 2, VOCABULARY))
        rows.append(keys[0][first[0]])
        labels.append(label)
    return rows, np.array(labels, "float64")


def test_training_texts_without_a_single_ngram_are_a_one_line_error():
    with pytest.raises(KerasSentimentError, match="--ngrams: the training texts hold no n-gram"):
        ngrams.fit_ngram_logit([np.zeros([0], "int64")] * 4, np.array([1.0, 0, 1, 0]), C=1.0)


def test_the_nb_logistic_regression_learns_a_bigram_that_single_words_cannot_decide():
    rng = np.random.default_rng(0)
    train, test = negation_rows(400, rng), negation_rows(200, rng)
    keys, weights, bias = ngrams.fit_ngram_logit(*train, C=1.0)
    accuracy = np.mean((ngrams.ngram_logits(test[0], keys, weights, bias) > 0) == test[1])
    assert accuracy == 1.0
    not_good = np.searchsorted(keys, ngrams.ngram_key([2, 3], VOCABULARY))
    assert weights[not_good] < 0  # the pair's weight carries the negation
    unigrams_only = [row[row < VOCABULARY] for row in train[0]], train[1]
    keys, weights, bias = ngrams.fit_ngram_logit(*unigrams_only, C=1.0)
    test_unigrams = [row[row < VOCABULARY] for row in test[0]]
    assert np.mean((ngrams.ngram_logits(test_unigrams, keys, weights, bias) > 0) == test[1]) < 0.65


# The GRU reads a sentence's first 8 tokens (of 5 to 16 words), the n-grams all of them.
SMALL = [*TINY_GRU, "--ngrams", 2, "--refit", "--max-length", 8, "--ngram-max-length", 32]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_on_generated_sst2(tmp_path_factory.mktemp("ngrams"), *SMALL)


def test_the_delivered_model_adds_the_weighted_ngram_logit_to_the_refit_models(run):
    config = json.loads((run["dir"] / "config.json").read_text())
    a, b, c = config["ngram_stack"]
    assert config["refit_epochs"] >= 1 and config["ngram_l2"] in ngrams.L2_GRID  # the refit's record kept too
    assert b > 0  # the n-gram model earned a say on valid
    for name in ("best.keras", "selected.keras"):
        model = load_keras_model(run["dir"] / name)
        ids = np.array([[5, 9, 3, 0, 0], [7, 2, 11, 4, 6]])
        parts = [np.asarray(recurrent_part(model)(ids)), np.asarray(model.get_layer(NGRAM_PART)(ids))]
        np.testing.assert_allclose(model(ids), a * parts[0] + b * parts[1] + c, atol=1e-5)
        assert np.asarray(model.get_layer(STACK).get_weights()[0]).ravel().tolist() == pytest.approx([a, b])
        longer = np.arange(1, 25).reshape(2, 12) % 30 + 2  # past the GRU's 8 tokens: it reads the first 8
        parts = [np.asarray(recurrent_part(model)(longer[:, :8])), np.asarray(model.get_layer(NGRAM_PART)(longer))]
        np.testing.assert_allclose(model(longer), a * parts[0] + b * parts[1] + c, atol=1e-5)
    # selected.keras: the n-grams of the training split; best.keras: fitted again with valid's too
    assert load_keras_model(run["dir"] / "selected.keras").get_layer(NGRAM_PART).num_features == config["ngram_features"]
    assert load_keras_model(run["dir"] / "best.keras").get_layer(NGRAM_PART).num_features > config["ngram_features"]
    assert re.search(r"N-grams: valid accuracy [\d.]+% combined, against [\d.]+% for the recurrent model alone", run["log"])


def test_the_combined_model_learned_and_the_export_gives_the_run_dirs_probability(run):
    metrics = json.loads((run["dir"] / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]
    assert metrics["valid"]["model"] == "selected.keras"
    text = "good " * 3 + "awful " * 10
    run_dir, export = (predicted_probability(model, text, run["tmp"] / "cache") for model in (run["dir"], run["tmp"] / "export"))
    assert run_dir == pytest.approx(export, abs=1e-5)
    assert run_dir < 0.5


def test_explanations_of_the_combined_model_are_complete_and_give_padding_nothing(run):
    model = load_keras_model(run["dir"] / "best.keras")
    ids = np.array([[5, 9, 3, 5, 9, 0, 0], [7, 2, 11, 4, 6, 8, 2]], "int32")
    explained = make_token_id_explainer(model)(ids)
    assert_attributions_add_up(explained)
    np.testing.assert_allclose(np.asarray(explained["logits"]), np.asarray(model(ids))[:, 0], atol=1e-4)
    assert np.all(np.asarray(explained["attributions"])[0, 5:] == 0)
    # the baseline has no n-grams: what is left of the n-gram model is its bias, weighted
    b, c = model.get_layer(STACK).get_weights()[0][1, 0], model.get_layer(STACK).get_weights()[1][0]
    bias = float(model.get_layer(NGRAM_PART).bias.numpy())
    recurrent = embedding_path(recurrent_part(model))
    zero = recurrent.logits(np.zeros_like(recurrent.embed(ids)), ids)  # the recurrent model's own baseline
    a = model.get_layer(STACK).get_weights()[0][0, 0]
    np.testing.assert_allclose(np.asarray(explained["baseline_logits"]), a * np.asarray(zero) + b * bias + c, atol=1e-4)


def test_a_resumed_run_does_not_combine_twice(run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(run["dir"], run_dir)
    before = load_keras_model(run_dir / "best.keras")
    settings = settings_of_run(run_dir)
    settings = settings.replace("test", data_dir=str(run["tmp"] / "data"))
    settings.record.pop("ngram_stack")  # as if killed after saving the models, before recording it
    encoder, _ = load_run(run_dir)
    add_ngram_model(settings, encoder, prepare_data(settings), run_dir)
    after = load_keras_model(run_dir / "best.keras")
    assert recurrent_part(recurrent_part(after)) is recurrent_part(after)  # one level deep, not two
    ids = np.array([[5, 9, 3, 0], [7, 2, 11, 4]])
    np.testing.assert_allclose(np.asarray(after(ids)), np.asarray(before(ids)), atol=1e-4)


def test_the_ngram_part_fitted_in_a_thread_is_the_one_fitted_in_line_and_only_where_there_is_one_to_fit(run):
    settings = settings_of_run(run["dir"]).replace("test", data_dir=str(run["tmp"] / "data"))
    settings.record.pop("ngram_stack")
    encoder, _ = load_run(run["dir"])
    splits = prepare_data(settings)
    in_thread = start_ngram_part(settings, encoder, splits).result()
    in_line = fit_ngram_part(settings, encoder, splits)
    assert in_thread.l2 == in_line.l2
    assert all(np.array_equal(a, b) for a, b in zip(in_thread.train[0], in_line.train[0], strict=True))
    np.testing.assert_array_equal(in_thread.fitted[0], in_line.fitted[0])
    np.testing.assert_allclose(in_thread.fitted[1], in_line.fitted[1])
    np.testing.assert_allclose(in_thread.valid_logits, in_line.valid_logits)
    assert start_ngram_part(settings, encoder, splits, teacher="a teacher") is None  # its texts come later
    assert start_ngram_part(settings.replace("test", ngrams=0), encoder, splits) is None
    assert start_ngram_part(settings.with_record(ngram_stack=[1.0, 1.0, 0.0]), encoder, splits) is None  # resumed


def test_refit_ngrams_without_a_refit_keeps_the_recurrent_model_and_fits_only_the_ngrams_again(tmp_path):
    run = train_on_generated_sst2(tmp_path, *TINY_GRU, "--ngrams", 2, "--no-refit", "--refit-ngrams")
    config = json.loads((run["dir"] / "config.json").read_text())
    assert "refit_epochs" not in config  # no second training of the recurrent model
    assert "N-grams: fitted again on train + valid" in run["log"]
    best, selected = (load_keras_model(run["dir"] / name) for name in ("best.keras", "selected.keras"))
    assert selected.get_layer(NGRAM_PART).num_features == config["ngram_features"]  # train's n-grams
    assert best.get_layer(NGRAM_PART).num_features > config["ngram_features"]  # valid's joined them
    ids = np.array([[5, 9, 3, 0, 0], [7, 2, 11, 4, 6]])
    np.testing.assert_allclose(recurrent_part(best)(ids), recurrent_part(selected)(ids), atol=1e-6)  # the same one
    for model in (best, selected):
        assert np.asarray(model.get_layer(STACK).get_weights()[0]).ravel().tolist() == pytest.approx(config["ngram_stack"][:2])
    metrics = json.loads((run["dir"] / "metrics.json").read_text())
    assert metrics["valid"]["model"] == "selected.keras" and metrics["selected_test"]["model"] == "selected.keras"
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]  # and it learned
    # The two were scored on test in one pass of the recurrent part: each as if scored alone.
    assert "they share the recurrent part, which runs once" in run["log"]
    rows = [line.split("\t") for line in (run["tmp"] / "data" / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    texts, labels = [text for text, _ in rows], np.array([int(label) for _, label in rows])
    encoder = load_run(run["dir"])[0]
    for key, model in (("test", best), ("selected_test", selected)):
        alone = classification_metrics(labels, make_text_scorer(encoder, model)(texts).numpy())
        assert metrics[key]["loss"] == pytest.approx(alone["loss"], rel=1e-3)  # losses of ~1e-6 here: relative
        assert metrics[key]["confusion_matrix"] == alone["confusion_matrix"]
    assert metrics["test"]["loss"] != pytest.approx(metrics["selected_test"]["loss"], rel=1e-2)  # two models, not one twice


@pytest.mark.parametrize("flags, message", [
    ({"arch": "gru", "ensemble": 2, "ngrams": 2}, "with --ngrams (flag) is not supported"),
    ({"arch": "gru", "refit_ngrams": True}, "--refit-ngrams (flag): there is no n-gram model to fit again"),
    ({"arch": "gru", "ngrams": 4}, "--ngrams 4: choose one of 0, 1, 2, 3"),
])
def test_ngram_settings_that_cannot_be_trained_are_one_line_errors(flags, message):
    with pytest.raises(KerasSentimentError, match=re.escape(message)):
        resolve_settings(flags)


def test_the_imdb_bigru_recipe_adds_bigrams_and_other_pairs_do_not():
    assert resolve_settings({"dataset": "imdb", "arch": "bigru"}).ngrams == 2
    for dataset, arch in [*product(("imdb", "sst2"), ("bilstm", "gru")), ("sst2", "bert_gru")]:
        assert resolve_settings({"dataset": dataset, "arch": arch}).ngrams == 0


def test_the_export_needs_no_custom_op_and_loads_without_the_package(run, tmp_path):
    export = resolve_saved_model(run["tmp"] / "export")
    assert ops_outside_core_tensorflow(export) == []
    texts = ["good great film", "awful boring plot and bad acting"]
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_PACKAGE, str(export), json.dumps(texts)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])["logits"]
    np.testing.assert_allclose(served, np.asarray(load_scorer(run["dir"])(texts)).ravel(), atol=1e-4)


# === k classes: one n-gram model per class against the rest, a softmax stack ===


def test_a_k_class_layer_gives_each_class_the_sum_of_its_weights_and_shares_that_add_up():
    rng = np.random.default_rng(11)
    grams = [rng.integers(1, VOCABULARY, size=rng.integers(1, 3)) for _ in range(200)]
    keys = np.unique([ngrams.ngram_key(gram, VOCABULARY) for gram in grams])
    weights, bias = rng.normal(size=(len(keys), 3)), np.array([0.5, -0.25, 0.0])
    layer = ngrams.NgramLogit(VOCABULARY, 2, len(keys), units=3)
    layer.set_feature_weights(keys, weights, bias)
    ids = rng.integers(1, 8, size=(5, 10))
    ids[3, 4:] = 0
    logits = np.asarray(layer(ids))
    for k in range(3):  # each class's column is a one-logit layer with that class's weights
        table = dict(zip(keys.tolist(), weights[:, k]))
        np.testing.assert_allclose(logits[:, k], [reference_logit(row, table, 2) + bias[k] for row in ids], atol=1e-5)
    shares = np.asarray(layer.token_shares(ids))  # [batch, seq_len, k]
    np.testing.assert_allclose(shares.sum(axis=1), logits - bias, atol=1e-5)
    assert np.all(shares[3, 4:] == 0)


def three_way_order_rows(count, rng):
    """Rows of n-gram keys whose class only word order tells: 'not good' (2 3) is class 0, 'good not'
    (3 2) class 1, 'not not good good' (2 2 3 3) class 2: every row holds the same two words."""
    pairs = {0: [2, 3], 1: [3, 2], 2: [2, 2, 3, 3]}
    rows, labels = [], []
    for _ in range(count):
        label = int(rng.integers(0, 3))
        filler = list(rng.integers(4, VOCABULARY, size=6))
        keys, first = (np.asarray(t) for t in ngrams.present_keys(np.array([filler[:3] + pairs[label] + filler[3:]]),
                                                                  2, VOCABULARY))
        rows.append(keys[0][first[0]])
        labels.append(label)
    return rows, np.array(labels, "int64")


def test_one_model_per_class_against_the_rest_learns_three_classes_that_only_bigrams_tell_apart():
    rng = np.random.default_rng(0)
    train, test = three_way_order_rows(600, rng), three_way_order_rows(300, rng)
    keys, weights, bias = ngrams.fit_ngram_logit(*train, C=1.0, num_classes=3)
    assert weights.shape == (len(keys), 3) and bias.shape == (3,)
    logits = ngrams.ngram_logits(test[0], keys, weights, bias)  # [300, 3]
    assert np.mean(ngrams.predicted_classes(logits) == test[1]) == 1.0
    good_not = np.searchsorted(keys, ngrams.ngram_key([3, 2], VOCABULARY))
    assert np.argmax(weights[good_not]) == 1  # the pair speaks for its own class
    C, fitted, valid_logits = ngrams.choose_l2(train, test, num_classes=3, report=lambda line: None)
    assert C in ngrams.L2_GRID and valid_logits.shape == (300, 3)


def test_the_softmax_stack_recovers_the_weights_that_drew_the_labels():
    rng = np.random.default_rng(5)
    recurrent, ngram = rng.normal(size=(20_000, 4)), rng.normal(size=(20_000, 4))
    c = np.array([0.5, 0.0, -0.5, 0.2])
    z = 2.0 * recurrent + 0.5 * ngram + c
    p = np.exp(z - z.max(axis=1, keepdims=True))
    labels = np.array([rng.choice(4, p=row / row.sum()) for row in p])
    a, b, fitted_c = ngrams.fit_stack(recurrent, ngram, labels)
    assert a == pytest.approx(2.0, abs=0.15) and b == pytest.approx(0.5, abs=0.1)
    centred = np.array(fitted_c) - np.mean(fitted_c)  # a softmax's biases are known up to a shared shift
    np.testing.assert_allclose(centred, c - c.mean(), atol=0.1)


def free_stack(recurrent, ngram, labels):
    """The stack's weights `(a, b)` without the bound, as `fit_stack` fitted them before it."""
    if recurrent.ndim == 1:
        return tuple(ngrams.logistic_regression(np.stack([recurrent, ngram], axis=1), labels, C=1e6)[0])
    return tuple(ngrams.softmax_stack(recurrent, ngram, labels)[:2])


@pytest.mark.parametrize("classes", [2, 3])
def test_the_stack_leaves_out_a_part_whose_free_weight_would_turn_it_against_its_prediction(classes):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, classes, 300)
    truth = np.eye(classes)[labels] - 0.5 if classes > 2 else labels - 0.5  # [n, k] or [n]
    ngram = 3.0 * truth + rng.normal(size=truth.shape)
    weak = -truth + rng.normal(size=truth.shape)  # a weak part this valid split happens to see backwards
    assert free_stack(weak, ngram, labels)[0] < 0.0
    a, b, _ = ngrams.fit_stack(weak, ngram, labels)
    assert a == 0.0 and b > 1.0
    # Both weights positive: exactly the free fit (a stack fitted before the bound is fitted again to the same digits).
    useful = 2.0 * truth + rng.normal(size=truth.shape)
    a, b, _ = ngrams.fit_stack(useful, ngram, labels)
    assert min(a, b) > 0.0 and (a, b) == free_stack(useful, ngram, labels)


def test_a_stack_with_both_weights_zero_is_warned_of_in_the_log(capsys):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    recurrent_logits = -(labels - 0.5) + 0.5 * rng.normal(size=200)  # both parts see this valid split backwards
    ngram_logits = -(labels - 0.5) + 0.5 * rng.normal(size=200)
    ids = np.zeros([200, 4], "int32")  # the stub recurrent model reads only how many rows there are
    recurrent = SimpleNamespace(predict_on_batch=lambda rows: recurrent_logits[: len(rows), None])  # [batch, 1]
    part = SimpleNamespace(valid_batches=[(ids, labels)], valid=([], labels), valid_logits=ngram_logits)
    settings = SimpleNamespace(batch_size=200)
    a, b, _ = stack_on_valid(settings, part, recurrent)
    assert a == b == 0.0
    assert "neither the recurrent model nor the n-grams predict the valid split better" in capsys.readouterr().out
    part.valid_logits = -ngram_logits  # now the n-grams are right: no warning
    assert stack_on_valid(settings, part, recurrent)[1] > 0.0
    assert "neither the recurrent model" not in capsys.readouterr().out


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ngrams3")
    train, test = write_csv(tmp / "train.csv", make_rows(600)), write_csv(tmp / "test.csv", make_rows(120, seed=5))
    run, log = train_in_process("--train-file", train, "--test-file", test, *OWN_DATA_TINY, "--ngrams", 2, "--refit",
                                "--run-dir", tmp / "run", "--export-dir", tmp / "export", cache=tmp / "cache")
    return {"tmp": tmp, "run": run, "log": log}


def test_three_classes_train_with_bigrams_beside_the_gru_one_stack_weight_pair_and_a_bias_per_class(three_class_run):
    run = three_class_run["run"]
    config = json.loads((run.run_dir / "config.json").read_text())
    a, b, c = config["ngram_stack"]
    assert len(c) == 3 and b > 0  # the n-gram model earned a say on valid
    assert run.metrics["test"]["accuracy"] > 0.9  # chance is 1/3
    for name in ("best.keras", "selected.keras"):
        model = load_keras_model(run.run_dir / name)
        ids = np.array([[5, 9, 3, 0, 0], [7, 2, 11, 4, 6]])
        parts = [np.asarray(recurrent_part(model)(ids)), np.asarray(model.get_layer(NGRAM_PART)(ids))]  # [2, 3] each
        np.testing.assert_allclose(model(ids), a * parts[0] + b * parts[1] + np.array(c), atol=1e-5)
    assert re.search(r"N-grams: valid accuracy [\d.]+% combined, against [\d.]+% for the recurrent", three_class_run["log"])


def test_a_three_class_model_with_bigrams_predicts_alike_from_run_and_export_and_its_explanations_add_up(three_class_run):
    run = three_class_run["run"]
    texts = ["a great and superb film", "an okay and average film", "an awful and dreadful film"]
    from_run, from_export = ks.load(run.run_dir).predict(texts), ks.load(run.export_path).predict(texts)
    assert [p["label"] for p in from_run] == [p["label"] for p in from_export] == ["positive", "neutral", "negative"]
    for mine, served in zip(from_run, from_export):
        assert served["scores"] == pytest.approx(mine["scores"], abs=1e-5)
    for class_name in (None, "negative"):  # the predicted class, and a chosen one
        explained = ks.load(run.run_dir).explain(texts, class_name=class_name)
        assert_attributions_add_up({"attributions": [[t.attribution for t in e.tokens] + [0.0] * (9 - len(e.tokens))
                                                     for e in explained],
                                    "logits": np.array([e.logit for e in explained]),
                                    "baseline_logits": np.array([e.baseline_logit for e in explained])})
    great = ks.load(run.run_dir).explain(texts[:1])[0].top(1)[0]
    assert great.token in ("great", "superb")  # the predicted class's own cue carries it
