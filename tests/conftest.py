"""Generated data for the tests: a separable sentiment task in the real datasets' layouts."""

import contextlib
import io
import json
import os
import random
import subprocess
import tarfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

POSITIVE = ["good", "great", "excellent", "superb", "wonderful", "brilliant"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "poor", "dreadful"]
FILLER = [
    "the", "a", "movie", "film", "plot", "actor", "scene", "story", "was", "is", "this", "and",
    "with", "of", "it", "director", "script", "ending", "cast", "music", "camera", "long", "at",
]


def make_review(label, rng, min_words=4, max_words=14):
    """Filler words with one or two sentiment words of the label's class at random places."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(min_words, max_words))]
    cue = POSITIVE if label == 1 else NEGATIVE
    for _ in range(rng.randint(1, 2)):
        words.insert(rng.randint(0, len(words)), rng.choice(cue))
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", "!", "<br /><br />", " ..."])


def make_examples(count, seed=0, **kwargs):
    rng = random.Random(seed)
    labels = [i % 2 for i in range(count)]
    rng.shuffle(labels)
    return [(make_review(label, rng, **kwargs), label) for label in labels]


def write_aclimdb(root, per_class=40, seed=0):
    """A small `aclImdb/` tree in the official layout (`<id>_<rating>.txt`)."""
    rng = random.Random(seed)
    for split in ("train", "test"):
        for polarity, label in (("pos", 1), ("neg", 0)):
            folder = root / "aclImdb" / split / polarity
            folder.mkdir(parents=True)
            for i in range(per_class):
                rating = rng.randint(7, 10) if label else rng.randint(1, 4)
                (folder / f"{i}_{rating}.txt").write_text(make_review(label, rng), encoding="utf-8")
    return root / "aclImdb"


def write_sst2(root, num_train=200, num_dev=60, seed=0):
    folder = root / "SST-2"
    folder.mkdir(parents=True)
    for name, count, offset in (("train.tsv", num_train, 0), ("dev.tsv", num_dev, 1)):
        rows = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in make_examples(count, seed + offset)]
        (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def imdb_dir(tmp_path):
    """A data dir holding a generated `aclImdb/` (40 reviews per class and split)."""
    data_dir = tmp_path / "data"
    write_aclimdb(data_dir)
    return data_dir


@pytest.fixture
def imdb_archive_dir(tmp_path, imdb_dir):
    """A second data dir holding the same reviews as `aclImdb_v1.tar.gz`."""
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "aclImdb_v1.tar.gz", "w:gz") as tar:
        tar.add(imdb_dir / "aclImdb", arcname="aclImdb")
    return archive_dir


@pytest.fixture
def sst2_dir(tmp_path):
    data_dir = tmp_path / "data"
    write_sst2(data_dir)
    return data_dir


def isolate_cache_and_data(folder, monkeypatch):
    """Point the cache, the default data dir and TFDS's at `folder`: nothing reaches the user's."""
    monkeypatch.setenv("KERAS_SENTIMENT_CACHE", str(folder / "cache"))
    monkeypatch.setenv("KERAS_SENTIMENT_DATA", str(folder / "no-data-here"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(folder / "tfds"))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache_for_shared_fixtures(tmp_path_factory):
    """Module and session fixtures are set up before any test's own `isolated_cache`: this keeps what
    they write (e.g. the marker that a data dir's reviews were checked) out of the user's cache too."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_cache_and_data(tmp_path_factory.mktemp("shared"), monkeypatch)
        yield


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Archive extraction and the default data dir stay inside the test's tmp dir."""
    isolate_cache_and_data(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def served_base(tmp_path_factory):
    """An export base `<tmp>/tiny/1/` holding a small BiLSTM trained on the separable task.

    Shared by the scoring, serving and client tests; a test that adds versions copies it first.
    """
    import keras
    import tensorflow as tf

    from keras_sentiment.run.export import export_serving_model
    from keras_sentiment.core.recurrent import ModelConfig, build_model
    from keras_sentiment.core.vectorizer import TextEncoder, build_vectorizer

    keras.utils.set_random_seed(0)
    examples = make_examples(400, seed=5)
    texts = tf.constant([t for t, _ in examples])
    labels = tf.constant([[float(y)] for _, y in examples])
    vectorizer = build_vectorizer(vocab_size=64)
    vectorizer.adapt(texts)
    encoder = TextEncoder(vectorizer, max_length=40)
    model = build_model("bilstm", ModelConfig(vocab_size=64, embedding_dim=8, hidden_dim=8, dropout=0.0))
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(encoder(texts), labels, epochs=4, batch_size=32, verbose=0)
    base = tmp_path_factory.mktemp("served") / "tiny"
    export_serving_model(model, encoder, base)
    return base


# === The command line ===


def command_variables(cache):
    """What a command's environment sets: its cache and default data dir `cache`, TensorFlow's C++ logs off."""
    return {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_SENTIMENT_CACHE": str(cache), "KERAS_SENTIMENT_DATA": str(cache)}


def cli_environment(cache):
    """The environment of a `keras-sentiment` process whose cache and default data dir are `cache`."""
    return dict(os.environ, **command_variables(cache))


def cli(*args, cache):
    """Run `keras-sentiment ARGS` with `cache` as its cache and default data dir; the completed process (text output).

    In this process: the program's `main`, with what it prints captured and its exit status returned, so a test
    pays TensorFlow's start-up and AutoGraph's conversions once a worker, not once a command (~7 s of CPU each).
    A test of what only a new process shows (start-up, a reload, thread pools) starts one with `cli_environment`.
    """
    from keras_sentiment.apps.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with environment(**command_variables(cache)), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit:  # argparse's usage errors
            code = exit.code if isinstance(exit.code, int) else 1
    return subprocess.CompletedProcess(["keras-sentiment", *map(str, args)], code or 0, stdout.getvalue(), stderr.getvalue())


def write_run_dir_stub(folder, config):
    """`folder` as a run dir looks to `inference.is_run_dir`: `config` as its config.json and an empty best.keras."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "best.keras").write_bytes(b"")
    return folder


def train_on_generated_sst2(tmp, *flags):
    """`ks.train` with the settings `train FLAGS` gives, in this process, on a generated SST-2 (600 training
    sentences, 80 dev) under `tmp`: run dir `tmp/run`, exports under `tmp/export`, cache `tmp/cache`; returns
    `{"tmp", "dir", "log", "run"}` (`log`: what training printed). A failure fails the test."""
    write_sst2(tmp / "data", num_train=600, num_dev=80)
    run, log = train_in_process(*flags, "--data-dir", tmp / "data", "--run-dir", tmp / "run", "--export-dir",
                                tmp / "export", cache=tmp / "cache")
    return {"tmp": tmp, "dir": tmp / "run", "log": log, "run": run}


def train_in_process(*flags, cache):
    """`ks.train` with the settings `keras-sentiment train FLAGS` gives, in this process, with `cache` as its
    cache and default data dir; returns `(Run, what training printed)`."""
    import keras_sentiment as ks
    from keras_sentiment.apps.cli import build_parser
    from keras_sentiment.run.settings import explicit_settings

    argv = ["train", *map(str, flags)]
    settings = explicit_settings(build_parser(argv).parse_args(argv))  # the flags as the CLI reads them
    log = io.StringIO()
    with environment(KERAS_SENTIMENT_CACHE=str(cache), KERAS_SENTIMENT_DATA=str(cache)), contextlib.redirect_stdout(log):
        run = ks.train(**settings)
    return run, log.getvalue()


@contextlib.contextmanager
def environment(**values):
    """Environment variables set for a block, as they were after it (module fixtures cannot use monkeypatch)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# Flags of a GRU small enough to train in seconds on the generated SST-2 (recipe seed: no word vectors to train)
TINY_GRU = ["--dataset", "sst2", "--arch", "gru", "--recipe", "seed", "--embedding-dim", 16, "--hidden-dim", 8,
            "--batch-size", 16, "--learning-rate", 0.01, "--dropout", 0.1, "--epochs", 2]


def load_keras_model(path):
    """A run dir's `.keras` file, uncompiled, with the package's custom layers registered."""
    import keras
    import keras_sentiment.core.recurrent  # noqa: F401  (registers the custom layers the file holds)
    return keras.models.load_model(path, compile=False)


def assert_attributions_add_up(explained):
    """Integrated Gradients' completeness: each text's attributions sum to its logit minus the baseline's
    (within the path integral's error: 5% of the largest difference)."""
    import numpy as np

    total = np.asarray(explained["attributions"]).sum(axis=1)
    difference = np.asarray(explained["logits"] - explained["baseline_logits"])
    np.testing.assert_allclose(total, difference, atol=0.05 * np.abs(difference).max() + 1e-3)


def predicted_probability(model, text, cache):
    """`predict --json TEXT` with a run dir or an export: P(positive)."""
    predicted = cli("predict", "--model", model, "--json", text, cache=cache)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    return json.loads(predicted.stdout.strip().splitlines()[-1])["probability"]
