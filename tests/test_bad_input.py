"""Bad input never costs work or shows a traceback: each mistake is one line naming the file
(and line), exit code 2, and what was written before stays (a full disk mid-training can be resumed)."""

import errno
import os
import subprocess
import sys
import tarfile

import keras
import keras_sentiment.core.recurrent  # noqa: F401  (registers the custom layers best.keras holds)
import pytest

from conftest import ROOT, write_aclimdb, write_sst2
from keras_sentiment.apps.cli import main
from keras_sentiment.apps.tensorflow_start_up import START_UP_NOTES

TINY = ["--hidden-dim", "4", "--embedding-dim", "4", "--batch-size", "16", "--epochs", "1", "--backup-every", "0"]


def run(capsys, *args):
    """The CLI in this process (an uncaught exception fails the test); returns (exit code, stderr lines)."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip().splitlines()


def assert_one_line_error(code, lines, *fragments):
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_and_empty_data_dirs(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for data_dir in (tmp_path / "missing", empty):
        code, lines = run(capsys, "train", "--data-dir", data_dir, "--data-source", "local", "--run-dir", tmp_path / "run")
        assert_one_line_error(code, lines, "IMDB reviews not found", str(data_dir / "aclImdb_v1.tar.gz"), "--data-dir")
    code, lines = run(capsys, "train", "--dataset", "sst2", "--data-dir", empty, "--data-source", "local",
                      "--run-dir", tmp_path / "run2")
    assert_one_line_error(code, lines, "SST-2 not found", str(empty / "SST-2"))


def test_a_truncated_archive(tmp_path, capsys):
    write_aclimdb(tmp_path / "tree")
    archive = tmp_path / "data" / "aclImdb_v1.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree" / "aclImdb", arcname="aclImdb")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    code, lines = run(capsys, "train", "--data-dir", archive.parent, "--run-dir", tmp_path / "run", *TINY)
    assert_one_line_error(code, lines, f"{archive}: not a readable .tar.gz archive")


@pytest.mark.parametrize("content, where, reason", [
    ("", "train.tsv:1", "empty file"),
    ("sentence\tlabel\n", "train.tsv:1", "no rows after the header"),
    ("sentence\tlabel\ngood film\t1\nawful\t0\nfine\t2\n", "train.tsv:4", "label must be 0 or 1, got '2'"),
    ("sentence\tlabel\ngood film\t1\nno label here\n", "train.tsv:3", "expected 2 tab-separated fields"),
])
def test_bad_sst2_files(tmp_path, capsys, content, where, reason):
    folder = write_sst2(tmp_path / "data")
    (folder / "train.tsv").write_text(content)
    code, lines = run(capsys, "train", "--dataset", "sst2", "--data-dir", tmp_path / "data", "--run-dir", tmp_path / "run", *TINY)
    assert_one_line_error(code, lines, str(folder / where), reason)


def test_a_review_that_is_not_utf8_is_named_in_a_folder_and_in_an_archive(tmp_path, capsys):
    root = write_aclimdb(tmp_path / "data")
    bad = root / "train" / "neg" / "3_2.txt"
    bad.write_bytes(b"A fine first line.\nThen caf\xe9 in Latin-1.")
    code, lines = run(capsys, "train", "--data-dir", tmp_path / "data", "--run-dir", tmp_path / "run", *TINY)
    assert_one_line_error(code, lines, f"{bad}:2: not valid UTF-8")
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "aclImdb_v1.tar.gz", "w:gz") as tar:
        tar.add(root, arcname="aclImdb")
    code, lines = run(capsys, "train", "--data-dir", archive_dir, "--run-dir", tmp_path / "run2", *TINY)
    assert_one_line_error(code, lines, "aclImdb_v1.tar.gz:aclImdb/train/neg/3_2.txt:2: not valid UTF-8")


def test_a_run_dir_that_cannot_be_written(tmp_path, capsys):
    write_sst2(tmp_path / "data")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, lines = run(capsys, "train", "--dataset", "sst2", "--data-dir", tmp_path / "data", "--run-dir", blocker / "run", *TINY)
    assert_one_line_error(code, lines, f"{blocker / 'run'}: cannot write the run directory here")


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    write_sst2(tmp_path / "data", num_train=400)
    run_dir = tmp_path / "run"
    real_save, saves = keras.Model.save, []

    def save_until_the_disk_fills(model, path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 2:  # the second best checkpoint (epoch 2) finds the disk full
            with open(path, "wb") as handle:
                handle.write(b"PK partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(model, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save_until_the_disk_fills)
    args = ["--dataset", "sst2", "--data-dir", tmp_path / "data", "--run-dir", run_dir, "--export-dir", tmp_path / "export",
            "--hidden-dim", 4, "--embedding-dim", 4, "--batch-size", 16, "--epochs", 3, "--learning-rate", 0.01,
            "--backup-every", 5, "--teacher", "none"]
    code, lines = run(capsys, "train", *args)
    assert_one_line_error(code, lines, f"{run_dir / 'best.keras'}: cannot write (No space left on device)",
                          f"keras-sentiment train --resume {run_dir}")
    epoch_one = keras.models.load_model(run_dir / "best.keras", compile=False)  # the previous checkpoint, whole
    assert epoch_one.count_params() > 0
    assert not list(run_dir.glob(".*partial*"))  # the half-written file was removed
    monkeypatch.setattr(keras.Model, "save", real_save)  # space freed
    code = main(["train", "--resume", str(run_dir)])
    assert code == 0
    assert (run_dir / "metrics.json").is_file() and (tmp_path / "export" / "1").is_dir()


def run_script_for_its_stderr(*args, python_flags=(), **env):
    """A script of `scripts/` in a fresh process, TF_CPP_MIN_LOG_LEVEL only as `env` sets it."""
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, *python_flags, str(ROOT / "scripts" / args[0]), *map(str, args[1:])],
                          capture_output=True, text=True, env={**base, "PYTHONPATH": str(ROOT), **env}, timeout=300)


def test_a_command_shows_the_user_its_error_without_tensorflows_start_up_notes(tmp_path):
    """TensorFlow writes notes to stderr as it loads (oneDNN, CUDA probing), whatever TF_CPP_MIN_LOG_LEVEL
    says; the CLI holds them back unless the user asks for TensorFlow's logs."""
    predict = ("predict.py", "--model", tmp_path / "none", "a film")
    asked_for_logs = run_script_for_its_stderr(*predict, TF_CPP_MIN_LOG_LEVEL="0")
    assert asked_for_logs.returncode == 2, asked_for_logs.stderr
    assert any(note in asked_for_logs.stderr for note in START_UP_NOTES)  # this TensorFlow does write them
    quiet = run_script_for_its_stderr(*predict)
    assert quiet.returncode == 2 and not any(note in quiet.stderr for note in START_UP_NOTES), quiet.stderr
    assert f"error: {tmp_path / 'none'}: neither a run directory" in quiet.stderr


START_LEAN = """
import sys
from keras_sentiment.apps.tensorflow_start_up import UNUSED_EXTRAS, prepare_tensorflow_start_up
prepare_tensorflow_start_up()
__import__(sys.argv[1])  # a command's first import of either
left_out = not any(name.partition(".")[0] in UNUSED_EXTRAS for name in sys.modules)
import matplotlib.pyplot  # as the plots of train and evaluate do, later
print(left_out, "matplotlib.pyplot" in sys.modules)
"""


@pytest.mark.parametrize("first", ["tensorflow", "keras"])
def test_tensorflow_starts_without_kerass_unused_extras_which_import_afterwards(first):
    """matplotlib (installed with the package) is one: Keras would import it while it loads."""
    result = subprocess.run([sys.executable, "-c", START_LEAN, first], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True"], result.stdout


def test_a_bad_flag_fails_before_tensorflow_is_loaded():
    """Settings are checked first, so a mistake costs no TensorFlow start (`-X importtime` lists every import)."""
    result = run_script_for_its_stderr("train.py", "--epochs", 0, python_flags=("-X", "importtime"))
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and lines[-1].startswith("error: --epochs"), result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}
    assert "keras_sentiment.run.settings" in imported  # the listing is there
    assert not imported & {"tensorflow", "keras"}
