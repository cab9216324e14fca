"""Knowledge distillation (`--teacher`): the student learns the teacher's decisions, not the labels;
variants are made of a text's own words; the teacher scores each text once."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, cli, make_examples, write_run_dir_stub, write_sst2
from keras_sentiment.run.sources import SST2_VALID_FRACTION, read_glue_rows, split_sst2_by_sentence, whole_text_indices
from keras_sentiment.core.scorer import score_texts
from keras_sentiment.run.teacher import make_variants, ngrams_fitted_on_these_texts, split_sentences, variants_of
from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.run.settings import resolve_settings

def is_subsequence(words, of):
    remaining = iter(of)
    return all(word in remaining for word in words)


def test_variants_are_the_texts_own_words_in_order_new_and_the_same_in_every_run():
    texts = ["a truly great and moving film about love", "dull , flat and far too long", "great", "truly great"]
    variants = make_variants(texts, [0, 1], copies=6)
    assert variants == make_variants(texts, [0, 1], copies=6)  # seeded by the text, not by a global seed
    assert variants_of(texts[0], 6) != variants_of(texts[1], 6)
    assert 0 < len(variants) <= 12 and len(set(variants)) == len(variants)
    assert not set(variants) & set(texts)
    for variant in variants:
        assert any(is_subsequence(variant.split(), text.split()) for text in texts[:2]), variant
    assert make_variants(texts, [0, 1], copies=0) == []


def test_unlabelled_documents_become_sentences_tokenized_as_sst_tokenizes():
    review = "I didn't like it. The plot's a mess!<br /><br />Too long? Yes.   Awful acting, really bad."
    assert split_sentences(review) == ["i did n't like it .", "the plot 's a mess !", "too long ?", "awful acting , really bad ."]


def test_the_whole_texts_of_sst2_are_its_sentences_and_of_imdb_every_review():
    phrases = ["a truly great film", "truly great", "great", "a dull film", "dull", "film"]
    assert whole_text_indices("sst2", phrases) == [0, 3]
    assert whole_text_indices("imdb", phrases) == list(range(6))


def test_teacher_logits_come_back_in_the_texts_order_whatever_the_batching():
    texts = ["x" * n for n in (5, 1, 9, 3, 7, 2)]

    def scorer(batch):
        return np.array([len(t) for t in batch.numpy()], "float32")

    np.testing.assert_array_equal(score_texts(scorer, texts, batch_size=4), [5, 1, 9, 3, 7, 2])


def test_a_missing_teacher_or_variants_without_one_are_one_line_errors(tmp_path):
    with pytest.raises(KerasSentimentError, match="--teacher: no such"):
        resolve_settings({"teacher": str(tmp_path / "nowhere")})
    with pytest.raises(KerasSentimentError, match="give --teacher too"):
        resolve_settings({"teacher_variants": 3})
    with pytest.raises(KerasSentimentError, match="--teacher-text: no such file"):
        resolve_settings({"teacher": str(tmp_path), "teacher_text": str(tmp_path / "none.txt")})
    with pytest.raises(KerasSentimentError, match="--cache-encoder with --teacher \\(flag\\): the cache stores the labels"):
        resolve_settings({"arch": "bert_gru", "teacher": str(tmp_path), "trainable_layers": "0", "cache_encoder": True})


def test_a_teacher_whose_ngrams_saw_these_training_texts_gets_a_caution(tmp_path):
    with_ngrams = write_run_dir_stub(tmp_path / "imdb_ngrams", {"dataset": "imdb", "ngrams": 2})
    caution = ngrams_fitted_on_these_texts(with_ngrams, "imdb")
    assert caution.startswith("Caution: the teacher's n-grams (--ngrams 2) were fitted on imdb's training texts")
    without = write_run_dir_stub(tmp_path / "imdb_plain", {"dataset": "imdb", "ngrams": 0})
    assert ngrams_fitted_on_these_texts(without, "imdb") is None
    assert ngrams_fitted_on_these_texts(tmp_path / "imdb_ngrams", "sst2") is None  # other texts: nothing to lean on
    assert ngrams_fitted_on_these_texts(tmp_path / "an_export", "imdb") is None


SMALL_GRU = ["train", "--dataset", "sst2", "--arch", "gru", "--recipe", "seed", "--hidden-dim", 8, "--embedding-dim", 16,
             "--batch-size", 16, "--learning-rate", 0.01, "--dropout", 0.1, "--epochs", 4, "--monitor", "val_accuracy"]


def write_sst2_with_flipped_training_labels(folder):
    """A generated SST-2 in `folder` whose training labels are all flipped but for the texts of seed 1234's valid split."""
    write_sst2(folder, num_train=400, num_dev=80)
    rows = read_glue_rows(folder / "SST-2" / "train.tsv")
    phrases, labels = rows.texts, [int(label == "positive") for label in rows.labels]
    _, valid = split_sst2_by_sentence(phrases, SST2_VALID_FRACTION, seed=1234)  # the run's own split
    valid_texts = {phrases[i] for i in valid}
    flipped_rows = [f"{text}\t{label if text in valid_texts else 1 - label}" for text, label in zip(phrases, labels)]
    (folder / "SST-2" / "train.tsv").write_text("\n".join(["sentence\tlabel", *flipped_rows]) + "\n")


@pytest.fixture(scope="module")
def gru_teacher(tmp_path_factory):
    """A small GRU trained on a generated SST-2 with its true labels: its run dir (the students below share it)."""
    tmp = tmp_path_factory.mktemp("gru_teacher")
    write_sst2(tmp / "true", num_train=400, num_dev=80)
    teacher = cli(*SMALL_GRU, "--data-dir", tmp / "true", "--run-dir", tmp / "teacher", "--export-dir", tmp / "t_export",
                  cache=tmp / "cache")
    assert teacher.returncode == 0, teacher.stdout[-3000:] + teacher.stderr[-3000:]
    return tmp / "teacher"


def test_the_student_learns_the_teachers_decisions_not_the_labels(tmp_path, gru_teacher):
    """A teacher trained on true labels; the student's training labels all flipped (valid's kept, so
    early stopping still means something). Trained on its labels the student would call the test
    set backwards; with the teacher's targets it gets it right."""
    flipped_data, cache, teacher = tmp_path / "flipped", tmp_path / "cache", gru_teacher
    write_sst2_with_flipped_training_labels(flipped_data)
    student_args = [*SMALL_GRU, "--data-dir", flipped_data, "--teacher", teacher,
                    "--teacher-variants", 3]
    unlabelled = tmp_path / "unlabelled.txt"  # reviews with no labels: only the teacher can label their sentences
    unlabelled.write_text("\n".join(text for text, _ in make_examples(100, seed=7)) + "\n")
    student = cli(*student_args, "--teacher-text", unlabelled, "--teacher-text-sentences", 50, "--run-dir", tmp_path / "student", "--export-dir", tmp_path / "s_export", cache=cache)
    assert student.returncode == 0, student.stdout[-3000:] + student.stderr[-3000:]

    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["teacher_label_agreement"] < 0.1  # it disagrees with the flipped labels
    assert config["teacher_variants_made"] > 0 and config["teacher"] == str(teacher)
    assert config["teacher_text_sentences_used"] == 50
    metrics = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]  # true labels; trained on its own it would be near 0

    # The student's run dir loads in a fresh process (its checkpoint records the soft-target accuracy).
    predicted = subprocess.run([sys.executable, str(ROOT / "scripts" / "predict.py"), "--model", tmp_path / "student",
                                "--json", "a great and wonderful film"], capture_output=True, text=True, cwd=ROOT,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert json.loads(predicted.stdout.splitlines()[-1])["label"] == 1, predicted.stdout

    # A second student with the same teacher scores nothing anew.
    again = cli(*student_args, "--epochs", 1, "--run-dir", tmp_path / "again", "--export-dir", tmp_path / "a_export",
                cache=cache)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Scoring" not in again.stdout and "Scoring" in student.stdout
    assert len(list((cache / "teacher_logits").glob("*.json"))) == 1


def test_a_bert_gru_student_learns_the_teachers_decisions_not_the_labels(tmp_path, gru_teacher):
    """The flipped-labels test for a bert_gru student (a tiny encoder, fine-tuned) of a GRU teacher,
    with n-grams beside it: they too learn from the teacher's decisions, not the flipped labels."""
    pytest.importorskip("keras_hub", reason="bert extra not installed")
    from test_bert import save_tiny_preset

    preset, cache = save_tiny_preset(tmp_path / "tiny_bert"), tmp_path / "cache"
    write_sst2_with_flipped_training_labels(tmp_path / "flipped")
    teacher = gru_teacher
    student = cli("train", "--dataset", "sst2", "--arch", "bert_gru", "--bert-preset", preset, "--trainable-layers", "all",
                  "--encoder-learning-rate", 1e-3, "--hidden-dim", 8, "--max-length", 32, "--learning-rate", 0.005,
                  "--batch-size", 16, "--epochs", 4, "--monitor", "val_accuracy", "--ngrams", 1, "--ngram-max-length", 32,
                  "--data-dir", tmp_path / "flipped", "--teacher", teacher, "--run-dir", tmp_path / "student",
                  "--export-dir", tmp_path / "s_export", cache=cache)
    assert student.returncode == 0, student.stdout[-3000:] + student.stderr[-3000:]
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["teacher_label_agreement"] < 0.1
    # The n-grams alone on the valid split's true labels: fitted to the flipped ones they would be near 0.
    ngram_valid = [float(line.split("valid accuracy ")[1].split("%")[0]) for line in student.stdout.splitlines()
                   if line.strip().startswith("n-grams, C=")]
    assert len(ngram_valid) >= 2 and min(ngram_valid) >= 90, student.stdout[-3000:]
    metrics = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]


def test_teacher_auto_trains_the_recipes_bert_gru_on_the_students_split_once_then_reuses_it(tmp_path):
    """The SST-2 BiLSTM recipe's `--teacher auto`, with a tiny BERT checkpoint: the teacher is the
    recipe's bert_gru on the student's own split (same seed and valid texts), kept in the cache; a
    second student on that split reuses it and its logits. No IMDB here: the recipe's IMDB
    sentences fall back to none, said once."""
    pytest.importorskip("keras_hub", reason="bert extra not installed")
    from test_bert import save_tiny_preset

    preset, cache = save_tiny_preset(tmp_path / "tiny_bert"), tmp_path / "cache"
    write_sst2(tmp_path / "data", num_train=300, num_dev=60)
    small = ["train", "--dataset", "sst2", "--data-dir", tmp_path / "data", "--data-source", "local", "--bert-preset", preset,
             "--embedding-dim", 8, "--hidden-dim", 8, "--batch-size", 16, "--learning-rate", 0.01, "--dropout", 0.1]
    student = cli(*small, "--epochs", 2, "--run-dir", tmp_path / "student", "--export-dir", tmp_path / "s_export", cache=cache)
    assert student.returncode == 0, student.stdout[-3000:] + student.stderr[-3000:]
    assert "Teacher: training the sst2 recipe's bert_gru" in student.stdout
    assert "--teacher-text: recipe best adds IMDB's training reviews" in student.stdout

    [teacher_dir] = (cache / "teachers").glob("sst2_bert_gru_*")
    teacher = json.loads((teacher_dir / "config.json").read_text())
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert (teacher["arch"], teacher["trainable_layers"], teacher["seed"]) == ("bert_gru", "all", config["seed"])
    assert teacher["bert_preset"] == str(preset) and (teacher_dir / "export" / "1").is_dir()
    assert config["teacher"] == "auto" and config["teacher_model"] == str(teacher_dir)
    assert config["teacher_variants_made"] > 0 and config["teacher_text_sentences_used"] == 0
    assert config["sources"]["teacher_text"] == "recipe best; IMDB not available"
    # The tiny teacher learns a little in its recipe's 3 epochs (0.79 measured): far above the 0.5 of a
    # teacher trained on other labels or texts (about 270 texts: chance stays within 0.5 +- 0.06).
    assert config["teacher_label_agreement"] >= 0.6
    teacher_metrics = json.loads((teacher_dir / "metrics.json").read_text())
    student_metrics = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert teacher_metrics["valid"]["num_examples"] == student_metrics["valid"]["num_examples"]  # the same held-out split

    again = cli(*small, "--epochs", 1, "--run-dir", tmp_path / "again", "--export-dir", tmp_path / "a_export", cache=cache)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Teacher: the bert_gru trained on this training split before" in again.stdout
    assert "Teacher: training" not in again.stdout and "Scoring" not in again.stdout
    assert list((cache / "teachers").glob("sst2_bert_gru_*")) == [teacher_dir]


def test_the_automatic_teachers_folder_is_named_by_the_training_split_and_its_settings(tmp_path):
    import tensorflow as tf

    from keras_sentiment.run.sources import Splits
    from keras_sentiment.run.teacher import auto_teacher_settings

    def splits_of(examples):
        train = tf.data.Dataset.from_tensor_slices(([t for t, _ in examples], [y for _, y in examples]))
        return Splits(train, None, None, sizes={}, source="generated")

    examples = make_examples(30)
    settings = resolve_settings({"dataset": "sst2", "bert_preset": str(tmp_path)})
    folder = auto_teacher_settings(settings, splits_of(examples)).run_dir
    assert folder == auto_teacher_settings(settings, splits_of(examples)).run_dir
    assert Path(folder).parent.name == "teachers" and Path(folder).name.startswith("sst2_bert_gru_")
    flipped = [(text, 1 - label) for text, label in examples]
    assert auto_teacher_settings(settings, splits_of(flipped)).run_dir != folder
    assert auto_teacher_settings(settings, splits_of(examples[1:])).run_dir != folder
    other_seed = resolve_settings({"dataset": "sst2", "bert_preset": str(tmp_path), "seed": 7})
    assert auto_teacher_settings(other_seed, splits_of(examples)).run_dir != folder
    # SST-2's bert_gru recipe is itself a student (self-training): its teacher is the same as a BiLSTM's, with no teacher
    bert_student = resolve_settings({"dataset": "sst2", "arch": "bert_gru", "bert_preset": str(tmp_path)})
    assert (bert_student.teacher, bert_student.teacher_text) == ("auto", "imdb")
    teacher_of_bert = auto_teacher_settings(bert_student, splits_of(examples))
    assert (teacher_of_bert.teacher, teacher_of_bert.teacher_text, teacher_of_bert.run_dir) == (None, None, folder)
    # IMDB's bert_gru recipe adds n-grams; its teacher does not (they would give the training labels back)
    imdb_teacher = auto_teacher_settings(resolve_settings({"dataset": "imdb", "teacher": "auto", "bert_preset": str(tmp_path)}),
                                         splits_of(examples))
    assert (imdb_teacher.trainable_layers, imdb_teacher.max_length, imdb_teacher.ngrams) == ("all", 256, 0)


# The settings hashed into an automatic teacher's folder name when its teachers were trained. A new
# setting lands here only on purpose: it renames the folder, so every cached teacher (about 45 min
# each on 2 cores) is trained again. One bert_gru does not read goes into NOT_IN_THE_TEACHERS_NAME.
TEACHER_NAME_SETTINGS = (
    "arch", "backup_every", "batch_size", "bert_preset", "cache_dtype", "cache_encoder", "dataset", "dropout",
    "embedding_dim", "embeddings", "embeddings_text", "encoder_learning_rate", "encoder_states", "epochs",
    "hidden_dim", "learning_rate", "logical_cpus", "max_eval_samples", "max_length", "max_train_samples", "monitor",
    "num_layers", "patience", "pooling", "recipe", "refit", "seed", "strategy", "teacher", "teacher_text",
    "teacher_text_sentences", "teacher_variants", "trainable_layers", "vocab_size")


def test_a_new_setting_does_not_rename_the_cached_teachers_unless_chosen_to():
    from keras_sentiment.run.teacher import IN_THE_TEACHERS_NAME_WHEN_SET, NOT_IN_THE_TEACHERS_NAME
    from keras_sentiment.run.settings import BY_NAME

    assert all(BY_NAME[name].default is None for name in IN_THE_TEACHERS_NAME_WHEN_SET)  # unset: left out of the hash
    hashed = set(BY_NAME) - set(NOT_IN_THE_TEACHERS_NAME) - set(IN_THE_TEACHERS_NAME_WHEN_SET)
    assert hashed == set(TEACHER_NAME_SETTINGS), (
        f"new: {sorted(hashed - set(TEACHER_NAME_SETTINGS))}; gone: {sorted(set(TEACHER_NAME_SETTINGS) - hashed)}")


def test_an_interrupted_automatic_teacher_is_resumed_and_a_missing_bert_is_said_or_refused(tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    from keras_sentiment.run import teacher as distill
    from keras_sentiment.run.sources import Splits

    examples = make_examples(30)
    splits = Splits(tf.data.Dataset.from_tensor_slices(([t for t, _ in examples], [y for _, y in examples])), None, None)
    settings = resolve_settings({"dataset": "sst2", "bert_preset": str(tmp_path)})
    teacher = distill.auto_teacher_settings(settings, splits)
    run_dir = Path(teacher.run_dir)
    (run_dir / "backup").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(teacher.to_json()))
    (run_dir / "backup" / "state.json").write_text(json.dumps({"epoch": 1, "batch": 30}))  # killed in epoch 2
    calls = []
    def train(s, resume=False):
        calls.append((s.run_dir, s.arch, resume))

    assert distill.train_or_reuse_auto_teacher(settings, splits, train) == run_dir
    assert calls == [(str(run_dir), "bert_gru", True)]
    assert "Teacher: continuing the bert_gru" in capsys.readouterr().out

    monkeypatch.setitem(sys.modules, "keras_hub", None)  # no keras-hub installed: importing it fails
    assert distill.train_or_reuse_auto_teacher(settings, splits, train) is None  # the recipe's teacher: said, then the labels
    assert "cannot be trained here (bert_gru needs keras-hub" in capsys.readouterr().out
    flagged = resolve_settings({"dataset": "sst2", "teacher": "auto", "recipe": "seed"})
    with pytest.raises(KerasSentimentError, match="bert_gru needs keras-hub"):
        distill.train_or_reuse_auto_teacher(flagged, splits, train)
    assert len(calls) == 1


HOLD_LOCK = """
import sys, time
from pathlib import Path
from keras_sentiment.run.locks import exclusive_lock
lock, ready, go = map(Path, sys.argv[1:4])
with exclusive_lock(lock, waiting="holder waited"):
    ready.touch()
    while not go.exists():
        time.sleep(0.05)
    (lock.parent / "released").touch()
"""


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_teacher_lock_makes_a_second_run_wait_and_a_killed_holder_leaves_no_stale_lock(tmp_path, capsys):
    from keras_sentiment.run.locks import exclusive_lock

    lock, ready, go = tmp_path / "teacher.lock", tmp_path / "ready", tmp_path / "go"

    def holder():
        ready.unlink(missing_ok=True)
        process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock), str(ready), str(go)])
        wait_for(ready.exists)
        return process

    # A second run waits, says so, and enters only after the first released the lock.
    process, entered = holder(), {}

    def second_run():
        with exclusive_lock(lock, waiting="another run is training it"):
            entered["after_release"] = (tmp_path / "released").exists()

    thread = threading.Thread(target=second_run)
    thread.start()
    wait_for(lambda: "another run is training it" in capsys.readouterr().out or not thread.is_alive())
    assert thread.is_alive() and not entered
    go.touch()
    thread.join(60)
    assert process.wait(60) == 0 and entered == {"after_release": True}

    # A holder killed with SIGKILL: the OS dropped its lock, nobody waits.
    go.unlink()
    process = holder()
    process.kill()
    process.wait(60)
    with exclusive_lock(lock, waiting="stale lock"):
        pass
    assert "stale lock" not in capsys.readouterr().out


def test_an_automatic_teacher_is_refused_on_your_own_data(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "".join(f"\"{t}\",{y}\n" for t, y in make_examples(30)))
    with pytest.raises(KerasSentimentError, match="--teacher auto: not for your own data yet; train a bert_gru"):
        resolve_settings({"train_file": str(path), "teacher": "auto"})
