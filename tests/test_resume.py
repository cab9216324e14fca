"""`train --resume`: real training processes killed with SIGKILL (at a seeded random moment, and in
the middle of writing the best checkpoint) and resumed, against an uninterrupted run of the same settings."""

import contextlib
import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import keras_sentiment.core.recurrent  # noqa: F401  (registers the custom layers best.keras holds)
import numpy as np
import pytest

from conftest import write_run_dir_stub, write_sst2

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3
# Dropout 0: nothing random after the seeded start, so a resumed run can be compared with an
# uninterrupted one number for number (within float tolerance). No word2vec vectors (the recipe's
# `--embeddings auto`): the two runs started together would each train them, and gensim's worker
# threads make the two sets differ, so the runs would start from different embeddings.
SMALL = ["--dataset", "sst2", "--embedding-dim", 8, "--hidden-dim", 8, "--batch-size", 16, "--learning-rate", 0.005,
         "--dropout", 0.0, "--epochs", EPOCHS, "--backup-every", 10, "--embeddings", "none", "--teacher", "none"]

# Runs the CLI with os.replace patched: the N-th time a file named SUFFIX is about to be renamed
# into place, its partial file is cut in half (a torn write) and the process kills itself.
KILL_DURING_WRITE = """
import os, signal, sys
suffix, nth = sys.argv[1], int(sys.argv[2])
real_replace, seen = os.replace, [0]
def replace(src, dst, *args, **kwargs):
    if str(dst).endswith(suffix):
        seen[0] += 1
        if seen[0] == nth:
            with open(src, "r+b") as handle:
                handle.truncate(os.path.getsize(src) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
from keras_sentiment.apps.cli import main
sys.exit(main(sys.argv[3:]))
"""


def environment(cache):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_SENTIMENT_CACHE=str(cache), KERAS_SENTIMENT_DATA=str(cache))


def train_command(data_dir, run_dir):
    return ["train", *SMALL, "--data-dir", data_dir, "--run-dir", run_dir, "--export-dir", Path(run_dir).with_name(Path(run_dir).name + "_export")]


def kill_at_a_random_moment(args, cache, run_dir, seed):
    """Start training, wait for its first backup, then SIGKILL it after a seeded random delay (0-4 s)."""
    process = subprocess.Popen([sys.executable, "-m", "keras_sentiment.apps.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=environment(cache), cwd=ROOT)
    state = Path(run_dir) / "backup" / "state.json"
    deadline = time.monotonic() + 300
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for a file another process writes, not for a result
    time.sleep(random.Random(seed).uniform(0.0, 4.0))
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=60)


def read_history(run_dir):
    with open(Path(run_dir) / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def in_process(*args):
    """The CLI in this process (no TensorFlow start-up to pay); its exit code and output."""
    from keras_sentiment.apps.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, a run killed at a random moment then resumed, and one killed while writing best.keras.

    The two runs that get killed are real processes (started together, to share the start-up
    time); the uninterrupted run and the resumes run in this process.
    """
    tmp = tmp_path_factory.mktemp("resume")
    write_sst2(tmp / "data", num_train=1200, num_dev=80)
    cache = tmp / "cache"
    torn = subprocess.Popen([sys.executable, "-c", KILL_DURING_WRITE, "best.keras", "2",
                             *map(str, train_command(tmp / "data", tmp / "torn"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment(cache), cwd=ROOT)
    killed_rc = kill_at_a_random_moment(train_command(tmp / "data", tmp / "killed"), cache, tmp / "killed", seed=7)
    killed_state = json.loads((tmp / "killed" / "backup" / "state.json").read_text())
    torn_stderr = torn.communicate(timeout=600)[1]
    torn_files = sorted(p.name for p in (tmp / "torn").iterdir())
    best_after_kill = keras.models.load_model(tmp / "torn" / "best.keras", compile=False)  # the first epoch's, whole

    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment(cache).items():
            patch.setenv(name, value)
        whole = in_process(*train_command(tmp / "data", tmp / "whole"))
        assert whole.returncode == 0, whole.stderr[-3000:]
        resumed = in_process("train", "--resume", tmp / "killed")
        torn_resumed = in_process("train", "--resume", tmp / "torn")
    return dict(tmp=tmp, cache=cache, killed_rc=killed_rc, killed_state=killed_state, resumed=resumed,
                torn=SimpleNamespace(returncode=torn.returncode, stderr=torn_stderr), torn_files=torn_files,
                best_after_kill=best_after_kill, torn_resumed=torn_resumed)


def test_the_killed_run_died_mid_training_and_the_resume_succeeded(runs):
    assert runs["killed_rc"] == -signal.SIGKILL
    assert not runs["killed_state"]["finished"]  # it died before training ended
    assert runs["resumed"].returncode == 0, runs["resumed"].stdout[-3000:] + runs["resumed"].stderr[-3000:]
    state = runs["killed_state"]
    assert f"Resuming at epoch {state['epoch'] + 1}, batch {state['batch'] + 1} of" in runs["resumed"].stdout


@pytest.mark.parametrize("name", ["killed", "torn"])
def test_a_resumed_run_has_every_epoch_once_a_loadable_best_model_metrics_and_an_export(runs, name):
    run_dir = runs["tmp"] / name
    assert [int(row["epoch"]) for row in read_history(run_dir)] == list(range(EPOCHS))
    model = keras.models.load_model(run_dir / "best.keras", compile=False)
    assert model.count_params() > 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics  # it learned the task
    exports = [p.name for p in (run_dir.parent / f"{name}_export").iterdir()]
    assert exports == ["1"]  # one export, no half-written version
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    assert state["finished"] and state["exported"]
    assert not list((run_dir / "backup").glob("*.weights.h5"))  # backup weights are removed once training ends
    assert not list(run_dir.glob(".*partial*"))


def test_a_resumed_run_trains_and_decides_like_the_uninterrupted_one(runs):
    whole, resumed = read_history(runs["tmp"] / "whole"), read_history(runs["tmp"] / "killed")
    for column in ("val_loss", "val_accuracy"):
        np.testing.assert_allclose([float(r[column]) for r in resumed], [float(r[column]) for r in whole], rtol=0.02,
                                   atol=1e-3, err_msg=column)
    assert [r["learning_rate"] for r in resumed] == [r["learning_rate"] for r in whole]
    test = [json.loads((runs["tmp"] / n / "metrics.json").read_text())["test"] for n in ("whole", "killed")]
    assert abs(test[0]["accuracy"] - test[1]["accuracy"]) <= 2 / test[0]["num_examples"]


def test_a_kill_while_writing_the_best_checkpoint_keeps_the_previous_one_whole(runs):
    assert runs["torn"].returncode == -signal.SIGKILL, runs["torn"].stderr[-2000:]
    assert "best.keras" in runs["torn_files"]
    assert any(name.startswith(".best.partial-") for name in runs["torn_files"])  # the torn write, beside it
    assert runs["best_after_kill"].count_params() > 0
    assert runs["torn_resumed"].returncode == 0, runs["torn_resumed"].stderr[-3000:]


def test_resuming_a_complete_run_is_refused_in_one_line(runs, capsys):
    from keras_sentiment.apps.cli import main

    assert main(["train", "--resume", str(runs["tmp"] / "killed")]) == 2  # in this process: a traceback would fail here
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {runs['tmp'] / 'killed'}: this run is complete (exported to {runs['tmp'] / 'killed_export' / '1'}); "
        "nothing to resume"]


def test_resume_takes_no_other_flag_and_needs_a_run_dir(tmp_path, capsys):
    from keras_sentiment.apps.cli import main

    assert main(["train", "--resume", str(tmp_path), "--epochs", "3"]) == 2
    assert "drop --epochs" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a run directory to resume (no config.json)" in capsys.readouterr().err


def test_a_run_whose_init_from_source_was_deleted_says_so_when_resumed(tmp_path, capsys):
    from keras_sentiment.apps.cli import main
    from keras_sentiment.run.settings import resolve_settings

    source = write_run_dir_stub(tmp_path / "source", resolve_settings({"arch": "bert_gru"}).values)
    run = resolve_settings({"arch": "bert_gru", "init_from": str(source), "run_dir": str(tmp_path / "run")})
    write_run_dir_stub(tmp_path / "run", run.to_json())
    shutil.rmtree(source)
    assert main(["train", "--resume", str(tmp_path / "run")]) == 2  # in this process: a traceback would fail here
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: {tmp_path / 'run' / 'config.json'}: the run's settings no "
                                                   f"longer hold (--init-from: {source} is not a run directory")


def test_the_backup_restores_the_deciders_state_and_the_optimizer(tmp_path):
    from keras_sentiment.run.backup import BestCheckpoint, TrainingBackup, read_backup_state, restore_training_state

    def setup():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.01), "mse")
        deciders = {"reduce_lr": keras.callbacks.ReduceLROnPlateau(patience=1, factor=0.5),
                    "early_stopping": keras.callbacks.EarlyStopping(patience=5),
                    "checkpoint": BestCheckpoint(tmp_path / "best.keras", "val_loss")}
        return model, deciders

    x, y = np.random.default_rng(0).normal(size=(64, 4)), np.random.default_rng(1).normal(size=(64, 1))
    model, deciders = setup()
    backup = TrainingBackup(tmp_path / "backup", 3, 4, deciders)
    model.fit(x, y, batch_size=16, epochs=4, validation_data=(x[:16], y[:16] * 5), verbose=0,
              callbacks=[*deciders.values(), backup])
    state = read_backup_state(tmp_path)
    assert (state["epoch"], state["batch"]) == (4, 0)
    saved = backup.decider_state()
    assert saved["early_stopping"]["best"] is not None and saved["checkpoint"]["best"] == saved["early_stopping"]["best"]

    fresh, fresh_deciders = setup()
    restore_training_state(fresh, tmp_path, state)
    restorer = TrainingBackup(tmp_path / "backup", 3, 4, fresh_deciders, state)
    for callback in [*fresh_deciders.values(), restorer]:  # as fit() calls them: the deciders reset first
        callback.set_model(fresh)
        callback.on_train_begin()
    assert restorer.decider_state() == saved
    assert int(fresh.optimizer.iterations) == int(model.optimizer.iterations) == 16
    assert float(fresh.optimizer.learning_rate) == float(model.optimizer.learning_rate)
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_interrupted_backup_write_leaves_the_previous_backup(tmp_path, monkeypatch):
    from keras_sentiment.run import atomic
    from keras_sentiment.run import backup as backup_module

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    callback = backup_module.TrainingBackup(tmp_path / "backup", 0, 10, {})
    callback.set_model(model)
    callback.save(1, 0)

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError):
        callback.save(2, 0)
    state = backup_module.read_backup_state(tmp_path)
    assert state["epoch"] == 1 and (tmp_path / "backup" / state["weights"]).is_file()


def test_epoch_batches_resumed_anywhere_are_the_batches_of_an_uninterrupted_run():
    import tensorflow as tf

    from conftest import make_examples
    from keras_sentiment.run.batching import EpochBatches
    from keras_sentiment.core.vectorizer import TextEncoder, build_vectorizer

    examples = make_examples(300, seed=3, min_words=0, max_words=30)
    texts, labels = [t for t, _ in examples], [y for _, y in examples]
    vectorizer = build_vectorizer(vocab_size=50)
    vectorizer.adapt(tf.constant(texts))
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
    batches = EpochBatches(dataset, TextEncoder(vectorizer, 40), 16, 40, seed=5)
    whole = [ids.numpy() for ids, _ in batches.stream(0, 3)]
    assert len(whole) == 3 * batches.per_epoch == int(batches.stream(0, 3).cardinality())
    assert not np.array_equal(whole[0], whole[batches.per_epoch])  # each epoch has its own order
    skip = 5
    # A new object, as in a new process: epoch 2 from its 6th batch on.
    again = EpochBatches(dataset, TextEncoder(vectorizer, 40), 16, 40, seed=5)
    resumed = [ids.numpy() for ids, _ in again.stream(1, 3, skip=skip)]
    assert len(resumed) == 2 * batches.per_epoch - skip
    for a, b in zip(resumed, whole[batches.per_epoch + skip:]):
        np.testing.assert_array_equal(a, b)


def test_an_encoder_cache_run_resumes_after_an_interruption(tmp_path, monkeypatch):
    pytest.importorskip("keras_hub", reason="bert extra not installed")
    from test_bert import save_tiny_preset

    from keras_sentiment.run import backup
    from keras_sentiment.apps.cli import main

    preset = save_tiny_preset(tmp_path / "tiny_bert")
    write_sst2(tmp_path / "data", num_train=300, num_dev=60)
    run_dir = tmp_path / "run"
    real_save = backup.TrainingBackup.save

    def save_then_interrupt_in_epoch_two(self, epoch, batch):
        real_save(self, epoch, batch)
        if (epoch, batch) == (1, 6):  # the second epoch's backup after its 6th batch, then Ctrl-C
            raise KeyboardInterrupt

    monkeypatch.setattr(backup.TrainingBackup, "save", save_then_interrupt_in_epoch_two)
    args = ["--arch", "bert_gru", "--dataset", "sst2", "--data-dir", tmp_path / "data", "--bert-preset", preset,
            "--trainable-layers", 0, "--cache-encoder", "--epochs", 3, "--hidden-dim", 8, "--batch-size", 16, "--learning-rate", 0.005,
            "--backup-every", 3, "--run-dir", run_dir, "--export-dir", tmp_path / "export"]
    assert main(["train", *map(str, args)]) == 130
    assert (run_dir / "best_part.keras").is_file() and len(read_history(run_dir)) == 1
    monkeypatch.setattr(backup.TrainingBackup, "save", real_save)
    assert main(["train", "--resume", str(run_dir)]) == 0
    assert [int(row["epoch"]) for row in read_history(run_dir)] == [0, 1, 2]
    assert len(json.loads((run_dir / "encoder_cache.json").read_text())["epoch_seconds"]) == 3
    assert not (run_dir / "encoder_cache").exists() and not (run_dir / "best_part.keras").exists()
    assert keras.models.load_model(run_dir / "best.keras", compile=False).count_params() > 0
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["num_examples"] == 60
