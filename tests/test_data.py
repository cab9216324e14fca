import os
import random
import subprocess
import sys
import tarfile
import threading

import numpy as np
import pytest
import tensorflow as tf

from keras_sentiment.run import sources as data
from keras_sentiment.run.sources import load_imdb, load_sst2, resolve_data_dir
from keras_sentiment.run.batching import make_batches
from keras_sentiment.core.errors import DataNotFoundError, MalformedDataError
from keras_sentiment.core.vectorizer import build_vectorizer, encode_texts


def as_pairs(dataset):
    return [(t.decode(), int(y)) for t, y in dataset.as_numpy_iterator()]


def test_imdb_directory_split_sizes_labels_and_disjointness(imdb_dir):
    splits = load_imdb(imdb_dir, seed=7)
    assert splits.sizes == {"train": 56, "valid": 24, "test": 80}
    train, valid, test = (as_pairs(ds) for ds in splits)
    assert (len(train), len(valid), len(test)) == (56, 24, 80)
    # Every training review lands in exactly one of train/valid.
    expected = sorted(
        (p.read_text(), 1 if p.parent.name == "pos" else 0) for p in (imdb_dir / "aclImdb" / "train").glob("*/*.txt")
    )
    assert sorted(train + valid) == expected
    assert not set(train) & set(valid)
    # Labels follow the folder: generated positive reviews hold a positive cue word.
    assert all(any(w in text.lower() for w in ("good", "great", "excellent", "superb", "wonderful", "brilliant")) == bool(label) for text, label in test)


def test_imdb_valid_fraction_holds_out_that_share_of_train(imdb_dir):
    splits = load_imdb(imdb_dir, seed=7, valid_fraction=0.1)
    assert splits.sizes == {"train": 72, "valid": 8, "test": 80}
    assert sorted(as_pairs(splits.train) + as_pairs(splits.valid)) == sorted(
        as_pairs(load_imdb(imdb_dir, seed=7).train) + as_pairs(load_imdb(imdb_dir, seed=7).valid))


def test_imdb_split_is_seeded(imdb_dir):
    first = as_pairs(load_imdb(imdb_dir, seed=1).valid)
    assert first == as_pairs(load_imdb(imdb_dir, seed=1).valid)
    assert sorted(first) != sorted(as_pairs(load_imdb(imdb_dir, seed=2).valid))


def test_the_split_is_the_same_whatever_global_seed_ran_before(imdb_dir, sst2_dir):
    # `train` sets TensorFlow's global seed to --seed before loading; `evaluate --split valid` set
    # none, and TensorFlow mixes the global seed into the shuffle's: it drew another valid split.
    drawn = []
    for global_seed in (None, 5, 1):
        if global_seed is not None:
            tf.random.set_seed(global_seed)
        drawn.append((as_pairs(load_imdb(imdb_dir, seed=1).valid), as_pairs(load_sst2(sst2_dir, seed=1).valid)))
    assert drawn[0] == drawn[1] == drawn[2]


def test_imdb_archive_matches_directory_and_extracts_once(imdb_dir, imdb_archive_dir, tmp_path, monkeypatch):
    from_dir = load_imdb(imdb_dir, seed=3)
    from_tar = load_imdb(imdb_archive_dir, seed=3)
    assert from_tar.sizes == from_dir.sizes
    for a, b in zip(from_dir, from_tar):
        assert as_pairs(a) == as_pairs(b)
    # A second load reuses the extraction instead of opening the archive again, also when the
    # archive was copied or re-mounted (new mtime, same bytes).
    archive = imdb_archive_dir / "aclImdb_v1.tar.gz"
    os.utime(archive, (archive.stat().st_atime, archive.stat().st_mtime + 3600))
    monkeypatch.setattr(data.tarfile, "open", lambda *a, **k: pytest.fail("archive extracted twice"))
    assert load_imdb(imdb_archive_dir, seed=3).sizes == from_dir.sizes


def test_imdb_archive_with_other_reviews_is_extracted_again(imdb_dir, imdb_archive_dir):
    assert load_imdb(imdb_archive_dir, seed=3).sizes["test"] == load_imdb(imdb_dir, seed=3).sizes["test"]
    # Replace the archive by one with an extra test review and the same mtime: its content decides.
    archive = imdb_archive_dir / "aclImdb_v1.tar.gz"
    mtime = archive.stat().st_mtime
    (imdb_dir / "aclImdb" / "test" / "pos" / "extra_10.txt").write_text("An extra, wonderful film.")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(imdb_dir / "aclImdb", arcname="aclImdb")
    os.utime(archive, (mtime, mtime))
    assert load_imdb(imdb_archive_dir, seed=3).sizes["test"] == load_imdb(imdb_dir, seed=3).sizes["test"] == 81


EXTRACT_UNDER_LOCK = """
import sys
from pathlib import Path
from keras_sentiment.run import sources as data
from keras_sentiment.run.locks import exclusive_lock
cache, archive = map(Path, sys.argv[1:3])
with exclusive_lock(cache / ".aclImdb.lock", waiting="holder waited"):
    print("ready", flush=True)
    sys.stdin.readline()
    data._extract_reviews_into(archive, cache / "aclImdb", "sha256:" + data.file_sha256(archive))
"""


def test_imdb_archive_being_extracted_by_another_run_is_waited_for_not_extracted_again(imdb_dir, imdb_archive_dir,
                                                                                         tmp_path, monkeypatch, capsys):
    # Two runs started together once extracted at the same time and one crashed in the final rename.
    archive = imdb_archive_dir / "aclImdb_v1.tar.gz"
    holder = subprocess.Popen([sys.executable, "-c", EXTRACT_UNDER_LOCK, os.environ["KERAS_SENTIMENT_CACHE"], str(archive)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    monkeypatch.setattr(data.tarfile, "open", lambda *a, **k: pytest.fail("extracted while another run was extracting"))
    loaded = {}
    thread = threading.Thread(target=lambda: loaded.update(splits=load_imdb(imdb_archive_dir, seed=3)))
    thread.start()
    said = ""
    while "Another run is extracting" not in said and thread.is_alive():
        thread.join(0.05)
        said += capsys.readouterr().out
    assert thread.is_alive() and not loaded  # waiting for the holder
    holder.communicate("go\n", timeout=120)
    thread.join(120)
    assert holder.returncode == 0
    assert loaded["splits"].sizes == load_imdb(imdb_dir, seed=3).sizes


def test_imdb_corrupt_archive_is_a_clear_error(tmp_path):
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(Exception) as info:
        load_imdb(tmp_path, source="local")
    assert "aclImdb_v1.tar.gz" in str(info.value) and "not a readable" in str(info.value)


def test_imdb_missing_names_paths_searched(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr("keras.utils.get_file", offline)
    with pytest.raises(DataNotFoundError) as info:
        load_imdb(tmp_path)  # auto: local, prepared TFDS, download
    message = str(info.value)
    assert str(tmp_path / "aclImdb") in message and str(tmp_path / "aclImdb_v1.tar.gz") in message
    assert "TFDS imdb_reviews" in message and "download" in message and "--data-dir" in message


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SENTIMENT_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("KERAS_SENTIMENT_DATA")
    assert str(resolve_data_dir()).endswith(".keras/datasets")


def test_sst2_tsv_splits(sst2_dir):
    splits = load_sst2(sst2_dir, seed=5)
    train, valid, test = (as_pairs(ds) for ds in splits)
    assert splits.sizes == {"train": len(train), "valid": len(valid), "test": 60}
    assert len(train) + len(valid) == 200 and 10 <= len(valid) <= 30
    bigger = load_sst2(sst2_dir, seed=5, valid_fraction=0.3).sizes["valid"]  # 30% of the sentences, not 10%
    assert 2 * len(valid) < bigger < 200
    lines = (sst2_dir / "SST-2" / "dev.tsv").read_text().splitlines()[1:]
    assert test == [(line.split("\t")[0], int(line.split("\t")[1])) for line in lines]


def write_phrase_trees(folder, num_sentences=40):
    """GLUE-style train.tsv: sentences (own words each) and some of their token spans, shuffled.

    Returns `(sentences, texts)`: the whole sentences and every text in the file.
    """
    rng = random.Random(3)
    rows, sentences = [], []
    for k in range(num_sentences):
        sentence = [f"s{k}w{i}" for i in range(rng.randint(6, 12))]
        label = rng.randint(0, 1)
        sentences.append(" ".join(sentence))
        rows.append((" ".join(sentence), label))
        for _ in range(5):
            start = rng.randrange(len(sentence) - 1)
            rows.append((" ".join(sentence[start : rng.randint(start + 1, len(sentence) - 1)]) + " ", label))
    rng.shuffle(rows)
    folder.mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return sentences, [text for text, _ in rows]


def spans(text):
    words = text.split()
    return {" ".join(words[a:b]) for a in range(len(words)) for b in range(a + 1, len(words) + 1)}


def test_sst2_valid_holds_out_whole_sentences_and_their_phrases(tmp_path):
    sentences, texts = write_phrase_trees(tmp_path / "SST-2")
    splits = load_sst2(tmp_path, seed=7)
    train, valid = [text for text, _ in as_pairs(splits.train)], [text for text, _ in as_pairs(splits.valid)]
    assert len(valid) == 4 and set(valid) <= set(sentences)  # 10% of the 40 sentences, whole
    held_out = set().union(*(spans(v) for v in valid))
    assert sorted(train) == sorted(t for t in texts if " ".join(t.split()) not in held_out)  # the rest, all of it
    assert valid == [text for text, _ in as_pairs(load_sst2(tmp_path, seed=7).valid)]  # seeded
    assert sorted(valid) != sorted(text for text, _ in as_pairs(load_sst2(tmp_path, seed=8).valid))


def test_a_phrase_in_several_sentences_belongs_to_the_longest():
    phrases = ["a b", "x a b y z", "c a b", "y z", "c"]
    assert data.root_sentence_of_each_phrase(phrases) == [1, 1, 2, 1, 2]


def test_sst2_handles_bom_and_crlf(tmp_path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    content = "\ufeffsentence\tlabel\r\na fine film\t1\r\na dull film\t0\r\n"
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text(content, encoding="utf-8", newline="")
    assert as_pairs(load_sst2(tmp_path).test) == [("a fine film", 1), ("a dull film", 0)]


@pytest.mark.parametrize(
    "bad_line, reason",
    [("no tab here", "expected 2 tab-separated fields"), ("good film\tmaybe", "label must be 0 or 1"), ("a\tb\t1", "got 3")],
)
def test_sst2_malformed_line_reports_file_and_line(sst2_dir, bad_line, reason):
    path = sst2_dir / "SST-2" / "train.tsv"
    lines = path.read_text().splitlines()
    lines[3] = bad_line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MalformedDataError) as info:
        load_sst2(sst2_dir)
    assert f"{path}:4:" in str(info.value) and reason in str(info.value)


def test_sst2_bad_header(sst2_dir):
    path = sst2_dir / "SST-2" / "dev.tsv"
    path.write_text("text\tpolarity\nok\t1\n")
    with pytest.raises(MalformedDataError, match=r"dev.tsv:1: expected the header"):
        load_sst2(sst2_dir)


def test_sst2_missing_is_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="SST-2/train.tsv and SST-2/dev.tsv"):
        load_sst2(tmp_path, source="local")


def test_tfds_sources_under_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
        imdb = load_imdb(source="tfds", seed=0)
        sst2 = load_sst2(source="tfds", seed=0)
        imdb_train, imdb_valid = as_pairs(imdb.train), as_pairs(imdb.valid)
        sst2_test = as_pairs(sst2.test)
    assert imdb.sizes == {"train": 14, "valid": 6, "test": 20}
    assert len(imdb_train) == 14 and len(imdb_valid) == 6
    assert len(sst2_test) == sst2.sizes["test"] == 20
    assert all(label in (0, 1) for _, label in imdb_train + sst2_test)


def test_make_batches_buckets_pads_right_and_keeps_every_example():
    rng = np.random.default_rng(0)
    words = ["w%d" % i for i in range(50)]
    texts = [" ".join(rng.choice(words, size=n)) for n in rng.integers(1, 120, size=300)] + ["", "!!!"]
    labels = list(rng.integers(0, 2, size=len(texts)))
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
    vectorizer = build_vectorizer(vocab_size=40)
    vectorizer.adapt(tf.constant(texts))
    encode = lambda t: encode_texts(vectorizer, t, 100)  # noqa: E731
    batches = list(make_batches(dataset, encode, batch_size=16, max_length=100, shuffle=True, seed=1))

    lengths = []
    for ids, batch_labels in batches:
        ids = ids.numpy()
        row_lengths = (ids > 0).sum(axis=1)
        for row, n in zip(ids, row_lengths):
            assert n >= 1 and not row[n:].any() and row[:n].all()  # right padded, never empty
        lengths.extend(row_lengths)
        assert ids.shape[1] <= 100
    assert len(lengths) == len(texts)
    expected = sorted(min(max(len(t.split()), 1), 100) for t in texts)
    assert sorted(lengths) == expected
    # Bucketing: far less padding than batching the same order without it.
    padded = sum(ids.shape[0] * ids.shape[1] for ids, _ in batches)
    assert padded < 1.3 * sum(lengths)


def test_batches_for_keras_run_without_tf_data_autotuning():
    """With autotuning on, `fit` over these batches returned seconds after its last step (PERFORMANCE.md,
    "Training again and again in one process"): every dataset Keras iterates in training has it off."""
    from keras_sentiment.run.batching import EpochBatches

    texts, labels = ["good film", "bad film", "good", "bad plot here"], [1, 0, 1, 0]
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
    vectorizer = build_vectorizer(vocab_size=20)
    vectorizer.adapt(tf.constant(texts))
    encode = lambda t: encode_texts(vectorizer, t, 10)  # noqa: E731
    for batches, examples in ((make_batches(dataset, encode, 2, 10), 4), (make_batches(dataset, encode, 2, 10, shuffle=True), 4),
                              (EpochBatches(dataset, encode, 2, 10).stream(0, 3), 12)):
        assert batches.options().autotune.enabled is False
        assert sum(len(labels) for _, labels in batches) == examples  # the data itself is unchanged


def test_imdb_download_path_fetches_archive_into_data_dir(imdb_archive_dir, tmp_path, monkeypatch):
    import shutil

    calls = []

    def fake_get_file(fname, origin, cache_dir, cache_subdir):
        calls.append((fname, origin, cache_dir))
        target = os.path.join(cache_dir, cache_subdir, fname)
        shutil.copy(imdb_archive_dir / "aclImdb_v1.tar.gz", target)
        return target

    monkeypatch.setattr("keras.utils.get_file", fake_get_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    splits = load_imdb(empty)  # auto: nothing local, no TFDS copy, so it downloads
    assert calls == [("aclImdb_v1.tar.gz", data.IMDB_URL, str(empty))]
    assert splits.sizes == {"train": 56, "valid": 24, "test": 80}
    assert len(as_pairs(splits.test)) == 80


def test_subsample_takes_seeded_random_subsets_of_both_labels(imdb_dir):
    splits = data.subsample(load_imdb(imdb_dir, seed=0), max_train=10, max_eval=20, seed=4)
    assert splits.sizes == {"train": 10, "valid": 20, "test": 20}
    test = as_pairs(splits.test)
    assert len(test) == 20 and 0 < sum(label for _, label in test) < 20  # the reviews are sorted by class
    assert test == as_pairs(data.subsample(load_imdb(imdb_dir, seed=0), 10, 20, seed=4).test)
    unchanged = data.subsample(load_imdb(imdb_dir, seed=0))
    assert unchanged.sizes == {"train": 56, "valid": 24, "test": 80}


@pytest.fixture(scope="module")
def cache_of_a_module_fixture():
    return data.default_cache_dir()


def test_module_fixtures_see_a_temporary_cache_not_the_users(cache_of_a_module_fixture, tmp_path_factory):
    # Module fixtures are set up before each test's own isolated_cache; the test suite once left
    # markers of its generated data dirs in ~/.cache/keras_sentiment/checked this way.
    assert cache_of_a_module_fixture.is_relative_to(tmp_path_factory.getbasetemp())


def test_imdb_and_sst2_are_presets_read_as_your_own_folders_and_files_are(imdb_dir, sst2_dir):
    from keras_sentiment.run.sources import OwnDataSource, load_own_data

    root = imdb_dir / "aclImdb"
    before = load_imdb(imdb_dir, seed=3)
    shared, (text, _) = before.facts["texts_also_in_train"]["test"], as_pairs(before.train)[0]
    (root / "test" / "neg" / "999_1.txt").write_text(text.upper() + " !")  # the same text to the model
    imdb = load_imdb(imdb_dir, seed=3)
    own = load_own_data(OwnDataSource(("dir", str(root / "train")), test=("dir", str(root / "test")), class_names="neg,pos"))
    assert as_pairs(imdb.test) == as_pairs(own.test)  # folders sorted, neg/ first, neg = 0
    assert imdb.class_names == ("negative", "positive")
    assert imdb.facts["class_counts"]["test"] == {"negative": 41, "positive": 40}
    assert imdb.facts["texts_also_in_train"]["test"] == shared + 1
    assert imdb.facts["split_origins"]["valid"] == f"a seeded 30% of {root / 'train'} (seed 3)"

    sst2 = load_sst2(sst2_dir, seed=5)
    own = load_own_data(OwnDataSource(("file", str(sst2_dir / "SST-2" / "dev.tsv")), text_column="sentence"))
    assert sorted(as_pairs(sst2.test)) == sorted(as_pairs(own.train) + as_pairs(own.valid) + as_pairs(own.test))
    assert sum(sst2.facts["class_counts"]["train"].values()) == sst2.sizes["train"]
