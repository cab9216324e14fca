"""`train --ensemble N` on generated SST-2: N members on one split, one delivered model averaging
their logits, which evaluate, export and predict read as any model; a member killed mid-training
resumes without retraining the ones before it."""

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import (ROOT, TINY_GRU, cli, cli_environment, load_keras_model, predicted_probability,
                      train_on_generated_sst2)
from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.run.settings import resolve_settings

MEMBERS = 3
SMALL = [*TINY_GRU, "--ensemble", MEMBERS]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_on_generated_sst2(tmp_path_factory.mktemp("ensemble"), *SMALL)


def test_the_delivered_model_is_the_mean_logit_of_members_trained_with_their_own_seeds(run):
    run_dir = run["dir"]
    members = [load_keras_model(run_dir / "members" / str(n) / "best.keras") for n in range(1, MEMBERS + 1)]
    ensemble = load_keras_model(run_dir / "best.keras")
    ids = np.array([[5, 9, 3, 0, 0], [7, 2, 11, 4, 6]])
    each = np.stack([np.asarray(member(ids, training=False)) for member in members])
    np.testing.assert_allclose(ensemble(ids, training=False), each.mean(axis=0), atol=1e-5)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # different seeds, different models
    for n, seed in ((2, 1235), (3, 1236)):
        assert f"Ensemble member {n} of {MEMBERS} (seed {seed})" in run["log"]
        assert (run_dir / "members" / str(n) / "history.csv").is_file()


def test_metrics_report_the_ensemble_and_each_member_on_valid_and_the_ensemble_learned(run):
    metrics = json.loads((run["dir"] / "metrics.json").read_text())
    assert [metrics[f"member_{n}_valid"]["model"] for n in range(1, MEMBERS + 1)] == [
        f"members/{n}/best.keras" for n in range(1, MEMBERS + 1)]
    assert metrics["valid"]["model"] == metrics["test"]["model"] == "best.keras"
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]
    assert "Valid accuracy: ensemble " in run["log"] and "its members alone" in run["log"]


def test_the_export_and_the_run_dir_give_the_ensembles_probability(run):
    text = "good " * 3 + "awful " * 10
    run_dir, export = (predicted_probability(model, text, run["tmp"] / "cache") for model in (run["dir"], run["tmp"] / "export"))
    assert run_dir == pytest.approx(export, abs=1e-5)
    assert run_dir < 0.5


def test_a_member_killed_mid_training_resumes_and_the_members_before_it_are_not_retrained(run, tmp_path):
    data, cache, run_dir = run["tmp"] / "data", tmp_path / "cache", tmp_path / "run"
    args = ["train", *SMALL, "--backup-every", 5, "--data-dir", data, "--run-dir", run_dir, "--export-dir", tmp_path / "export"]
    process = subprocess.Popen([sys.executable, "-m", "keras_sentiment.apps.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=cli_environment(cache), cwd=ROOT)
    second = run_dir / "members" / "2" / "backup" / "state.json"
    deadline = time.monotonic() + 300
    while not second.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for a file another process writes, not for a result
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    resumed = cli("train", "--resume", run_dir, cache=cache)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    log = resumed.stdout
    assert "Training had finished" in log.split("Ensemble member 2")[0]  # member 1 was not trained again
    assert "Ensemble member 3 of 3" in log and (run_dir / "members" / "3" / "best.keras").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9, metrics["test"]


@pytest.mark.parametrize("flags, message", [
    ({"arch": "bert_gru", "ensemble": 2}, "for the recurrent architectures, not bert_gru"),
    ({"arch": "gru", "ensemble": 2, "refit": True}, "with --refit (flag) is not supported"),
    ({"arch": "gru", "ensemble": 0}, "--ensemble must be >= 1"),
])
def test_ensembles_that_cannot_be_trained_are_one_line_errors(flags, message):
    with pytest.raises(KerasSentimentError, match=re.escape(message)):
        resolve_settings(flags)
