"""`train` end to end on generated SST-2: the best recipe's word vectors, refit, resolved settings
round-tripping into evaluate/export/predict, and batch counts the progress bar can show."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import cli, make_examples, train_in_process, write_aclimdb, write_sst2

TEST_ONLY_WORD = "zyzzyva"  # appears only in the test split's text


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two best-recipe runs with --embeddings auto on the same generated SST-2: `refit` (with --refit) and
    `again` (reuses the vectors)."""
    tmp = tmp_path_factory.mktemp("training")
    folder = write_sst2(tmp / "data", num_train=600, num_dev=80)
    write_aclimdb(tmp / "data")  # SST-2's best recipe adds IMDB's training reviews to the word2vec text
    dev = (folder / "dev.tsv").read_text().splitlines()
    (folder / "dev.tsv").write_text("\n".join([dev[0]] + [f"{TEST_ONLY_WORD} {line}" for line in dev[1:]]) + "\n")
    small = ["--dataset", "sst2", "--data-dir", tmp / "data", "--embeddings", "auto", "--embedding-dim", 16, "--hidden-dim", 8,
             "--batch-size", 16, "--learning-rate", 0.01, "--dropout", 0.1, "--teacher", "none"]
    cache = tmp / "cache"
    _, refit = train_in_process(*small, "--epochs", 3, "--refit", "--run-dir", tmp / "refit", "--export-dir",
                                tmp / "export_refit", cache=cache)
    _, again = train_in_process(*small, "--epochs", 1, "--max-length", 7, "--run-dir", tmp / "again", "--export-dir",
                                tmp / "export_again", cache=cache)
    return {"tmp": tmp, "cache": cache, "refit": refit, "again": again}


def config_of(run_dir):
    return json.loads((run_dir / "config.json").read_text())


def test_the_log_starts_with_every_value_in_force_and_its_source(runs):
    log = runs["refit"]
    assert log.index("Settings (recipe best") < log.index("Epoch 1/3")
    assert re.search(r"pooling += max +\(recipe best\)", log)
    assert re.search(r"hidden_dim += 8 +\(flag\)", log)
    assert re.search(r"num_layers += 2 +\(arch bilstm\)", log)
    assert re.search(r"max_length += 64 +\(dataset sst2\)", log)


def test_config_records_the_resolved_settings_and_the_real_vocabulary(runs):
    run_dir = runs["tmp"] / "refit"
    config = config_of(run_dir)
    words = (run_dir / "vocabulary.txt").read_text().splitlines()
    assert config["vocab_size"] == len(words) + 2 < 25_000  # PAD and OOV are not in the file
    assert config["sources"]["vocab_size"] == "training text (asked 25,000)"
    assert (config["recipe"], config["pooling"], config["embeddings"], config["max_length"]) == ("best", "max", "auto", 64)
    assert config["sources"]["embeddings"] == "flag" and Path(config["word_vectors"]).is_file()


def test_auto_word_vectors_come_from_the_training_text_only_and_are_cached(runs):
    vectors_file = Path(config_of(runs["tmp"] / "refit")["word_vectors"])
    assert vectors_file.parent == runs["cache"] / "word_vectors"
    words = {line.split(" ", 1)[0] for line in vectors_file.read_text().splitlines()}
    assert TEST_ONLY_WORD not in words and {"good", "awful", "film"} <= words
    assert all(len(line.split(" ")) == 17 for line in vectors_file.read_text().splitlines())  # word + 16 values
    # SST-2's training phrases and IMDB's 80 generated training reviews (the recipe's --embeddings-text imdb)
    num_train = int(re.search(r"Data: sst2 from .*'train': (\d+)", runs["refit"])[1])
    texts = re.search(r"Word vectors: skip-gram word2vec, 16-d, on ([\d,]+) texts", runs["refit"])[1]
    assert int(texts.replace(",", "")) == num_train + 80
    assert (runs["cache"] / "embeddings_text" / "imdb_train_reviews.txt").read_text().count("\n") == 80
    found = [line for line in runs["refit"].splitlines() if line.startswith("Embeddings: ")]
    assert found and f"found in {vectors_file}" in found[0]
    # The second run trains nothing: same training text, same parameters.
    assert f"Word vectors: reusing {vectors_file}" in runs["again"] and "skip-gram" not in runs["again"]
    assert config_of(runs["tmp"] / "again")["word_vectors"] == str(vectors_file)


def test_the_embedding_starts_from_the_word_vectors(runs, tmp_path):
    from keras_sentiment.run.recurrent_builder import build_classifier, build_encoder
    from keras_sentiment.run.settings import resolve_settings

    vectors_file = config_of(runs["tmp"] / "refit")["word_vectors"]
    vectors = {line.split(" ")[0]: np.array(line.split(" ")[1:], "float32")
               for line in Path(vectors_file).read_text().splitlines()}
    settings = resolve_settings({"dataset": "sst2", "embedding_dim": 16, "hidden_dim": 4})
    texts = tf.data.Dataset.from_tensor_slices(([t for t, _ in make_examples(50)], [y for _, y in make_examples(50)]))
    encoder = build_encoder(settings, texts, tmp_path)
    matrix = build_classifier(settings, encoder, vectors_file).get_layer("embedding").get_weights()[0]
    vocabulary = encoder.vectorizer.get_vocabulary()
    assert "good" in vocabulary
    np.testing.assert_allclose(matrix[vocabulary.index("good")], vectors["good"], atol=1e-6)
    np.testing.assert_array_equal(matrix[:2], 0.0)  # PAD and OOV


def test_refit_trains_a_fresh_model_on_train_and_valid_for_the_chosen_epochs(runs):
    run_dir = runs["tmp"] / "refit"
    config, history = config_of(run_dir), read_csv(run_dir / "history.csv")
    losses = [float(r["val_loss"]) for r in history]
    best_epoch = losses.index(min(losses)) + 1
    refit_history = read_csv(run_dir / "refit_history.csv")
    assert config["refit_epochs"] == best_epoch == len(refit_history)
    assert config["refit_examples"] == 600  # 570 train + 30 valid
    assert f"Refit: a fresh model on train + valid (600 examples) for {best_epoch} epochs" in runs["refit"]
    # The selection run's learning rates, epoch by epoch.
    assert [float(r["learning_rate"]) for r in refit_history] == [float(r["learning_rate"]) for r in history[:best_epoch]]
    assert (run_dir / "selected.keras").is_file() and (run_dir / "best.keras").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["valid"]["model"] == "selected.keras"  # the refit model has seen the valid split
    assert metrics["selected_test"]["model"] == "selected.keras" and metrics["test"]["model"] == "best.keras"
    assert metrics["selected_test"]["num_examples"] == metrics["test"]["num_examples"] == 80
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]  # the delivered (refit) model learned the task


def test_every_epoch_shows_a_progress_total(runs):
    assert "Unknown" not in runs["refit"] and "Unknown" not in runs["again"]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", runs["again"]).replace("\r", "\n")
    # The bar's last update of an epoch: "steps/total ... val_loss: ..."; the training phrases in batches of 16.
    num_train = int(re.search(r"Data: sst2 from .*'train': (\d+)", plain)[1])
    ends = re.findall(r"^\s*(\d+)/(\d+) .* val_loss: ", plain, flags=re.MULTILINE)
    assert ends and all(done == total and int(total) >= -(-num_train // 16) for done, total in ends), (ends, num_train)


def test_evaluate_export_and_predict_read_the_run_dirs_settings(runs, tmp_path):
    from keras_sentiment.run.loading import load_run

    tmp, cache = runs["tmp"], runs["cache"]
    # No --dataset: the run's own (sst2); defaulting to imdb would find no IMDB data and fail.
    evaluated = cli("evaluate", tmp / "refit", cache=cache)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    written = json.loads((tmp / "refit" / "metrics_sst2_test.json").read_text())["test"]
    trained = json.loads((tmp / "refit" / "metrics.json").read_text())["test"]
    assert abs(written["accuracy"] - trained["accuracy"]) <= 1 / trained["num_examples"]
    # No --export-dir: the run's own, next version.
    exported = cli("export", tmp / "again", cache=cache)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert f"SavedModel: {tmp / 'export_again' / '2'}" in exported.stdout
    # --max-length 7 comes back from config.json, and the run dir scores like its export.
    encoder, _ = load_run(tmp / "again")
    assert encoder.max_length == 7
    text = "good " * 3 + "awful " * 10
    probabilities = []
    for model in (tmp / "again", tmp / "export_again"):
        predicted = cli("predict", "--model", model, "--json", text, cache=cache)
        assert predicted.returncode == 0, predicted.stderr[-3000:]
        probabilities.append(json.loads(predicted.stdout.strip().splitlines()[-1])["probability"])
    assert probabilities[0] == pytest.approx(probabilities[1], abs=1e-5)


@pytest.mark.parametrize("batch_size, shuffle", [(1, False), (7, True), (32, True), (500, False)])
def test_the_batch_count_the_bar_shows_is_the_number_of_batches(batch_size, shuffle):
    from keras_sentiment.run.batching import make_batches
    from keras_sentiment.core.vectorizer import TextEncoder, build_vectorizer

    examples = make_examples(300, seed=3, min_words=0, max_words=60)
    texts, labels = [t for t, _ in examples], [y for _, y in examples]
    vectorizer = build_vectorizer(vocab_size=50)
    vectorizer.adapt(tf.constant(texts))
    batches = make_batches(tf.data.Dataset.from_tensor_slices((texts, labels)), TextEncoder(vectorizer, 40), batch_size, 40,
                           shuffle=shuffle, seed=1)
    declared = int(batches.cardinality())
    assert declared > 0
    for _ in range(2):  # every (reshuffled) epoch
        assert sum(1 for _ in batches) == declared


def test_count_bucketed_batches_counts_one_partial_batch_per_bucket():
    from keras_sentiment.run.batching import count_bucketed_batches

    # Buckets: < 5, [5, 10), >= 10.
    assert count_bucketed_batches([1, 2, 3, 5, 9, 10, 50], [5, 10], 2) == 2 + 1 + 1
    assert count_bucketed_batches([4, 4, 4, 4], [5, 10], 2) == 2
    assert count_bucketed_batches([], [5, 10], 2) == 0


def test_the_imdb_text_for_word_vectors_is_the_same_file_whatever_the_global_seed(tmp_path, monkeypatch):
    import keras

    from keras_sentiment.run.word_vectors import imdb_training_reviews_file

    write_aclimdb(tmp_path / "data")
    contents = []
    for seed in (1, 2):  # a training run sets TensorFlow's global seed to its --seed first
        monkeypatch.setenv("KERAS_SENTIMENT_CACHE", str(tmp_path / f"cache{seed}"))
        keras.utils.set_random_seed(seed)
        contents.append(imdb_training_reviews_file(tmp_path / "data").read_text(encoding="utf-8"))
    lines = contents[0].splitlines()
    assert contents[0] == contents[1] and len(lines) == 80 and lines == sorted(lines)  # the 80 training reviews


def test_without_imdb_the_recipe_trains_sst2_vectors_on_its_own_text_and_the_flag_refuses(tmp_path):
    write_sst2(tmp_path / "data", num_train=120, num_dev=20)
    small = ["--dataset", "sst2", "--data-dir", tmp_path / "data", "--data-source", "local", "--epochs", 1,
             "--embedding-dim", 8, "--hidden-dim", 4, "--max-train-samples", 60, "--teacher", "none"]
    result = cli("train", *small, "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "export", cache=tmp_path / "c")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "IMDB is not in the data dir" in result.stdout
    config = config_of(tmp_path / "run")
    assert config["embeddings_text"] == "none" and config["sources"]["embeddings_text"] == "recipe best; IMDB not available"
    refused = cli("train", *small, "--embeddings-text", "imdb", "--run-dir", tmp_path / "run2", cache=tmp_path / "c")
    assert refused.returncode == 2 and "--embeddings-text imdb" in refused.stderr and "Traceback" not in refused.stderr


def test_a_linear_schedule_falls_to_zero_over_the_epochs_without_halving_and_the_refit_decays_over_its_own(tmp_path):
    from conftest import TINY_GRU, train_on_generated_sst2

    trained = train_on_generated_sst2(tmp_path, *TINY_GRU, "--epochs", 3, "--lr-schedule", "linear", "--refit",
                                      "--patience", 3)
    history = read_csv(trained["dir"] / "history.csv")
    rates = [float(row["learning_rate"]) for row in history]
    # Each epoch starts where the straight line from 0.01 (step 0) to 0 (the last step) is: 1, 2/3, 1/3 of it
    # (length buckets make an epoch's step count vary a little, hence the tolerance).
    assert rates == pytest.approx([0.01, 0.01 * 2 / 3, 0.01 / 3], abs=1e-3)
    assert "ReduceLROnPlateau" not in trained["log"]
    refit_rates = [float(row["learning_rate"]) for row in read_csv(trained["dir"] / "refit_history.csv")]
    assert refit_rates[0] == pytest.approx(0.01) and refit_rates == sorted(refit_rates, reverse=True)
    if len(refit_rates) > 1:  # its own line over its own epochs, not the selection run's rates replayed
        assert refit_rates[1] == pytest.approx(0.01 * (1 - 1 / len(refit_rates)), abs=1e-3)
    metrics = json.loads((trained["dir"] / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]  # the delivered (refit) model learned the task
