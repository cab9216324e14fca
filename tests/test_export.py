import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras
from conftest import make_examples
from keras_sentiment.run.archive import SavedModelArchive
from keras_sentiment.run.export import export_serving_model, prune_versions
from keras_sentiment.core.scorer import make_text_scorer
from keras_sentiment.run.rundir import next_version
from keras_sentiment.run.loading import load_scorer
from keras_sentiment.core.recurrent import ModelConfig, build_model
from keras_sentiment.core.vectorizer import TextEncoder, build_vectorizer

TEXTS = ["A wonderful, brilliant film!", "Awful.<br />Boring plot", "", "😀 ממש טוב \x07 unseen-words", "good " * 500]

# Runs in a fresh interpreter from an empty directory: only TensorFlow, never keras_sentiment.
LOAD_WITHOUT_PACKAGE = """
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(text=tf.constant(json.loads(sys.argv[2])))
assert "keras_sentiment" not in sys.modules
print(json.dumps({k: v.numpy().astype(str).tolist() if v.dtype == tf.string else v.numpy().tolist() for k, v in out.items()}))
"""


@pytest.fixture(scope="module")
def trained_parts():
    keras.utils.set_random_seed(0)
    vectorizer = build_vectorizer(vocab_size=64)
    vectorizer.adapt(tf.constant([t for t, _ in make_examples(200, seed=3)]))
    model = build_model("bilstm", ModelConfig(vocab_size=64, embedding_dim=8, hidden_dim=8))
    return TextEncoder(vectorizer, max_length=50), model


def test_export_loads_without_the_package_and_matches_keras(trained_parts, tmp_path):
    encoder, model = trained_parts
    path = export_serving_model(model, encoder, export_dir=tmp_path / "exports")
    assert path == tmp_path / "exports" / "1"
    result = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_PACKAGE, str(path), json.dumps(TEXTS)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    expected_logits = make_text_scorer(encoder, model)(tf.constant(TEXTS)).numpy()
    np.testing.assert_allclose(served["logits"], expected_logits, atol=1e-5)
    np.testing.assert_allclose(served["probability"], 1 / (1 + np.exp(-expected_logits)), atol=1e-5)
    assert served["label"] == [int(x > 0) for x in expected_logits]
    assert served["classes"] == [["negative", "positive"]] * len(TEXTS)
    np.testing.assert_allclose(np.asarray(served["scores"])[:, 1], served["probability"], atol=1e-6)


def test_signature_contract(trained_parts, tmp_path):
    encoder, model = trained_parts
    path = export_serving_model(model, encoder, tmp_path)
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert list(inputs) == ["text"] and inputs["text"].dtype == tf.string and inputs["text"].shape.as_list() == [None]
    outputs = signature.structured_outputs
    assert {k: (v.dtype, v.shape.as_list()) for k, v in outputs.items()} == {
        "probability": (tf.float32, [None]), "label": (tf.int32, [None]), "logits": (tf.float32, [None]),
        "scores": (tf.float32, [None, 2]), "classes": (tf.string, [None, 2])}
    assert json.loads((path / "assets.extra" / "class_names.json").read_text()) == ["negative", "positive"]


def stored_float_values(saved_model_dir):
    """How many float values the export's checkpoint holds (weights; lookup tables hold strings and ints)."""
    reader = tf.train.load_checkpoint(str(saved_model_dir / "variables" / "variables"))
    shapes = reader.get_variable_to_shape_map()
    return sum(int(np.prod(shapes[name])) for name, dtype in reader.get_variable_to_dtype_map().items()
               if dtype.is_floating)


def test_the_export_stores_each_weight_once(trained_parts, tmp_path):
    # keras ExportArchive.track(model) wrote every weight twice (keras-team/keras#23553): twice the disk
    encoder, model = trained_parts
    path = export_serving_model(model, encoder, tmp_path)
    assert stored_float_values(path) == model.count_params()


def test_versions_increment_and_leave_no_temporary_dirs(trained_parts, tmp_path):
    encoder, model = trained_parts
    assert next_version(tmp_path) == 1
    export_serving_model(model, encoder, tmp_path)
    second = export_serving_model(model, encoder, tmp_path)
    assert second.name == "2" and next_version(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2"]
    with pytest.raises(FileExistsError):
        export_serving_model(model, encoder, tmp_path, version=2)


def test_load_scorer_picks_the_latest_version(trained_parts, tmp_path):
    encoder, model = trained_parts
    export_serving_model(model, encoder, tmp_path)
    logits = load_scorer(tmp_path)(tf.constant(TEXTS[:2])).numpy()
    expected = make_text_scorer(encoder, model)(tf.constant(TEXTS[:2])).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_a_crash_mid_export_leaves_no_visible_version(trained_parts, tmp_path, monkeypatch):
    encoder, model = trained_parts

    def crash(obj, export_dir, *args, **kwargs):
        os.makedirs(os.path.join(export_dir, "variables"))  # half-written, then the write fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export_serving_model(model, encoder, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert next_version(tmp_path) == 1


def test_prune_versions_keeps_the_newest(tmp_path):
    for version in (1, 2, 5, 7):
        (tmp_path / str(version)).mkdir()
        (tmp_path / str(version) / "saved_model.pb").write_bytes(b"x")
    (tmp_path / "notes").mkdir()
    assert prune_versions(tmp_path, keep=2) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["5", "7", "notes"]
    assert prune_versions(tmp_path, keep=2) == []


# Runs in a fresh interpreter: loads an export as every command does, then says whether TensorFlow Text came along.
LOAD_AND_SAY_IF_TEXT_OPS_CAME = """
import json, sys
import tensorflow as tf
from keras_sentiment.run.loading import load_saved_model
_, loaded = load_saved_model(sys.argv[1])
out = loaded.signatures["serving_default"](text=tf.constant(["Great, great film"]))
print(json.dumps({"tensorflow_text": "tensorflow_text" in sys.modules, "outputs": sorted(out)}))
"""


def test_tensorflow_text_is_imported_only_for_an_export_that_uses_its_ops(served_base, tmp_path):
    import tensorflow_text as text

    class CaseFold(tf.Module):  # stands in for a BERT export: one TensorFlow Text op in its graph
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text_):
            return {"folded": text.case_fold_utf8(text_)}

    module = CaseFold()
    tf.saved_model.save(module, str(tmp_path / "text_ops" / "1"), signatures={"serving_default": module.serve})

    def load(path):
        result = subprocess.run([sys.executable, "-c", LOAD_AND_SAY_IF_TEXT_OPS_CAME, str(path)], capture_output=True,
                                text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    assert load(served_base) == {"tensorflow_text": False, "outputs": ["classes", "label", "logits", "probability", "scores"]}
    assert load(tmp_path / "text_ops") == {"tensorflow_text": True, "outputs": ["folded"]}


def test_recurrent_exports_need_no_custom_op_and_refuse_no_tokenizer(served_base, trained_parts, tmp_path):
    from keras_sentiment.core.errors import KerasSentimentError
    from keras_sentiment.run.export import ops_outside_core_tensorflow
    from keras_sentiment.run.loading import ops_used

    assert "LookupTableFindV2" in ops_used(served_base / "1")  # the vectorizer is in the graph
    assert ops_outside_core_tensorflow(served_base / "1") == []
    with pytest.raises(KerasSentimentError, match="recurrent export"):
        export_serving_model(trained_parts[1], trained_parts[0], tmp_path, tokenizer_in_graph=False)


def test_the_archive_traces_each_endpoint_once_and_saves_what_it_reads(tmp_path):
    """`SavedModelArchive`: an endpoint's Python runs once a write (Keras' archive ran it, then the save again),
    and the variable it reads and the vocabulary table of the layer named are in the SavedModel."""
    vectorizer = build_vectorizer(vocab_size=16)
    vectorizer.adapt(tf.constant(["good film", "bad film"]))
    scale = tf.Variable(3.0)
    runs = []

    def scaled_ids(text):
        runs.append(1)
        return {"scaled": tf.cast(vectorizer(text), tf.float32) * scale}

    archive = SavedModelArchive(layers=[vectorizer])
    archive.add_endpoint("serving_default", scaled_ids, [tf.TensorSpec([None], tf.string, name="text")])
    archive.write_out(tmp_path / "archive")
    assert len(runs) == 1
    loaded = tf.saved_model.load(str(tmp_path / "archive"))
    expected = scaled_ids(tf.constant(["good film", "awful"]))["scaled"].numpy()
    got = loaded.signatures["serving_default"](text=tf.constant(["good film", "awful"]))["scaled"].numpy()
    np.testing.assert_array_equal(got, expected)  # the table and the variable came along
    assert len(set(got[0])) == 2 and got[0].min() > 3.0  # two known words: ids above the unknown word's 1
