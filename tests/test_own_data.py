"""Your own data: labelled files and folders, any number of classes, from training to the export."""

import csv
import json
import random
import re

import numpy as np
import pytest

import keras_sentiment as ks
from conftest import FILLER, NEGATIVE, POSITIVE, assert_attributions_add_up, cli, train_in_process
from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.run.labelled import (MIN_EXAMPLES_PER_CLASS, order_classes, own_data, read_labelled_file,
                                          read_labelled_folder, stratified_split, texts_also_in)
from keras_sentiment.run.sources import OwnDataSource, load_own_data

NEUTRAL = ["okay", "average", "mediocre", "fine", "passable", "middling"]
CUES = {"negative": NEGATIVE, "neutral": NEUTRAL, "positive": POSITIVE}


def make_text(cues, rng):
    """Filler words with one or two words of `cues` at random places."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
    for _ in range(rng.randint(1, 2)):
        words.insert(rng.randint(0, len(words)), rng.choice(cues))
    return " ".join(words).capitalize() + rng.choice([".", "!", " ..."])


def make_rows(count, classes=("negative", "neutral", "positive"), seed=0):
    """`count` (text, label) rows, labels in turn, shuffled; each class's text holds its own cue words."""
    rng = random.Random(seed)
    labels = [classes[i % len(classes)] for i in range(count)]
    rng.shuffle(labels)
    return [(make_text(CUES.get(label, NEUTRAL), rng), label) for label in labels]


def write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path, rows, text="text", label="label"):
    path.write_text("".join(json.dumps({text: t, label: v}) + "\n" for t, v in rows), encoding="utf-8")
    return path


def write_folder(root, rows):
    for number, (text, label) in enumerate(rows):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number}.txt").write_text(text, encoding="utf-8")
    return root


# === Reading ===


def test_the_same_rows_read_alike_from_csv_tsv_jsonl_and_folders(tmp_path):
    rows = make_rows(60)
    tsv = tmp_path / "rows.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{t}\t{v}\n" for t, v in rows), encoding="utf-8")
    csv_rows = read_labelled_file(write_csv(tmp_path / "rows.csv", rows))
    for other in (read_labelled_file(tsv), read_labelled_file(write_jsonl(tmp_path / "rows.jsonl", rows))):
        assert (other.texts, other.labels) == (csv_rows.texts, csv_rows.labels) == ([t for t, _ in rows], [v for _, v in rows])
    folder = read_labelled_folder(write_folder(tmp_path / "folder", rows))
    assert sorted(zip(folder.texts, folder.labels)) == sorted(rows)
    assert csv_rows.places[0] == f"{tmp_path / 'rows.csv'}:2"


def test_columns_are_named_by_flags_and_a_missing_one_is_one_line(tmp_path):
    rows = make_rows(30)
    path = write_csv(tmp_path / "reviews.csv", [(v, t) for t, v in rows], header=("stars", "review"))
    read = read_labelled_file(path, text_column="review", label_column="stars")
    assert read.texts == [t for t, _ in rows]
    with pytest.raises(KerasSentimentError, match=r"reviews.csv:1: --label-column 'label' is not a column; columns: stars, review"):
        read_labelled_file(path, text_column="review")
    jsonl = write_jsonl(tmp_path / "r.jsonl", rows, text="body")
    with pytest.raises(KerasSentimentError, match=r"r.jsonl:1: no 'text' field \(see --text-column\)"):
        read_labelled_file(jsonl)


def test_classes_are_ordered_numerically_sorted_or_as_given():
    assert order_classes(["10", "2", "1", "4", "7"]) == ("1", "2", "4", "7", "10")
    assert order_classes(["b", "c", "a", "b"]) == ("a", "b", "c")
    assert order_classes(["b", "c", "a"], ("c", "a", "b")) == ("c", "a", "b")


def test_jsonl_numbers_are_labels_like_their_digits(tmp_path):
    path = tmp_path / "stars.jsonl"
    path.write_text('{"text": "fine", "label": 5}\n{"text": "poor", "label": 1.0}\n{"text": "ok", "label": "3"}\n')
    assert read_labelled_file(path).labels == ["5", "1", "3"]


def test_class_names_pick_and_order_and_skip_other_folders(tmp_path):
    rows = make_rows(90) + [(f"unlabelled text {i}", "unsup") for i in range(7)]
    root = write_folder(tmp_path / "train", rows)
    picked = read_labelled_folder(root, ("positive", "negative"))
    assert set(picked.labels) == {"positive", "negative"} and picked.left_out == {"neutral": 30, "unsup": 7}
    with pytest.raises(KerasSentimentError, match="no sub-folder for class\\(es\\) happy .*sub-folders: negative, neutral, positive, unsup"):
        read_labelled_folder(root, ("happy", "negative"))


def test_a_stratified_split_keeps_each_class_share_and_is_seeded():
    labels = ["a"] * 700 + ["b"] * 200 + ["c"] * 100
    kept, held = stratified_split(labels, 0.1, seed=3)
    assert sorted(kept + held) == list(range(1000)) and not set(kept) & set(held)
    assert [sum(labels[i] == name for i in held) for name in "abc"] == [70, 20, 10]
    assert stratified_split(labels, 0.1, seed=3) == (kept, held) != stratified_split(labels, 0.1, seed=4)


def test_splits_not_given_are_cut_from_train_and_recorded(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", make_rows(300))
    splits = load_own_data(OwnDataSource(("file", str(path))), seed=1)
    assert splits.class_names == ("negative", "neutral", "positive")
    assert splits.sizes == {"train": 240, "valid": 30, "test": 30}
    assert splits.facts["class_counts"]["test"] == {"negative": 10, "neutral": 10, "positive": 10}
    assert splits.facts["split_origins"]["valid"] == "a stratified 10% of train (seed 1)"
    quarter = load_own_data(OwnDataSource(("file", str(path))), seed=1, valid_fraction=0.25)
    assert quarter.sizes == {"train": 195, "valid": 75, "test": 30}
    with pytest.raises(KerasSentimentError, match=re.escape("--valid-fraction 0.9: with the 10% cut for test, nothing")):
        load_own_data(OwnDataSource(("file", str(path))), seed=1, valid_fraction=0.9)
    labels = [int(label) for _, label in splits.test.as_numpy_iterator()]
    assert sorted(labels) == [0] * 10 + [1] * 10 + [2] * 10


def test_texts_shared_between_train_and_test_are_counted(tmp_path):
    rows = make_rows(90)
    train = read_labelled_file(write_csv(tmp_path / "train.csv", rows))
    copied = [(text.upper() + "!!", label) for text, label in rows[:4]]  # the same words to the vectorizer
    test = read_labelled_file(write_csv(tmp_path / "test.csv", copied + make_rows(20, seed=9)))
    assert texts_also_in(test.texts, train.texts) >= 4
    data = own_data(train, test=test, seed=0)
    assert data.facts["texts_also_in_train"]["test"] >= 4


# === Bad input: one line each ===


@pytest.mark.parametrize("content, message", [
    ("text,label\nfine film,\n", r"bad.csv:2: empty or missing label"),
    ("text,label\n,positive\n", r"bad.csv:2: empty text \(1 row\(s\) in all\)"),
    ("text,label\n", r"bad.csv:1: no labelled rows"),
    ("text,label\n\"never closed,positive\n", r"bad.csv:2: "),
    ("review,label\nfine,positive\n", r"bad.csv:1: --text-column 'text' is not a column"),
])
def test_a_bad_file_is_one_line_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(KerasSentimentError, match=message):
        read_labelled_file(path)


def test_bytes_that_are_not_utf8_are_named_by_file_and_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\nfine,positive\ncaf\xe9,negative\n")
    with pytest.raises(KerasSentimentError, match=r"latin.csv:3: not valid UTF-8"):
        read_labelled_file(path)
    folder = tmp_path / "folder" / "negative"
    folder.mkdir(parents=True)
    (folder / "1.txt").write_bytes(b"line one\ncaf\xe9")
    with pytest.raises(KerasSentimentError, match=r"1.txt:2: not valid UTF-8"):
        read_labelled_folder(tmp_path / "folder")


def test_one_class_too_few_examples_free_text_and_new_test_labels_are_refused(tmp_path):
    with pytest.raises(KerasSentimentError, match=r"one class only \('positive'\)"):
        own_data(read_labelled_file(write_csv(tmp_path / "one.csv", make_rows(30, ("positive",)))))
    few = make_rows(60, ("negative", "positive")) + make_rows(3, ("neutral",), seed=5)
    with pytest.raises(KerasSentimentError, match=rf"'neutral' has 3; at least {MIN_EXAMPLES_PER_CLASS} each.*"
                                                  r"--class-names negative,positive"):
        own_data(read_labelled_file(write_csv(tmp_path / "few.csv", few)))
    free = [(f"text {i}", f"a sentence that is not a label {i}") for i in range(300)]
    with pytest.raises(KerasSentimentError, match=r"holds 300 distinct values .*is it free text\? Check --label-column"):
        own_data(read_labelled_file(write_csv(tmp_path / "free.csv", free)))
    train = read_labelled_file(write_csv(tmp_path / "train.csv", make_rows(60, ("negative", "positive"))))
    test = read_labelled_file(write_csv(tmp_path / "test.csv", make_rows(30)))
    with pytest.raises(KerasSentimentError, match=r"test labels never seen in training: 'neutral' \(10\), the first at .*test.csv:\d+"):
        own_data(train, test=test)


def test_empty_and_missing_folders_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(KerasSentimentError, match="no sub-folders; expected one sub-folder per class"):
        read_labelled_folder(tmp_path / "empty")
    (tmp_path / "classes" / "positive").mkdir(parents=True)
    with pytest.raises(KerasSentimentError, match=r"positive: no .txt files"):
        read_labelled_folder(tmp_path / "classes")
    with pytest.raises(KerasSentimentError, match="no such folder"):
        read_labelled_folder(tmp_path / "nowhere")


def test_train_flags_for_own_data_are_checked_before_any_work(tmp_path):
    path = write_csv(tmp_path / "r.csv", make_rows(30))
    for settings, message in [
        ({"train_file": str(tmp_path / "none.csv")}, "--train-file: no such file"),
        ({"dataset": "imdb", "train_file": str(path)}, "--dataset imdb with --train-file: give one of the two"),
        ({"label_column": "stars"}, "--label-column: for your own data; give --train-file or --train-dir too"),
        ({"train_file": str(path), "test_file": str(path), "test_dir": str(tmp_path)}, "give the test data one way"),
    ]:
        with pytest.raises(KerasSentimentError, match=message):
            ks.train(**settings)
    assert not (tmp_path / "runs").exists()


# === Training, export and use: three classes from a CSV ===

TINY = ["--arch", "gru", "--recipe", "seed", "--embedding-dim", 16, "--hidden-dim", 16, "--batch-size", 16,
        "--learning-rate", 0.01, "--dropout", 0.1, "--epochs", 4, "--max-length", 32]


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("three")
    train = write_csv(tmp / "reviews.csv", make_rows(900))
    test = write_jsonl(tmp / "test.jsonl", make_rows(150, seed=7))
    run, log = train_in_process("--train-file", train, "--test-file", test, *TINY, "--run-dir", tmp / "run",
                                "--export-dir", tmp / "export", cache=tmp / "cache")
    return {"tmp": tmp, "run": run, "log": log, "test": test}


def test_a_three_class_model_learns_and_records_its_classes(three_classes):
    run = three_classes["run"]
    assert run.metrics["test"]["accuracy"] > 0.9  # chance is 1/3
    assert set(run.metrics["test"]["per_class"]) == {"negative", "neutral", "positive"}
    assert np.asarray(run.metrics["test"]["confusion_matrix"]).shape == (3, 3)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["classes"] == ["negative", "neutral", "positive"] and config["dataset"] == "own"
    assert sum(config["class_counts"]["test"].values()) == 150 and config["split_origins"]["test"].endswith("test.jsonl")
    assert "Classes (3), examples per split:" in three_classes["log"]


def test_a_three_class_export_serves_scores_and_class_names(three_classes):
    import tensorflow as tf

    export = three_classes["run"].export_path
    assert json.loads((export / "assets.extra" / "class_names.json").read_text()) == ["negative", "neutral", "positive"]
    outputs = tf.saved_model.load(str(export)).signatures["serving_default"](text=tf.constant(
        ["a great and superb film", "an okay and average film", "an awful and dreadful film"]))
    assert outputs["scores"].shape == (3, 3) and outputs["label"].numpy().tolist() == [2, 1, 0]
    np.testing.assert_allclose(outputs["scores"].numpy().sum(axis=1), 1.0, atol=1e-5)
    assert outputs["classes"].numpy()[0].tolist() == [b"negative", b"neutral", b"positive"]


def test_the_python_api_predicts_and_explains_class_names(three_classes):
    texts = ["a great and superb film", "an okay and average film", "an awful and dreadful film"]
    for path in (three_classes["run"].run_dir, three_classes["run"].export_path):
        model = ks.load(path)
        assert model.class_names == ("negative", "neutral", "positive")
        predictions = model.predict(texts)
        assert [p["label"] for p in predictions] == ["positive", "neutral", "negative"]
        assert all(abs(sum(p["scores"].values()) - 1) < 1e-5 for p in predictions)
    explained = ks.load(three_classes["run"].run_dir).explain(texts)
    assert [e.label_name for e in explained] == ["positive", "neutral", "negative"]
    cue = {"positive": POSITIVE, "neutral": NEUTRAL, "negative": NEGATIVE}
    for explanation in explained:  # the predicted class's own cue word carries it
        assert explanation.top(1)[0].token in cue[explanation.label_name]
    assert_attributions_add_up({"attributions": [[t.attribution for t in e.tokens] + [0.0] * (9 - len(e.tokens))
                                                 for e in explained],
                                "logits": np.array([e.logit for e in explained]),
                                "baseline_logits": np.array([e.baseline_logit for e in explained])})


def test_a_chosen_class_is_explained_from_the_run_and_from_its_export(three_classes):
    texts = ["a great and superb film", "an okay and average film"]
    run, export = three_classes["run"].run_dir, three_classes["run"].export_path
    from_run = ks.load(run).explain(texts, class_name="negative")
    assert [(e.label_name, e.explained_name) for e in from_run] == [("positive", "negative"), ("neutral", "negative")]
    assert not any(e.is_default_class for e in from_run)
    great = from_run[0].top(1)[0]
    assert great.token in POSITIVE and great.attribution < 0  # the positive cue pushes away from negative
    assert_attributions_add_up({"attributions": [[t.attribution for t in e.tokens] + [0.0] * (9 - len(e.tokens))
                                                 for e in from_run],
                                "logits": np.array([e.logit for e in from_run]),
                                "baseline_logits": np.array([e.baseline_logit for e in from_run])})
    from_export = ks.load(export).explain(texts, class_name="negative")  # its explain_class signature
    for a, b in zip(from_run, from_export):
        np.testing.assert_allclose([t.attribution for t in a.tokens], [t.attribution for t in b.tokens], atol=2e-3)
        assert abs(a.probability - b.probability) < 1e-5 and (a.label, a.class_id) == (b.label, b.class_id)
    with pytest.raises(KerasSentimentError, match="class 'joy': not a class of .*; its classes are negative, neutral"):
        ks.load(export).explain(texts, class_name="joy")
    result = cli("explain", "--model", export, "--class", "neutral", "--json", texts[0], cache=three_classes["tmp"] / "cache")
    assert result.returncode == 0, result.stderr[-2000:]
    shown = json.loads(result.stdout)
    assert (shown["class"], shown["explained"]) == ("positive", "neutral")


def test_evaluate_reads_a_labelled_test_file_and_names_the_classes(three_classes):
    tmp = three_classes["tmp"]
    result = cli("evaluate", three_classes["run"].export_path, "--test-file", three_classes["test"],
                 "--output", tmp / "metrics.json", "--confusion-matrix", tmp / "confusion.png",
                 "--reliability-plot", tmp / "reliability.png", cache=tmp / "cache")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp / "metrics.json").read_text())["test"]
    assert metrics["accuracy"] == pytest.approx(three_classes["run"].metrics["test"]["accuracy"], abs=1e-6)
    assert (tmp / "confusion.png").stat().st_size > 1000 and (tmp / "reliability.png").stat().st_size > 1000
    # The report for people: each class's row and its confusion-matrix row, with the counts written.
    report = result.stdout[result.stdout.index(f"{three_classes['test']}: 150 examples"):].splitlines()
    for name, counts in zip(("negative", "neutral", "positive"), metrics["confusion_matrix"]):
        row = metrics["per_class"][name]
        class_row, confusion_row = [line.split()[1:] for line in report if line.startswith(f"  {name} ")]
        assert class_row == [f"{row[key]:.4f}" for key in ("precision", "recall", "f1")] + [f"{row['support']:,}"]
        assert confusion_row == [f"{count:,}" for count in counts]
    aucs = [metrics["per_class"][name]["roc_auc"] for name in ("negative", "neutral", "positive")]
    assert metrics["roc_auc"] == pytest.approx(np.mean(aucs)) and min(aucs) > 0.9
    assert 0 <= metrics["expected_calibration_error"] < 0.2
    assert sum(row["count"] for row in metrics["calibration"]) == metrics["num_examples"] == 150
    assert (three_classes["run"].run_dir / "reliability.png").stat().st_size > 1000
    as_json = cli("evaluate", three_classes["run"].export_path, "--test-file", three_classes["test"], "--json",
                  cache=tmp / "cache")
    assert as_json.returncode == 0, as_json.stderr[-2000:]
    printed = json.loads(as_json.stdout)["test"]  # stdout is the JSON alone: no progress bar around it
    assert (printed["confusion_matrix"], printed["per_class"].keys()) == (metrics["confusion_matrix"], metrics["per_class"].keys())
    assert printed["loss"] == pytest.approx(metrics["loss"], abs=1e-5)
    other = write_csv(tmp / "other.csv", make_rows(20, ("happy", "sad")))
    result = cli("evaluate", three_classes["run"].export_path, "--test-file", other, cache=tmp / "cache")
    assert result.returncode == 2 and "test labels never seen in training: 'happy' (10), 'sad' (10)" in result.stderr
    assert "Traceback" not in result.stderr


# === Imbalance: class weights, macro-F1 ===


def test_macro_f1_is_the_mean_of_each_classs_f1_for_two_and_for_k_classes():
    from keras_sentiment.core.recurrent import MacroF1

    def reference(true, predicted, k):
        scores = []
        for c in range(k):
            tp = sum(t == p == c for t, p in zip(true, predicted))
            wrong = sum((t == c) != (p == c) for t, p in zip(true, predicted))
            scores.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
        return sum(scores) / k

    rng = np.random.default_rng(0)
    true, logits = rng.integers(0, 4, 50), rng.normal(size=(50, 4))
    metric = MacroF1(4)
    metric.update_state(true[:20], logits[:20])
    metric.update_state(true[20:], logits[20:])  # accumulates over batches
    assert float(metric.result()) == pytest.approx(reference(true, logits.argmax(1), 4), abs=1e-6)
    binary_true, binary_logits = rng.integers(0, 2, 40), rng.normal(size=(40, 1))
    metric = MacroF1(2)
    metric.update_state(binary_true.astype("float32"), binary_logits)
    assert float(metric.result()) == pytest.approx(reference(binary_true, (binary_logits[:, 0] > 0).astype(int), 2),
                                                   abs=1e-6)


def test_balanced_class_weights_and_macro_f1_choose_the_epoch_on_imbalanced_data(tmp_path, monkeypatch):
    import csv as csv_module

    import keras

    given = []
    fit = keras.Model.fit
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, **k: given.append(k.get("class_weight")) or fit(self, *a, **k))
    rows = make_rows(540, ("negative", "positive")) + make_rows(60, ("neutral",), seed=1)  # neutral: 1 in 10
    random.Random(2).shuffle(rows)
    train = write_csv(tmp_path / "reviews.csv", rows)
    run, log = train_in_process("--train-file", train, *TINY, "--class-weight", "balanced", "--monitor", "val_macro_f1",
                                "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "export", cache=tmp_path / "cache")
    config = json.loads((run.run_dir / "config.json").read_text())
    counts = config["class_counts"]["train"]
    assert config["class_weights"] == pytest.approx({name: sum(counts.values()) / (3 * count)
                                                     for name, count in counts.items()})
    assert config["class_weights"]["neutral"] > 3 and config["class_weights"]["negative"] < 0.8
    assert f"Class weights (balanced): negative {config['class_weights']['negative']:.3f}, neutral" in log
    assert given and all(weights == {i: config["class_weights"][name] for i, name in enumerate(config["classes"])}
                         for weights in given)  # what Keras' fit was given, class id -> weight
    with open(run.run_dir / "history.csv", newline="") as handle:
        history = [float(row["val_macro_f1"]) for row in csv_module.DictReader(handle)]
    assert f"Best epoch by val_macro_f1: {history.index(max(history)) + 1}" in log
    assert run.metrics["test"]["macro_f1"] > 0.85 and run.metrics["test"]["per_class"]["neutral"]["recall"] > 0.7


# === --init-from a recurrent run ===


def test_a_recurrent_run_starts_from_another_runs_vocabulary_embeddings_and_layers(tmp_path, three_classes):
    source = three_classes["run"].run_dir  # a GRU on three classes
    rows = make_rows(300, ("negative", "positive"), seed=11)
    train = write_csv(tmp_path / "two.csv", rows)
    run, log = train_in_process("--train-file", train, *TINY, "--init-from", source, "--run-dir", tmp_path / "run",
                                "--export-dir", tmp_path / "export", cache=tmp_path / "cache")
    assert f"Vocabulary: {source}'s" in log
    assert f"Initial weights: {source}'s embedding, gru_0; a new output layer" in log
    assert (run.run_dir / "vocabulary.txt").read_text() == (source / "vocabulary.txt").read_text()
    assert run.settings["embeddings"] == "none"  # the source's embeddings, no word2vec
    assert run.metrics["test"]["accuracy"] > 0.9

    flags = ("--train-file", train, *TINY, "--init-from", source)
    for extra, message in [(("--hidden-dim", 8), "--hidden-dim 16 there, 8 here"),
                           (("--arch", "lstm"), "trained a gru, not a lstm"),
                           (("--embeddings", "auto"), "--init-from brings its run's embeddings")]:
        result = cli("train", *flags, *extra, cache=tmp_path / "cache")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def save_tiny_bert_preset(folder):
    """A 2-layer BERT whose vocabulary holds every cue word, saved as a local `--bert-preset`; returns `folder`."""
    import keras
    import keras_hub

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "!"] + sorted(set(FILLER + sum(CUES.values(), [])))
    keras.utils.set_random_seed(0)
    keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=32,
                                  intermediate_dim=64, max_sequence_length=64).save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(folder))
    return folder


def test_few_examples_train_a_three_class_bert_gru_by_the_rules_that_serves_class_names_and_starts_a_two_class_run(tmp_path):
    """600 examples and no --arch: the rules choose bert_gru (a softmax head for k classes); `--init-from` it on
    two classes keeps all but its output layer."""
    import keras
    import tensorflow as tf

    preset = save_tiny_bert_preset(tmp_path / "tiny_bert")
    small = ["--bert-preset", preset, "--hidden-dim", 8, "--num-layers", 1, "--max-length", 24, "--learning-rate", 0.01,
             "--encoder-learning-rate", 1e-3]  # BERT's flags without --arch: for the bert_gru the rules choose
    train, test = write_csv(tmp_path / "three.csv", make_rows(600)), write_csv(tmp_path / "test.csv", make_rows(90, seed=7))
    three, log = train_in_process("--train-file", train, "--test-file", test, *small, "--run-dir", tmp_path / "three",
                                  "--export-dir", tmp_path / "export", cache=tmp_path / "cache")
    assert "Recipe for your data: 540 training examples, median" in log and "rule 'few short texts'" in log
    assert three.settings["arch"] == "bert_gru" and three.settings["sources"]["arch"] == "recipe best, rule 'few short texts'"
    assert three.settings["trainable_layers"] == "all"
    assert three.metrics["test"]["accuracy"] > 0.8  # chance is 1/3
    outputs = tf.saved_model.load(str(three.export_path)).signatures["serving_default"](text=tf.constant(
        ["a great and superb film", "an okay and average film", "an awful and dreadful film"]))
    assert outputs["scores"].shape == (3, 3) and outputs["label"].numpy().tolist() == [2, 1, 0]
    assert outputs["classes"].numpy()[0].tolist() == [b"negative", b"neutral", b"positive"]
    explained = ks.load(three.run_dir).explain(["an awful and dreadful film"], class_name="negative")[0]
    assert explained.top(1)[0].token in NEGATIVE

    two = write_csv(tmp_path / "two.csv", make_rows(200, ("negative", "positive"), seed=3))
    second, log = train_in_process("--train-file", two, *small, "--arch", "bert_gru", "--epochs", 1, "--learning-rate", 0,
                                   "--trainable-layers", 0, "--init-from", three.run_dir, "--run-dir", tmp_path / "two",
                                   cache=tmp_path / "cache")
    assert f"Initial weights: {three.run_dir}'s bert_gru" in log and "a new output layer" in log
    source = keras.models.load_model(three.run_dir / "best.keras", compile=False).get_weights()
    started = keras.models.load_model(second.run_dir / "best.keras", compile=False).get_weights()
    assert [w.shape for w in started[-2:]] == [(16, 1), (1,)] and [w.shape for w in source[-2:]] == [(16, 3), (3,)]
    for ours, theirs in zip(started[:-2], source[:-2]):  # encoder and GRU as trained, frozen here
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


# === Decision threshold (two classes) ===


def test_threshold_auto_is_chosen_on_valid_recorded_and_applied_by_the_export_and_the_api(tmp_path):
    import tensorflow as tf

    rows = [(make_text(NEGATIVE if i % 4 else POSITIVE, random.Random(i)), "neg" if i % 4 else "pos") for i in range(480)]
    rows += [(make_text(NEUTRAL, random.Random(1000 + i)), "pos" if i % 2 else "neg") for i in range(120)]  # ambiguous
    train = write_csv(tmp_path / "reviews.csv", rows)
    run, log = train_in_process("--train-file", train, *TINY, "--threshold", "auto", "--target-precision", "0.95",
                                "--run-dir", tmp_path / "run", "--export-dir", tmp_path / "export", cache=tmp_path / "cache")
    config = json.loads((run.run_dir / "config.json").read_text())
    threshold, choice = config["decision_threshold"], config["threshold_choice"]
    assert choice["rule"] == "the most recall at precision >= 0.95" and choice["precision"] >= 0.95
    assert f"Decision threshold {threshold:.4f} on valid" in log and threshold != 0.5
    assert run.metrics["test"]["threshold"] == threshold
    assert json.loads((run.export_path / "assets.extra" / "threshold.json").read_text()) == {"threshold": threshold}
    texts = [text for text, _ in rows[:200]]
    outputs = tf.saved_model.load(str(run.export_path)).signatures["serving_default"](text=tf.constant(texts))
    probability = outputs["probability"].numpy()
    assert outputs["label"].numpy().tolist() == (probability > threshold).astype(int).tolist()
    assert any(0.5 < p <= threshold or threshold < p <= 0.5 for p in probability)  # the threshold decided some
    for path in (run.run_dir, run.export_path):
        assert [p["label"] for p in ks.load(path).predict(texts)] == ["pos" if p > threshold else "neg" for p in probability]


def test_threshold_flags_are_checked_before_any_work(tmp_path):
    train = write_csv(tmp_path / "reviews.csv", make_rows(90))
    for flags, message in [(["--target-precision", "0.9"], "--target-precision: the threshold is chosen for it on valid"),
                           (["--threshold", "1.5"], "--threshold 1.5: give auto, or a probability between 0 and 1"),
                           (["--threshold", "auto", "--target-recall", "2"], "--target-recall 2.0: a share, at most 1")]:
        result = cli("train", "--train-file", train, *flags, cache=tmp_path / "cache")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    result = cli("train", "--train-file", train, "--threshold", "auto", *TINY, "--run-dir", tmp_path / "run",
                 cache=tmp_path / "cache")
    assert result.returncode == 2 and "--threshold auto (flag) is for two classes so far, and this data has 3" in result.stderr


# === ROC AUC and calibration ===


def test_roc_auc_is_the_share_of_positive_negative_pairs_in_order_ties_half():
    from keras_sentiment.run.evaluation import roc_auc

    rng = np.random.default_rng(1)
    positive, scores = rng.integers(0, 2, 60).astype(bool), rng.integers(0, 8, 60) / 8  # many ties
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p in scores[positive] for n in scores[~positive]]
    assert roc_auc(positive, scores) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert roc_auc(np.ones(5, bool), scores[:5]) is None


def test_classes_that_are_numbers_get_the_mean_absolute_error_in_their_own_units():
    from keras_sentiment.run.evaluation import classification_metrics, metrics_report

    stars = ["1", "3", "10"]
    labels = np.array([0, 1, 2, 2])
    logits = np.array([[5.0, 0, 0], [0, 0, 5.0], [0, 5.0, 0], [0, 0, 5.0]])  # predicted 1, 10, 3, 10 stars
    metrics = classification_metrics(labels, logits, class_names=stars)
    assert metrics["mean_absolute_error"] == pytest.approx((0 + 7 + 7 + 0) / 4)
    assert "MAE 3.500" in metrics_report(metrics, stars, "stars test")[1]
    assert "mean_absolute_error" not in classification_metrics(labels, logits, class_names=["bad", "ok", "good"])


def test_the_report_leaves_a_confusion_matrix_too_wide_for_a_terminal_to_the_json_and_png():
    from keras_sentiment.run.evaluation import MATRIX_LINES_UP_TO, classification_metrics, class_table

    for k in (MATRIX_LINES_UP_TO, MATRIX_LINES_UP_TO + 1):
        names = [f"class_{i}" for i in range(k)]
        labels = np.arange(3 * k) % k
        table = class_table(classification_metrics(labels, np.eye(k)[labels] * 4.0, class_names=names), names)
        assert len(table) == 1 + k + (3 + k if k <= MATRIX_LINES_UP_TO else 2)  # header, classes, then matrix or note
        assert (f"{k} x {k} confusion matrix" in table[-1]) == (k > MATRIX_LINES_UP_TO)


def test_the_expected_calibration_error_weighs_each_bins_gap_by_its_examples():
    from keras_sentiment.run.evaluation import classification_metrics

    # Two classes: confidence 0.9 (logit +-2.1972) on 10 texts, 6 right; 0.6 (logit 0.4055) on 10, all right.
    logits = np.array([2.1972] * 10 + [0.4055] * 10)
    labels = np.array([1] * 6 + [0] * 4 + [1] * 10)
    metrics = classification_metrics(labels, logits)
    assert metrics["expected_calibration_error"] == pytest.approx(0.5 * abs(0.6 - 0.9) + 0.5 * abs(1.0 - 0.6), abs=1e-3)
    assert [(row["count"], round(row["accuracy"], 3)) for row in metrics["calibration"]] == [(10, 1.0), (10, 0.6)]
    # Positives above negatives: the 6 x 4 pairs at 0.9 tie (half each), the 10 x 4 at 0.6 lie below.
    assert metrics["roc_auc"] == pytest.approx((6 * 4 * 0.5) / (16 * 4))


# === Two classes from folders: today's outputs kept ===


def test_two_classes_from_folders_keep_todays_export_outputs(tmp_path):
    import tensorflow as tf

    rows = make_rows(400, ("neg", "pos"), seed=3)
    rows = [(make_text(NEGATIVE if label == "neg" else POSITIVE, random.Random(i)), label) for i, (_, label) in enumerate(rows)]
    root = write_folder(tmp_path / "train", rows + [(f"unlabelled {i}", "unsup") for i in range(5)])
    run, log = train_in_process("--train-dir", root, "--class-names", "neg,pos", *TINY, "--run-dir", tmp_path / "run",
                                "--export-dir", tmp_path / "export", cache=tmp_path / "cache")
    assert run.metrics["test"]["accuracy"] > 0.9 and "left out by --class-names: unsup (5)" in log
    outputs = tf.saved_model.load(str(run.export_path)).signatures["serving_default"](text=tf.constant(["superb", "awful"]))
    assert set(outputs) == {"probability", "label", "logits", "scores", "classes"}
    assert outputs["label"].numpy().tolist() == [1, 0] and outputs["logits"].shape == (2,)
    np.testing.assert_allclose(outputs["scores"].numpy()[:, 1], outputs["probability"].numpy(), atol=1e-6)
    assert ks.load(run.export_path).predict(["superb"])[0]["label"] == "pos"
