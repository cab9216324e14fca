"""Integrated Gradients: completeness, planted words found, padding-invariant, the same from the export."""

import json
import random
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import FILLER, NEGATIVE, POSITIVE, make_examples
from keras_sentiment.core.explanation import DEFAULT_STEPS, TokenAttribution, explanations_from_outputs, format_explanation, merge_word_pieces
from keras_sentiment.core.integrated_gradients import make_explainer
from keras_sentiment.run.export import export_serving_model
from keras_sentiment.core.ngrams import NgramLogit
from keras_sentiment.core.recurrent import (ARCHITECTURES, FirstTokens, ModelConfig, build_model, build_with_ngrams,
                                            embedding_path)
from keras_sentiment.core.vectorizer import TextEncoder, build_vectorizer


def completeness_errors(outputs):
    """|sum of attributions - (logit - baseline logit)| / |logit - baseline logit|, per text."""
    delta = outputs["logits"] - outputs["baseline_logits"]
    return np.abs(outputs["attributions"].sum(axis=1) - delta) / np.abs(delta)


def numpy_outputs(explain, texts):
    return {name: value.numpy() for name, value in explain(tf.constant(texts)).items()}


@pytest.fixture(scope="module")
def encoder():
    vectorizer = build_vectorizer(vocab_size=64)
    vectorizer.adapt(tf.constant([text for text, _ in make_examples(400, seed=99)]))
    return TextEncoder(vectorizer, max_length=40)


def trained(arch, encoder, pooling="last"):
    """A small model of `arch` trained on the separable task, as a user would (dropout, Adam's default rate)."""
    keras.utils.set_random_seed(0)
    texts, labels = zip(*make_examples(600, seed=1))
    model = build_model(arch, ModelConfig(vocab_size=64, embedding_dim=16, hidden_dim=16, dropout=0.2, pooling=pooling))
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(encoder(tf.constant(texts)), np.array(labels, "float32"), batch_size=32, epochs=4, verbose=0)
    return model


@pytest.fixture(scope="module")
def bilstm(encoder):
    return trained("bilstm", encoder, pooling="max")


@pytest.fixture(scope="module")
def explain(bilstm, encoder):
    """The BiLSTM's explainer, traced once for the module's tests."""
    return make_explainer(encoder, bilstm)


def test_the_embedding_path_is_the_model(bilstm, encoder):
    ids = encoder(tf.constant([text for text, _ in make_examples(8, seed=3)]))
    path = embedding_path(bilstm)
    np.testing.assert_allclose(path.logits(path.embed(ids), ids), bilstm(ids, training=False)[:, 0], atol=1e-5)


@pytest.mark.parametrize("arch", sorted(set(ARCHITECTURES) - {"bilstm"}))  # the BiLSTM: the next test
def test_attributions_add_up_to_the_logit_difference_at_the_default_steps(arch, encoder):
    model = trained(arch, encoder)
    outputs = numpy_outputs(make_explainer(encoder, model), [text for text, _ in make_examples(24, seed=4)])
    errors = completeness_errors(outputs)
    assert errors.max() <= 0.05, f"{arch}: completeness off by up to {errors.max():.1%} at {DEFAULT_STEPS} steps"
    # The attributions are not trivially spread: padding gets exactly 0, real tokens do not.
    real = outputs["tokens"] != b""
    assert np.all(outputs["attributions"][~real] == 0) and np.all(outputs["attributions"][real] != 0)


def one_planted_word(rng):
    """Filler words with exactly one sentiment word at a random place: (text, that word, its label)."""
    label = rng.randint(0, 1)
    word = rng.choice(POSITIVE if label else NEGATIVE)
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 14))]
    words.insert(rng.randint(0, len(words)), word)
    return " ".join(words), word, label


def test_an_ensembles_attributions_add_up_to_its_mean_logit_and_padding_gets_none(bilstm, encoder):
    from keras_sentiment.core.recurrent import build_ensemble

    ensemble = build_ensemble([bilstm, trained("bigru", encoder, pooling="max")], "bilstm")
    ids = encoder(tf.constant([text for text, _ in make_examples(8, seed=3)]))
    path = embedding_path(ensemble)
    assert path.embed(ids).shape[-1] == 32  # the two members' 16-wide embeddings side by side
    np.testing.assert_allclose(path.logits(path.embed(ids), ids), ensemble(ids, training=False)[:, 0], atol=1e-5)
    outputs = numpy_outputs(make_explainer(encoder, ensemble), [text for text, _ in make_examples(24, seed=4)])
    assert completeness_errors(outputs).max() <= 0.05
    assert np.all(outputs["attributions"][outputs["tokens"] == b""] == 0.0)


def test_an_ngram_model_built_with_unnamed_layers_is_explained_through_its_first_tokens_and_bag(bilstm, encoder):
    FirstTokens(3), NgramLogit(64, 1, 1)  # take Keras' plain names, so the layers below get numbered ones
    texts = [text for text, _ in make_examples(24, seed=4)]
    ids = encoder(tf.constant(texts)).numpy()
    assert (ids != 0).sum(axis=1).max() > 6  # so FirstTokens(6) cuts some of them
    bag = NgramLogit(vocabulary_size=64, order=2, num_features=3)
    common = np.bincount(ids[ids != 0]).argsort()[-2:]  # two frequent words: the bag weighs texts differently
    bag.set_feature_weights(np.array([common[0], common[1], common[0] * 64 + common[1] + 64]), np.array([2.0, -1.0, 0.5]),
                            bias=0.3)
    model = build_with_ngrams(bilstm, bag, (0.7, 1.2, -0.1), FirstTokens(6))
    outputs = numpy_outputs(make_explainer(encoder, model), texts)
    np.testing.assert_allclose(outputs["logits"], model(ids, training=False).numpy()[:, 0], atol=1e-4)
    assert completeness_errors(outputs).max() <= 0.05


def test_an_ngram_stack_that_gives_the_recurrent_part_no_weight_is_explained_by_the_ngrams_alone(encoder):
    # a = 0 (`fit_stack` at a few long texts): the GRU's and its logit's weights are NaN (not the embeddings, which
    # attributions multiply), so running them would show in the outputs
    FirstTokens(3), NgramLogit(64, 1, 1)  # take Keras' plain names first, as another test in this process may
    gru = build_model("bigru", ModelConfig(vocab_size=64, embedding_dim=8, hidden_dim=4, pooling="max"))
    for layer in gru.layers:
        if layer.name != "embedding":
            layer.set_weights([np.full(w.shape, np.nan, w.dtype) for w in layer.get_weights()])
    texts = [text for text, _ in make_examples(12, seed=4)]
    ids = encoder(tf.constant(texts)).numpy()
    common = np.bincount(ids[ids != 0]).argsort()[-2:]  # two frequent words
    bag = NgramLogit(vocabulary_size=64, order=1, num_features=2)
    bag.set_feature_weights(np.array(common), np.array([2.0, -1.0]), bias=0.3)
    model = build_with_ngrams(gru, bag, (0.0, 1.5, -0.1))
    outputs = numpy_outputs(make_explainer(encoder, model), texts)
    expected_logits = 1.5 * bag(ids).numpy()[:, 0] - 0.1
    assert np.ptp(expected_logits) > 1.0  # the texts differ in their n-grams
    np.testing.assert_allclose(outputs["logits"], expected_logits, atol=1e-5)
    # the n-grams' exact shares (each word's weight split over its occurrences), 1.5 x; nothing from the GRU
    np.testing.assert_allclose(outputs["attributions"], 1.5 * bag.token_shares(ids).numpy(), atol=1e-5)
    np.testing.assert_allclose(outputs["attributions"].sum(axis=1), expected_logits - outputs["baseline_logits"], atol=1e-4)


def test_the_planted_word_gets_the_largest_attribution_and_attributions_add_up(explain):
    rng = random.Random(7)
    texts, planted, labels = zip(*(one_planted_word(rng) for _ in range(100)))
    outputs = numpy_outputs(explain, list(texts))
    errors = completeness_errors(outputs)
    assert errors.max() <= 0.05, f"bilstm: completeness off by up to {errors.max():.1%}"
    explanations = explanations_from_outputs(texts, outputs)
    found = [e.top(1)[0].token == word for e, word in zip(explanations, planted)]
    assert np.mean(found) >= 0.9, f"planted word on top in only {np.mean(found):.0%} of texts"
    # ... and its sign is the label's.
    signs = [next(t.attribution for t in e.tokens if t.token == word) > 0 for e, word in zip(explanations, planted)]
    assert np.mean(np.array(signs) == np.array(labels, bool)) >= 0.9


def test_padding_never_changes_a_texts_attributions(explain):
    short = "a wonderful film with a boring ending"
    alone = numpy_outputs(explain, [short])
    beside_longer = numpy_outputs(explain, ["the plot " * 15, short, "bad"])  # padded to 30 tokens here
    length = alone["tokens"].shape[1]
    np.testing.assert_allclose(beside_longer["attributions"][1, :length], alone["attributions"][0], atol=1e-5)
    assert np.all(beside_longer["attributions"][1, length:] == 0)
    assert beside_longer["tokens"][1, :length].tolist() == alone["tokens"][0].tolist()


def test_tokens_are_the_texts_words_out_of_vocabulary_ones_included(explain):
    outputs = numpy_outputs(explain, ["Zyxx GREAT film!<br />", ""])
    assert outputs["tokens"][0].tolist()[:3] == [b"zyxx", b"great", b"film"]
    assert outputs["tokens"][1].tolist()[0] == b""  # an empty text: one OOV id, no word


LOAD_EXPLAIN_WITHOUT_THE_PACKAGE = """
import json, sys
import tensorflow as tf
explain = tf.saved_model.load(sys.argv[1]).signatures["explain"]
out = explain(text=tf.constant(json.loads(sys.argv[2])))
assert "keras_sentiment" not in sys.modules
print(json.dumps({k: v.numpy().tolist() if v.dtype != tf.string else [[t.decode() for t in row] for row in v.numpy()]
                  for k, v in out.items()}))
"""


def test_the_explain_signature_loads_without_the_package_and_equals_the_library(bilstm, encoder, explain, tmp_path):
    path = export_serving_model(bilstm, encoder, tmp_path / "model")
    texts = ["a wonderful film", "", "awful, boring plot " * 20]
    result = subprocess.run([sys.executable, "-c", LOAD_EXPLAIN_WITHOUT_THE_PACKAGE, str(path), json.dumps(texts)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    library = numpy_outputs(explain, texts)
    assert served["tokens"] == [[t.decode() for t in row] for row in library["tokens"]]
    for name in ("attributions", "probability", "logits", "baseline_logits", "steps"):
        np.testing.assert_allclose(served[name], library[name], atol=1e-5, err_msg=name)
    # serving_default is unchanged beside it.
    serving = tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(serving["logits"].numpy(), library["logits"], atol=1e-5)


def test_word_pieces_merge_back_to_words():
    pieces = [TokenAttribution(t, v) for t, v in
              [("[CLS]", 0.5), ("un", -0.25), ("##watch", -0.5), ("##able", -0.25), ("film", 0.125), ("[SEP]", 0.1)]]
    assert merge_word_pieces(pieces) == [TokenAttribution("unwatchable", -1.0), TokenAttribution("film", 0.125)]


def test_terminal_output_colours_only_when_asked(explain):
    outputs = numpy_outputs(explain, ["a wonderful film"])
    explanation = explanations_from_outputs(["a wonderful film"], outputs)[0]
    plain = format_explanation(explanation, colour=False)
    assert "\033[" not in plain
    assert [line.split("\t")[0].strip() for line in plain.splitlines()[1:4]] == ["a", "wonderful", "film"]
    coloured = format_explanation(explanation, colour=True)
    assert "\033[32m" in coloured and "wonderful" in coloured  # green: pushes towards positive
    assert explanation.special_pieces is None and "special_pieces" not in explanation.to_dict()  # words, no pieces


# === bert_gru: word pieces ===


@pytest.mark.parametrize("encoder_states", [1, 3])  # 3: the head mixes every hidden state of the tiny encoder
def test_bert_gru_attributions_add_up_and_name_word_pieces(tmp_path, encoder_states):
    pytest.importorskip("keras_hub", reason="bert extra not installed")
    from test_bert import tiny_backbone, tiny_encoder

    from keras_sentiment.core.bert import build_bert_gru, embedding_path as bert_embedding_path

    encoder = tiny_encoder()
    model = build_bert_gru(tiny_backbone(seed=5), hidden_dim=8, encoder_states=encoder_states)
    ids = encoder(tf.constant(["a good film", "boring"]))
    path = bert_embedding_path(model)
    np.testing.assert_allclose(path.logits(path.embed(ids), ids), model(ids, training=False)[:, 0], atol=1e-5)

    explain = make_explainer(encoder, model)
    texts = ["a good film", "the awful boring plot was long", ""]
    outputs = numpy_outputs(explain, texts)
    assert completeness_errors(outputs).max() <= 0.05
    assert outputs["tokens"][0].tolist()[:5] == [b"[CLS]", b"a", b"good", b"film", b"[SEP]"]
    words = explanations_from_outputs(texts, outputs)[1]  # merged: no [CLS]/[SEP]
    assert [t.token for t in words.tokens] == ["the", "awful", "boring", "plot", "was", "long"]
    # What the merge leaves out is kept, so the printed sum still adds up to logit - baseline.
    pieces = outputs["tokens"][1].tolist()
    special = sum(float(v) for t, v in zip(pieces, outputs["attributions"][1]) if t in (b"[CLS]", b"[SEP]"))
    assert words.special_pieces == pytest.approx(special, abs=1e-6) and words.to_dict()["special_pieces"] == words.special_pieces
    printed = float(format_explanation(words).splitlines()[-1].split()[1])
    assert printed == pytest.approx(sum(t.attribution for t in words.tokens) + special, abs=1e-4)
    assert printed == pytest.approx(words.logit - words.baseline_logit, abs=0.05 * abs(words.logit - words.baseline_logit) + 1e-3)
    # Padding: the short text beside a longer one has the same attributions.
    alone = numpy_outputs(explain, texts[:1])
    np.testing.assert_allclose(outputs["attributions"][0, :5], alone["attributions"][0], atol=1e-5)


# === The command line ===


def test_explain_and_predict_explain_commands_on_an_export(served_base, capsys):
    from keras_sentiment.apps.cli import main

    assert main(["explain", "--model", str(served_base), "--json", "a wonderful film", "awful, boring"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["tokens"] for row in rows] == [["a", "wonderful", "film"], ["awful", "boring"]]
    assert rows[0]["label"] == 1 and rows[1]["label"] == 0
    for row in rows:  # completeness, through the export's own signature
        assert abs(sum(row["attributions"]) - (row["logit"] - row["baseline_logit"])) <= 0.05 * abs(
            row["logit"] - row["baseline_logit"])

    assert main(["explain", "--model", str(served_base), "a wonderful film"]) == 0
    plain = capsys.readouterr().out  # not a terminal: plain columns
    assert "\033[" not in plain and plain.splitlines()[2].split("\t")[0].strip() == "wonderful"

    assert main(["predict", "--explain", "--top", "1", "--json", "--model", str(served_base), "a wonderful film"]) == 0
    top = json.loads(capsys.readouterr().out)["top_tokens"]
    assert [t["token"] for t in top] == ["wonderful"] and top[0]["attribution"] > 0


def test_explain_on_a_model_without_the_signature_is_a_one_line_error(tmp_path, capsys):
    from keras_sentiment.apps.cli import main

    assert main(["explain", "--model", str(tmp_path), "text"]) == 2
    assert "neither a run directory (config.json + best.keras) nor a SavedModel" in capsys.readouterr().err
