"""`--strategy`: MirroredStrategy on 2 logical CPUs against one device, and a real 2-worker cluster
(MultiWorkerMirroredStrategy, TF_CONFIG, loopback ports) whose chief alone writes the run."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import keras_sentiment as ks
from conftest import write_sst2
from test_own_data import TINY, make_rows, write_csv

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--dataset", "sst2", "--embedding-dim", 8, "--hidden-dim", 8, "--batch-size", 32, "--learning-rate", 0.01,
         "--dropout", 0.1, "--epochs", 3, "--backup-every", 0, "--teacher", "none"]


def environment(cache, **extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_SENTIMENT_CACHE=str(cache), KERAS_SENTIMENT_DATA=str(cache),
                **extra)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def plain(log):
    return re.sub(r"\x1b\[[0-9;]*m", "", log).replace("\r", "\n")


def steps_per_epoch_shown(log):
    """The totals of the progress bar's final updates, one per epoch."""
    return [int(total) for done, total in re.findall(r"^\s*(\d+)/(\d+) .* val_loss: ", plain(log), flags=re.MULTILINE)
            if done == total]


def command(tmp, name):
    """`train`'s flags for run `name` on the generated data in `tmp`."""
    return [*map(str, SMALL), "--data-dir", str(tmp / "data"), "--run-dir", str(tmp / name), "--export-dir",
            str(tmp / f"{name}_export")]


def train(tmp, name, *flags, env=None):
    return subprocess.run([sys.executable, "-m", "keras_sentiment.apps.cli", "train", *command(tmp, name), *map(str, flags)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env=env or environment(tmp / "cache"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distribute")
    write_sst2(tmp / "data", num_train=900, num_dev=80)
    return tmp


def test_mirrored_on_two_logical_cpus_trains_like_one_device(data, capsys, monkeypatch):
    from keras_sentiment.apps.cli import main

    # Mirrored needs a process of its own (logical devices are set before TensorFlow starts);
    # the one-device run goes on in this one meanwhile.
    process = subprocess.Popen([sys.executable, "-m", "keras_sentiment.apps.cli", "train", *command(data, "mirrored"),
                                "--strategy", "mirrored", "--logical-cpus", "2"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT, env=environment(data / "cache"))
    for name, value in environment(data / "cache").items():
        monkeypatch.setenv(name, value)
    code = main(["train", *command(data, "one"), "--strategy", "one_device"])
    one = SimpleNamespace(returncode=code, stdout=capsys.readouterr().out, stderr="")
    stdout, stderr = process.communicate(timeout=600)
    mirrored = SimpleNamespace(returncode=process.returncode, stdout=stdout, stderr=stderr)
    for result in (one, mirrored):
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Strategy: one_device with 1 replica(s) in sync" in one.stdout
    assert "Strategy: mirrored with 2 replica(s) in sync" in mirrored.stdout
    # Every bucketed batch, the last partial ones included, is a step: the same count as on one device.
    assert steps_per_epoch_shown(mirrored.stdout) == steps_per_epoch_shown(one.stdout) != []
    assert "triggered tf.function retracing" not in mirrored.stdout + mirrored.stderr
    accuracy = [json.loads((data / n / "metrics.json").read_text())["test"]["accuracy"] for n in ("one", "mirrored")]
    assert min(accuracy) >= 0.9 and abs(accuracy[0] - accuracy[1]) <= 0.05, accuracy


def run_cluster(tmp, flags, **extra_env):
    """`train *flags --strategy multi_worker` as a 2-worker cluster on loopback ports; the workers' stdouts."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = environment(tmp / "cache", TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                          **extra_env)
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "keras_sentiment.apps.cli", "train", *map(str, flags), "--strategy", "multi_worker"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=600))
    finally:
        for worker in workers:
            worker.kill()
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return [stdout for stdout, _ in outputs]


def test_multi_worker_cluster_on_loopback_trains_and_only_the_chief_writes(data):
    chief, other = run_cluster(data, command(data, "cluster"))
    assert "Strategy: multi_worker with 2 replica(s) in sync, task worker 0" in chief
    assert "task worker 1 (not the chief" in other
    # The chief wrote the run and the one export; worker 1 wrote into a temporary dir, now gone.
    run_dir = data / "cluster"
    assert {"config.json", "best.keras", "history.csv", "metrics.json"} <= {p.name for p in run_dir.iterdir()}
    assert [p.name for p in (data / "cluster_export").iterdir()] == ["1"]
    scratch = re.search(r"SavedModel:\s+(\S+)", other).group(1)
    assert not scratch.startswith(str(data)) and not Path(scratch).exists()
    # Replicas stayed in sync: both workers measured the same model on the test split.
    test_lines = [re.search(r"Test accuracy .*", out).group(0) for out in (chief, other)]
    assert test_lines[0] == test_lines[1]
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"] >= 0.85
    assert [int(r.split(",")[0]) for r in (run_dir / "history.csv").read_text().splitlines()[1:]] == [0, 1, 2]
    # The export holds the chief's best weights: it scores like the run dir's best.keras.
    texts = ["a good film", "awful and boring", "the plot was superb", "dreadful"]
    from_run = ks.load(run_dir).logits(texts)
    from_export = ks.load(data / "cluster_export").logits(texts)
    assert from_run == pytest.approx(from_export, abs=1e-5)


def test_multi_worker_cluster_shards_a_streamed_training_file(tmp_path):
    # Every file streams ($KERAS_SENTIMENT_STREAM_ABOVE_MB=0): each worker reads the file and keeps its
    # share of the batches (auto-shard by data), as for IMDB.
    train_file = write_csv(tmp_path / "reviews.csv", make_rows(900))
    flags = ["--train-file", train_file, *TINY, "--backup-every", 0, "--run-dir", tmp_path / "run",
             "--export-dir", tmp_path / "export"]
    chief, other = run_cluster(tmp_path, flags, KERAS_SENTIMENT_STREAM_ABOVE_MB="0")
    for log in (chief, other):
        assert "training streams it from disk" in log
    assert "Strategy: multi_worker with 2 replica(s) in sync, task worker 0" in chief
    test_lines = [re.search(r"Test accuracy .*", log).group(0) for log in (chief, other)]
    assert test_lines[0] == test_lines[1]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["accuracy"] > 0.9  # chance is 1/3
    assert ks.load(tmp_path / "export").predict(["a text"])[0]["scores"].keys() == {"negative", "neutral", "positive"}


def test_a_bad_cluster_spec_is_one_line(data):
    result = train(data, "bad", "--strategy", "multi_worker", env=environment(data / "cache", TF_CONFIG="{not json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: TF_CONFIG is not a cluster spec")
