import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli

ROOT = Path(__file__).resolve().parents[1]


def run_script(name, *args, stdin=None, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(ROOT / "scripts" / f"{name}.py"), *map(str, args)], input=stdin,
                          capture_output=True, text=True, env=env, cwd=cwd or ROOT, timeout=600)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from conftest import write_aclimdb

    tmp = tmp_path_factory.mktemp("cli")
    write_aclimdb(tmp / "data", per_class=60)
    run_dir, export_dir = tmp / "run", tmp / "exports"
    result = run_script("train", "--arch", "gru", "--recipe", "seed", "--data-dir", tmp / "data", "--epochs", 3, "--hidden-dim", 16,
                        "--embedding-dim", 16, "--vocab-size", 100, "--batch-size", 16, "--learning-rate", 0.01,
                        "--dropout", 0.1, "--run-dir", run_dir, "--export-dir", export_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, export_dir, result.stdout


def test_train_writes_every_run_file(trained_run):
    run_dir, export_dir, stdout = trained_run
    for name in ("config.json", "vocabulary.txt", "vectorizer.json", "best.keras", "history.csv", "curves.png",
                 "confusion_matrix.png", "metrics.json"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    for name in ("curves.png", "confusion_matrix.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["arch"] == "gru" and config["max_length"] == 400 and config["hidden_dim"] == 16
    assert len((run_dir / "vocabulary.txt").read_text().splitlines()) <= 98  # 100 minus PAD and OOV

    with open(run_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert 1 <= len(rows) <= 3
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"} <= set(rows[0])
    assert all(float(r["epoch_seconds"]) > 0 for r in rows)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"test", "valid"}
    for split, size in (("test", 120), ("valid", 36)):
        m = metrics[split]
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        assert tn + fp + fn + tp == size
        assert m["accuracy"] == pytest.approx((tn + tp) / size)
        assert m["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
        assert m["recall"] == pytest.approx(tp / (tp + fn))
        assert m["examples_per_second"] > 0 and m["loss"] > 0
    assert "Trainable params" in stdout and "Non-trainable params" in stdout
    assert (export_dir / "1" / "saved_model.pb").is_file()


def test_predict_from_export_and_from_stdin(trained_run, tmp_path):
    run_dir, export_dir, _ = trained_run
    result = cli("predict", "--model", export_dir, "This film is great", "Awful.", cache=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    probability, label, text = lines[0].split("\t")
    assert 0.0 <= float(probability) <= 1.0 and label == ("positive" if float(probability) > 0.5 else "negative")
    assert text == "This film is great"

    piped = run_script("predict", "--model", run_dir, "--json", stdin="This film is great\nAwful.\n\n")  # the script, in its own process
    assert piped.returncode == 0, piped.stderr[-2000:]
    rows = [json.loads(line) for line in piped.stdout.strip().splitlines()]
    assert [r["text"] for r in rows] == ["This film is great", "Awful.", ""]
    # Run dir and SavedModel give the same probability for the same text.
    assert rows[0]["probability"] == pytest.approx(float(probability), abs=1e-4)


def test_evaluate_run_dir_and_saved_model_agree(trained_run, tmp_path):
    run_dir, export_dir, _ = trained_run
    data_dir = run_dir.parent / "data"
    from_run = cli("evaluate", run_dir, "--data-dir", data_dir, cache=tmp_path)
    assert from_run.returncode == 0, from_run.stderr[-2000:]
    written = json.loads((run_dir / "metrics_imdb_test.json").read_text())
    training_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert_same_confusion(written["test"]["confusion_matrix"], training_metrics["test"]["confusion_matrix"])

    out = tmp_path / "m.json"
    from_export = cli("evaluate", export_dir, "--data-dir", data_dir, "--output", out, "--confusion-matrix", tmp_path / "cm.png",
                      cache=tmp_path)
    assert from_export.returncode == 0, from_export.stderr[-2000:]
    assert_same_confusion(json.loads(out.read_text())["test"]["confusion_matrix"], written["test"]["confusion_matrix"])
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def assert_same_confusion(matrix, expected):
    """Equal counts, but for at most one text whose logit sits on 0 within float noise.

    Another process may batch and compute in a different order, so a logit of about 1e-7
    may change sign; more than one such text would be a real disagreement.
    """
    moved = sum(abs(a - b) for row, expected_row in zip(matrix, expected) for a, b in zip(row, expected_row))
    assert sum(map(sum, matrix)) == sum(map(sum, expected)) and moved <= 2, (matrix, expected)


def test_export_command_versions_and_keep(trained_run, tmp_path):
    run_dir, _, _ = trained_run
    base = tmp_path / "serving"
    for expected in ("1", "2", "3"):
        result = cli("export", run_dir, "--export-dir", base, "--keep", 2, cache=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"SavedModel: {base / expected}" in result.stdout
    assert sorted(p.name for p in base.iterdir()) == ["2", "3"]
    from_run = cli("predict", "--model", run_dir, "--json", "a great film", cache=tmp_path)
    from_export = cli("predict", "--model", base, "--json", "a great film", cache=tmp_path)
    p_run, p_export = (json.loads(r.stdout.strip().splitlines()[-1])["probability"] for r in (from_run, from_export))
    assert p_run == pytest.approx(p_export, abs=1e-5)
    taken = cli("export", run_dir, "--export-dir", base, "--version", 3, cache=tmp_path)
    assert taken.returncode == 2 and "already exists" in taken.stderr and "Traceback" not in taken.stderr


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("train", ["--dataset", "sst2", "--data-dir", "{tmp}", "--data-source", "local"], "SST-2 not found"),
        ("train", ["--epochs", "0"], "must be >= 1"),
        ("train", ["--arch", "bert_gru", "--pooling", "max"], "always uses its final GRU state"),
        ("train", ["--embeddings", "{tmp}/missing.txt", "--data-dir", "{tmp}"], "no such file"),
        ("predict", ["--model", "{tmp}/nothing", "hello"], "neither a run directory"),
    ],
)
def test_user_mistakes_get_a_message_not_a_traceback(script, args, message, tmp_path):
    result = run_script(script, *[a.format(tmp=tmp_path) for a in args], cwd=tmp_path)  # a default run dir lands there
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_train_with_glove_embeddings_sized_to_the_real_vocabulary(tmp_path):
    from conftest import FILLER, POSITIVE, write_sst2

    write_sst2(tmp_path / "data", num_train=120, num_dev=20)
    glove = tmp_path / "glove.txt"
    glove.write_text("".join(f"{w} " + " ".join(["0.5"] * 8) + "\n" for w in POSITIVE + FILLER[:5] + ["zebra"]))
    result = cli("train", "--arch", "lstm", "--recipe", "seed", "--dataset", "sst2", "--data-dir", tmp_path / "data",
                 "--epochs", 1, "--embeddings", glove, "--embedding-dim", 8, "--hidden-dim", 4, "--run-dir", tmp_path / "run",
                 "--export-dir", tmp_path / "export", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # 11 of the file's words are in the generated vocabulary ("zebra" is not); --vocab-size 25,000
    # is far more than the ~40 words the data has, and the embedding is sized to the latter.
    vocabulary = (tmp_path / "run" / "vocabulary.txt").read_text().split()
    assert f"Embeddings: 11 of {len(vocabulary)} vocabulary words found" in result.stdout
    # The summary shows each class's figures and the confusion matrix of metrics.json, in the classes' order.
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    summary = result.stdout[result.stdout.index("Test accuracy"):].splitlines()
    for name, counts in zip(("negative", "positive"), test["confusion_matrix"]):
        class_row, confusion_row = [line.split()[1:] for line in summary if line.startswith(f"  {name} ")]
        assert class_row == [f"{test['per_class'][name][key]:.4f}" for key in ("precision", "recall", "f1")] + [
            f"{test['per_class'][name]['support']:,}"]
        assert confusion_row == [f"{count:,}" for count in counts]


def test_max_pooled_run_reloads_in_a_fresh_process_and_matches_its_export(tmp_path):
    from conftest import write_sst2

    write_sst2(tmp_path / "data", num_train=120, num_dev=20)
    result = cli("train", "--arch", "bilstm", "--dataset", "sst2", "--data-dir", tmp_path / "data", "--epochs", 1,
                 "--teacher", "none", "--pooling", "max", "--embedding-dim", 8, "--hidden-dim", 4, "--run-dir", tmp_path / "run",
                 "--export-dir", tmp_path / "export", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["pooling"] == "max"
    probabilities = []
    for model in (tmp_path / "run", tmp_path / "export"):
        predicted = run_script("predict", "--model", model, "--json", "a great film", "")  # a fresh process reloads it
        assert predicted.returncode == 0, predicted.stderr[-3000:]
        probabilities.append([json.loads(line)["probability"] for line in predicted.stdout.strip().splitlines()])
    assert probabilities[0] == pytest.approx(probabilities[1], abs=1e-5)
    assert all(0.0 < p < 1.0 for p in probabilities[0])  # the empty text pools to zeros, not -inf
