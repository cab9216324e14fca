"""A training file too big to hold: one checking pass, hashed splits, bounded samples, rows streamed from disk
(`keras_sentiment.run.streamed`), and a run trained from such a file end to end."""

import json
from collections import Counter

import numpy as np
import pytest

from conftest import train_in_process
from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.run import streamed
from keras_sentiment.run.sources import OwnDataSource, load_own_data
from keras_sentiment.run.streamed import in_chunks, scan_labelled_file, streamed_rows
from test_own_data import TINY, make_rows, write_csv, write_jsonl


def test_each_row_lands_in_one_split_by_its_line_and_every_class_keeps_about_its_share(tmp_path):
    rows = make_rows(6000)
    path = write_csv(tmp_path / "big.csv", rows)
    scanned = scan_labelled_file(path, seed=7)
    assert scanned.class_names == ("negative", "neutral", "positive")
    parts = {split: list(streamed_rows(scanned, split)) for split in ("train", "valid", "test")}
    assert sorted(text for part in parts.values() for text, _ in part) == sorted(text for text, _ in rows)
    for split, part in parts.items():
        assert len(part) == scanned.size(split)
        assert Counter(scanned.class_names[label] for _, label in part) == Counter(scanned.counts[split])
    for split in ("valid", "test"):  # 10% of each class (2,000 rows each), within 4 standard deviations
        assert all(abs(count - 200) < 4 * np.sqrt(2000 * 0.1 * 0.9) for count in scanned.counts[split].values())
    again = scan_labelled_file(path, seed=7)
    assert again.counts == scanned.counts  # seeded: the same split every time
    assert scan_labelled_file(path, seed=8).counts != scanned.counts
    quarter = scan_labelled_file(path, seed=7, valid_fraction=0.25)  # test's range stays, valid's follows it
    assert quarter.counts["test"] == scanned.counts["test"]
    assert abs(quarter.size("valid") - 1500) < 4 * np.sqrt(6000 * 0.25 * 0.75)


def test_the_samples_are_bounded_and_drawn_from_the_whole_file(tmp_path, monkeypatch):
    monkeypatch.setattr(streamed, "SAMPLE_TEXTS", 300)
    labels = ["negative"] * 2000 + ["positive"] * 2000  # sorted by class, as IMDB's folders are
    path = write_csv(tmp_path / "sorted.csv", [(f"review number {i} says {label}", label) for i, label in enumerate(labels)])
    scanned = scan_labelled_file(path, seed=1)
    texts, sample_labels = scanned.samples["train"]
    assert len(texts) == 300 and len(scanned.samples["valid"][0]) == 60
    assert 0.35 < np.mean(sample_labels) < 0.65  # a first-rows sample would be all negative
    assert all(text in {f"review number {i} says {label}" for i, label in enumerate(labels)} for text in texts)


def test_texts_shared_between_the_cut_splits_and_train_are_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(streamed, "STREAM_ABOVE_BYTES", 0)
    rows = make_rows(1500) + [("The same REVIEW, again!", "positive")] * 40
    splits = load_own_data(OwnDataSource(("file", write_csv(tmp_path / "r.csv", rows))), seed=3)
    assert splits.streamed and set(splits.samples) == {"train", "valid"}
    shared = splits.facts["texts_also_in_train"]
    # 40 copies: those in valid or test are shared with the ones in train (about 32 stay in train)
    scanned = scan_labelled_file(tmp_path / "r.csv", seed=3)
    assert shared["test"] + shared["valid"] >= sum(1 for split in ("valid", "test")
                                                   for text, _ in streamed_rows(scanned, split) if "REVIEW" in text)
    assert splits.facts["split_origins"]["valid"].startswith("a hashed 10% of")
    assert splits.sizes == {split: scanned.size(split) for split in ("train", "valid", "test")}


@pytest.mark.parametrize("content, message", [
    ("text,label\ngood film,pos\nbad film,\n", r"r\.csv:3: empty or missing label"),
    ("text,label\n" + "".join(f"text {i},{i}\n" for i in range(150)), "holds 101 distinct values"),
    ("text,label\n" + "good,pos\n" * 30 + "bad,neg\n" * 3, "'neg' has 3"),
    ("text,label\ngood,pos\n ,neg\n", r"r\.csv:3: empty text"),
])
def test_a_bad_streamed_file_is_one_line_naming_file_and_line(tmp_path, content, message):
    (tmp_path / "r.csv").write_text(content, encoding="utf-8")
    with pytest.raises(KerasSentimentError, match=message):
        scan_labelled_file(tmp_path / "r.csv")


def test_rows_cross_in_chunks_with_the_rest_in_a_last_smaller_one():
    rows = [(f"text {i}", i % 3) for i in range(5)]
    assert list(in_chunks(rows, 2)) == [(["text 0", "text 1"], [0, 1]), (["text 2", "text 3"], [2, 0]), (["text 4"], [1])]
    assert list(in_chunks([], 2)) == []


def test_the_environment_can_set_the_bound_in_mib_and_a_bad_value_is_one_line(monkeypatch):
    monkeypatch.setenv("KERAS_SENTIMENT_STREAM_ABOVE_MB", "64")
    assert streamed.stream_above_bytes() == 64 * 2**20
    for bad in ("lots", "-1", "inf", "nan"):
        monkeypatch.setenv("KERAS_SENTIMENT_STREAM_ABOVE_MB", bad)
        with pytest.raises(KerasSentimentError, match=rf"KERAS_SENTIMENT_STREAM_ABOVE_MB='{bad}': give a size in MiB"):
            streamed.stream_above_bytes()
    monkeypatch.delenv("KERAS_SENTIMENT_STREAM_ABOVE_MB")
    assert streamed.stream_above_bytes() == streamed.STREAM_ABOVE_BYTES


def test_only_a_training_file_above_the_bound_streams(tmp_path, monkeypatch):
    path = write_csv(tmp_path / "r.csv", make_rows(300))
    assert not load_own_data(OwnDataSource(("file", path))).streamed
    monkeypatch.setattr(streamed, "STREAM_ABOVE_BYTES", path.stat().st_size - 1)
    test = write_jsonl(tmp_path / "test.jsonl", make_rows(60, seed=4))
    splits = load_own_data(OwnDataSource(("file", path), test=("file", test)))
    assert splits.streamed and splits.sizes["test"] == 60 and "test" not in splits.samples
    assert splits.facts["split_origins"]["test"] == str(test)


def test_a_run_trains_from_a_streamed_file_caches_its_ids_on_disk_and_removes_them(tmp_path, monkeypatch):
    monkeypatch.setattr(streamed, "STREAM_ABOVE_BYTES", 0)
    monkeypatch.setattr(streamed, "SAMPLE_TEXTS", 400)  # the vocabulary and n-grams see a sample, not all 900
    train = write_csv(tmp_path / "reviews.csv", make_rows(900))
    run, log = train_in_process("--train-file", train, *TINY, "--ngrams", 2, "--refit", "--run-dir", tmp_path / "run",
                                "--export-dir", tmp_path / "export", cache=tmp_path / "cache")
    assert "once to check, count and sample it; training streams it from disk" in log
    assert run.metrics["test"]["accuracy"] > 0.9  # chance is 1/3
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["split_origins"]["test"].endswith("streamed") and len(config["ngram_stack"][2]) == 3
    assert config["refit_examples"] == sum(sum(config["class_counts"][split].values()) for split in ("train", "valid"))
    assert not (run.run_dir / "data_cache").exists()
