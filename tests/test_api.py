"""The public Python API: `ks.train`, `ks.load(...).predict / explain / export`, in this process."""

import json
import subprocess
import sys

import numpy as np
import pytest

import keras_sentiment as ks
from conftest import ROOT, TINY_GRU, assert_attributions_add_up, train_on_generated_sst2

TEXTS = ["a great and wonderful film", "an awful , boring plot", "the story was excellent and superb",
         "terrible acting and a dreadful script"]
LABELS = ["positive", "negative", "positive", "negative"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_on_generated_sst2(tmp_path_factory.mktemp("api"), *TINY_GRU)


def test_train_returns_the_run_with_its_resolved_settings_and_metrics(trained):
    run = trained["run"]
    assert run.run_dir == trained["dir"] and run.export_path.parent == trained["tmp"] / "export"
    assert run.settings["arch"] == "gru" and run.settings["sources"]["hidden_dim"] == "flag"
    assert run.settings["max_length"] == 64 and run.settings["sources"]["max_length"] == "dataset sst2"
    assert run.metrics == json.loads((run.run_dir / "metrics.json").read_text())
    assert run.metrics["test"]["accuracy"] >= 0.9  # it learned the separable task (chance: 0.5)


def test_predict_gives_each_texts_label_and_class_probabilities_from_a_run_and_its_export(trained):
    from_run = ks.load(trained["dir"]).predict(TEXTS)
    from_export = trained["run"].load().predict(TEXTS)  # Run.load: the run directory again
    exported = ks.load(trained["tmp"] / "export").predict(TEXTS)  # the export base: its latest version
    assert [p["label"] for p in from_run] == LABELS == [p["label"] for p in exported]
    for run_p, export_p, again in zip(from_run, exported, from_export):
        assert set(run_p["scores"]) == {"negative", "positive"}
        assert sum(run_p["scores"].values()) == pytest.approx(1.0)
        assert run_p["scores"]["positive"] == pytest.approx(export_p["scores"]["positive"], abs=1e-5)
        assert again == run_p


def test_predict_keeps_input_order_and_is_independent_of_batching(trained):
    model = ks.load(trained["dir"])
    texts = TEXTS * 5 + ["good"]
    one_by_one = [model.predict([text])[0]["scores"]["positive"] for text in texts]
    batched = [p["scores"]["positive"] for p in model.predict(texts, batch_size=3)]
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_evaluate_on_labelled_texts_gives_the_metrics_train_reported_on_them(trained):
    rows = [line.split("\t") for line in (trained["tmp"] / "data" / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    texts, labels = [text for text, _ in rows], [("negative", "positive")[int(label)] for _, label in rows]
    metrics = ks.load(trained["dir"]).evaluate(texts, labels)
    reported = trained["run"].metrics["test"]  # train's evaluation of the same 80 sentences (SST-2's test: dev.tsv)
    assert metrics["num_examples"] == reported["num_examples"] == 80
    moved = np.abs(np.subtract(metrics["confusion_matrix"], reported["confusion_matrix"])).sum()
    assert moved <= 2 and metrics["accuracy"] == pytest.approx(reported["accuracy"], abs=1 / 80)  # a logit on 0 may flip
    assert metrics["loss"] == pytest.approx(reported["loss"], abs=1e-3)
    model = ks.load(trained["tmp"] / "export")
    assert model.evaluate(texts, labels)["confusion_matrix"] == metrics["confusion_matrix"]
    with pytest.raises(ks.KerasSentimentError, match=r"evaluate: test labels never seen in training: '0' \(1\), 'good' \(1\), "
                       r"the first at labels\[0\]; the model's classes are negative, positive"):
        model.evaluate(TEXTS[:3], ["good", 0, "positive"])
    with pytest.raises(ks.KerasSentimentError, match=r"evaluate: labels\[1\] is empty"):
        model.evaluate(TEXTS[:2], ["positive", None])
    with pytest.raises(ks.KerasSentimentError, match="4 texts but 3 labels"):
        model.evaluate(TEXTS, LABELS[:3])


def test_explain_attributes_the_prediction_to_the_words(trained):
    for path in (trained["dir"], trained["tmp"] / "export"):
        explanations = ks.load(path).explain(TEXTS[:2])
        assert [e.text for e in explanations] == TEXTS[:2]
        assert "great" in [t.token for t in explanations[0].top(2)]
        assert explanations[0].top(1)[0].attribution > 0 > explanations[1].top(1)[0].attribution
        width = max(len(e.tokens) for e in explanations)  # padded with 0, as the explainer pads
        assert_attributions_add_up({"attributions": [[t.attribution for t in e.tokens] + [0.0] * (width - len(e.tokens))
                                                     for e in explanations],
                                    "logits": np.array([e.logit for e in explanations]),
                                    "baseline_logits": np.array([e.baseline_logit for e in explanations])})


def test_export_from_a_run_and_from_an_export_writes_new_versions_that_score_alike(trained, tmp_path):
    first = ks.load(trained["dir"]).export(tmp_path / "exports")
    second = ks.load(first).export(tmp_path / "exports")  # an export is copied as the next version
    assert (first.name, second.name) == ("1", "2")
    assert ks.load(tmp_path / "exports").predict(TEXTS) == ks.load(first).predict(TEXTS)
    assert not list((tmp_path / "exports").glob(".tmp-*"))
    with pytest.raises(FileExistsError):
        ks.load(first).export(tmp_path / "exports", version=2)
    with pytest.raises(ks.KerasSentimentError, match="give export_dir"):
        ks.load(first).export()


def test_user_mistakes_are_one_line_errors(trained, tmp_path):
    with pytest.raises(ks.KerasSentimentError, match="neither a run directory"):
        ks.load(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="not one string"):
        ks.load(trained["dir"]).predict("one string")
    with pytest.raises(ks.KerasSentimentError, match="unknown settings"):
        ks.train(hidden_units=8)
    with pytest.raises(ks.KerasSentimentError, match="--pooling sum: choose one of"):
        ks.train(pooling="sum")
    with pytest.raises(ks.KerasSentimentError, match="epochs='3': expected int"):
        ks.train(epochs="3")
    with pytest.raises(ks.KerasSentimentError, match="refit=1: expected bool"):
        ks.train(refit=1)
    with pytest.raises(ks.KerasSentimentError, match="resume continues .* drop --epochs"):
        ks.train(resume=trained["dir"], epochs=3)


def test_importing_the_package_loads_no_tensorflow():
    """`import keras_sentiment` (and so the CLI's `--help`) stays instant: the API loads TensorFlow on first use."""
    code = "import sys, keras_sentiment; print('tensorflow' in sys.modules, callable(keras_sentiment.load))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.stdout.split() == ["False", "True"], done.stderr[-2000:]


def test_the_api_and_the_cli_share_one_settings_table():
    """`ks.train` resolves settings as `keras-sentiment train` does: the same table, recipes and defaults."""
    from keras_sentiment.apps.cli import build_parser
    from keras_sentiment.run.settings import explicit_settings, resolve_settings

    argv = ["train", "--dataset", "sst2", "--arch", "gru"]
    from_flags = resolve_settings(explicit_settings(build_parser(argv).parse_args(argv)), stamp="x")
    from_python = resolve_settings({"dataset": "sst2", "arch": "gru"}, stamp="x")
    assert from_flags.values == from_python.values and from_flags.sources == from_python.sources
