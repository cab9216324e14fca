import csv
import json
import shutil
import threading
import tracemalloc

import numpy as np
import pytest

import keras_sentiment as ks

from keras_sentiment.apps import scoring
from keras_sentiment.core.errors import KerasSentimentError, MalformedDataError
from keras_sentiment.core.scorer import score_texts
from keras_sentiment.run.readers import InputReader, Row, ScoreOptions
from keras_sentiment.apps.scoring import score_file

ODD_TEXTS = ["A wonderful, brilliant film!", "", "   ", "Awful.\tBoring plot", "😀 ממש טוב \x07", "bad " * 3000]


@pytest.fixture(scope="module")
def reference(served_base):
    model = ks.load(served_base)
    return lambda texts: np.array([p["scores"]["positive"] for p in model.predict(list(texts))])


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_same_scores(rows, expected_rows):
    """Same ids in the same order, probabilities within float tolerance, labels agreeing.

    Runs that batch the texts differently (other windows, a resumed run) may differ in the last
    float digits on some CPUs (kernels pick other code paths per batch shape), never more.
    """
    assert [r["id"] for r in rows] == [r["id"] for r in expected_rows]
    probabilities = np.array([r["probability"] for r in rows])
    np.testing.assert_allclose(probabilities, [r["probability"] for r in expected_rows], atol=1e-5)
    undecided = np.abs(probabilities - 0.5) < 1e-5  # a label may flip only on the decision boundary
    labels, expected_labels = (np.array([r["label"] for r in x]) for x in (rows, expected_rows))
    assert np.array_equal(labels[~undecided], expected_labels[~undecided])


def score(served_base, input_path, output_path, input_format, **kwargs):
    options = {k: kwargs.pop(k) for k in ("text_column", "id_column", "text_field", "id_field") if k in kwargs}
    output_format = "csv" if str(output_path).endswith(".csv") else "jsonl"
    return score_file(served_base, input_path, output_path, ScoreOptions(input_format, output_format, **options),
                      progress=False, **kwargs)


def test_csv_with_bom_crlf_quotes_and_empty_text(served_base, reference, tmp_path):
    source = tmp_path / "in.csv"
    with open(source, "w", newline="", encoding="utf-8-sig") as handle:  # -sig writes a BOM
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["review", "id"])
        for i, text in enumerate(ODD_TEXTS + ['two\r\nlines, "quoted"']):
            writer.writerow([text, f"r{i}"])
    report = score(served_base, source, tmp_path / "out.jsonl", "csv", text_column="review", id_column="id",
                   batch_size=2)
    rows = read_jsonl(tmp_path / "out.jsonl")
    texts = ODD_TEXTS + ['two\r\nlines, "quoted"']
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(len(texts))]
    np.testing.assert_allclose([r["probability"] for r in rows], reference(texts), atol=1e-5)
    assert [r["label"] for r in rows] == [int(r["probability"] > 0.5) for r in rows]
    assert rows[0]["label"] == 1 and rows[3]["label"] == 0  # the model learned the task
    assert report.rows == len(texts) and report.skipped == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.jsonl"]  # no partial, state or skip file


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "txt"])
def test_every_input_format_gives_the_same_scores(served_base, reference, tmp_path, fmt):
    texts = [t for t in ODD_TEXTS if "\t" not in t]
    source = tmp_path / f"in.{fmt}"
    if fmt == "tsv":
        source.write_text("sentence\tlabel\n" + "".join(f"{t}\t1\n" for t in texts), encoding="utf-8")
        kwargs, ids = {"text_column": "sentence"}, list(range(2, len(texts) + 2))
    elif fmt == "jsonl":
        lines = [json.dumps({"key": 100 + i, "review": t}) for i, t in enumerate(texts)]
        source.write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n", encoding="utf-8")  # a blank line
        kwargs, ids = {"text_field": "review", "id_field": "key"}, [100 + i for i in range(len(texts))]
    else:
        source.write_bytes("\r\n".join(texts).encode("utf-8") + b"\r\n")
        kwargs, ids = {}, list(range(1, len(texts) + 1))
    score(served_base, source, tmp_path / "out.jsonl", fmt, **kwargs)
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == ids
    np.testing.assert_allclose([r["probability"] for r in rows], reference(texts), atol=1e-5)


def test_csv_output_and_latest_version(served_base, reference, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("great\nawful\n", encoding="utf-8")
    score(served_base, source, tmp_path / "out.csv", "txt")
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "probability", "label"]
    assert [r["id"] for r in rows] == ["1", "2"]
    np.testing.assert_allclose([float(r["probability"]) for r in rows], reference(["great", "awful"]), atol=1e-5)


def test_an_unterminated_quote_fails_with_file_and_line(served_base, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text('text\ngood\n"never closed, bad\nmore\n', encoding="utf-8")
    with pytest.raises(MalformedDataError, match=r"in\.csv:3: malformed CSV \(unexpected end of data\)"):
        score(served_base, source, tmp_path / "out.jsonl", "csv")
    assert not (tmp_path / "out.jsonl").exists()


def test_skip_reports_every_bad_row_and_keeps_every_good_one(served_base, reference, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [b'{"text": "good"}', b'{"text": "bad", ', b'{"txt": "x"}', b'{"text": null}', b'["a list"]',
             b'{"text": "\xff\xfe not utf-8"}', b'{"text": "\\ud800"}', b'{"text": "great"}']
    source.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(MalformedDataError, match=r"in\.jsonl:2: not valid JSON"):
        score(served_base, source, tmp_path / "failed.jsonl", "jsonl")
    report = score(served_base, source, tmp_path / "out.jsonl", "jsonl", on_error="skip")
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == [1, 8]
    np.testing.assert_allclose([r["probability"] for r in rows], reference(["good", "great"]), atol=1e-5)
    skipped = read_jsonl(tmp_path / "out.jsonl.skipped.jsonl")
    assert [s["line"] for s in skipped] == [2, 3, 4, 5, 6, 7] and report.skipped == 6
    reasons = " ".join(s["reason"] for s in skipped)
    for expected in ("not valid JSON", "no 'text' field", "must be a string", "expected a JSON object",
                     "not valid UTF-8", "surrogate"):
        assert expected in reasons


def test_score_texts_keeps_input_order_with_batches_in_flight_side_by_side():
    texts = [f"{'x' * (n % 13)}" for n in range(50)]
    second_batch_started = threading.Event()

    def scorer(batch):
        lengths = np.array([len(t) for t in batch.numpy()], "float32")
        if lengths.max() < 2:  # the first batch (the shortest texts, 0 and 1 character) waits until the second one is running beside it
            assert second_batch_started.wait(timeout=60), "the second batch never ran beside the first"
        else:
            second_batch_started.set()
        return lengths

    expected = [len(t) for t in texts]
    np.testing.assert_array_equal(score_texts(scorer, texts, batch_size=8, in_flight=2), expected)
    second_batch_started.set()  # in_flight=1 runs one batch at a time
    np.testing.assert_array_equal(score_texts(scorer, texts, batch_size=8, in_flight=1), expected)


def test_score_texts_stops_at_a_failing_batch_without_scoring_the_rest():
    started = []

    def scorer(batch):
        started.append(len(batch))
        if len(started) == 2:
            raise ValueError("batch two")
        return np.zeros(len(batch), "float32")

    with pytest.raises(ValueError, match="batch two"):
        score_texts(scorer, ["text"] * 100, batch_size=4, in_flight=2)
    assert len(started) <= 4  # of 25 batches: at most those running or queued when it failed


def test_a_bad_row_after_written_windows_fails_keeping_exactly_the_rows_before_it(served_base, reference, tmp_path):
    """Windows are scored ahead of the one being written: the failure still comes after every earlier row is
    written, and before any row after it, as the hint says (and --resume --on-error skip goes on from there)."""
    source = tmp_path / "in.jsonl"
    texts = [f"review {i} {'good' if i % 3 else 'awful'}" for i in range(40)]
    lines = [json.dumps({"text": t}) for t in texts]
    lines[26] = '{"text": "cut'  # line 27: in the fourth window of 8
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    with pytest.raises(MalformedDataError, match=r"in\.jsonl:27: not valid JSON .*the 24 rows before it are kept"):
        score(served_base, source, output, "jsonl", batch_size=4, window_batches=2)
    kept = read_jsonl(tmp_path / "out.jsonl.partial")
    assert [r["id"] for r in kept] == list(range(1, 25))
    report = score(served_base, source, output, "jsonl", batch_size=4, window_batches=2, resume=True, on_error="skip")
    rows = read_jsonl(output)
    assert report.rows == 39 and [r["id"] for r in rows] == [i for i in range(1, 41) if i != 27]
    np.testing.assert_allclose([r["probability"] for r in rows], reference([t for i, t in enumerate(texts) if i != 26]),
                               atol=1e-5)


def test_csv_rows_with_wrong_field_counts_are_bad_rows(served_base, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("id,text\n1,good\n2,too,many\n3\n4,great\n", encoding="utf-8")
    report = score(served_base, source, tmp_path / "out.jsonl", "csv", id_column="id", on_error="skip")
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["1", "4"]
    assert [s["line"] for s in read_jsonl(report.skipped_file)] == [3, 4]


def test_resume_after_an_interruption_writes_every_row_once(served_base, tmp_path, monkeypatch):
    source = tmp_path / "in.txt"
    texts = [f"review {i} {'good' if i % 3 else 'awful'}" for i in range(50)]
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    score(served_base, source, tmp_path / "full.jsonl", "txt", batch_size=4)

    real_score_texts, calls = scoring.score_texts, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_score_texts(*args)

    monkeypatch.setattr(scoring, "score_texts", interrupted)
    output = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        score(served_base, source, output, "txt", batch_size=4, window_batches=2)
    assert not output.exists()
    assert len(read_jsonl(tmp_path / "out.jsonl.partial")) == 16  # two windows of 8 rows were kept
    with pytest.raises(KerasSentimentError, match="--resume"):
        score(served_base, source, output, "txt", batch_size=4, window_batches=2)

    monkeypatch.setattr(scoring, "score_texts", real_score_texts)
    report = score(served_base, source, output, "txt", batch_size=4, window_batches=2, resume=True)
    assert report.resumed_rows == 16 and report.rows == 50 and report.new_rows == 34
    assert_same_scores(read_jsonl(output), read_jsonl(tmp_path / "full.jsonl"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.jsonl", "in.txt", "out.jsonl"]


def test_resume_refuses_a_changed_input(served_base, tmp_path, monkeypatch):
    source = tmp_path / "in.txt"
    source.write_text("good\n" * 20, encoding="utf-8")
    monkeypatch.setattr(scoring, "score_texts", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        score(served_base, source, tmp_path / "out.jsonl", "txt")
    source.write_text("good\n" * 21, encoding="utf-8")
    with pytest.raises(KerasSentimentError, match="cannot resume .*input_size"):
        score(served_base, source, tmp_path / "out.jsonl", "txt", resume=True)


def test_an_existing_output_is_kept_unless_overwrite(served_base, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("good\n", encoding="utf-8")
    (tmp_path / "out.jsonl").write_text("precious\n")
    with pytest.raises(KerasSentimentError, match="--overwrite"):
        score(served_base, source, tmp_path / "out.jsonl", "txt")
    assert (tmp_path / "out.jsonl").read_text() == "precious\n"
    score(served_base, source, tmp_path / "out.jsonl", "txt", overwrite=True)
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 1


def test_a_resumed_run_keeps_the_version_it_started_with(served_base, tmp_path, monkeypatch):
    base = tmp_path / "base"
    shutil.copytree(served_base, base)
    source = tmp_path / "in.txt"
    source.write_text("good\n" * 20, encoding="utf-8")
    monkeypatch.setattr(scoring, "score_texts", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        score(base, source, tmp_path / "out.jsonl", "txt")
    state = json.loads((tmp_path / "out.jsonl.partial.state.json").read_text())
    assert state["model"] == str(base / "1")


def test_the_reader_streams_with_bounded_memory(tmp_path):
    source = tmp_path / "big.txt"
    line = ("a long review that goes on " * 8 + "\n").encode()
    with open(source, "wb") as handle:
        for _ in range(100):
            handle.write(line * 1000)  # ~22 MB in all
    reader = InputReader(source, ScoreOptions("txt", "jsonl"))
    tracemalloc.start()
    count = sum(isinstance(item, Row) for item in reader)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reader.close()
    assert count == 100_000
    assert peak < 2_000_000, peak  # a few lines in memory, not the 22 MB file


def test_score_cli_formats_and_skip_report(served_base, tmp_path):
    from conftest import cli

    source = tmp_path / "in.csv"
    source.write_text('text\ngood\n"great"x\nawful\n', encoding="utf-8")
    result = cli("score", "--model", served_base, "--input", source, "--output", tmp_path / "out.csv",
                 cache=tmp_path / "cache")
    assert result.returncode == 2 and "in.csv:3: malformed CSV" in result.stderr and "Traceback" not in result.stderr
    result = cli("score", "--model", served_base, "--input", source, "--output", tmp_path / "out.csv",
                 "--on-error", "skip", "--resume", cache=tmp_path / "cache")  # a failed run continues with the bad row skipped
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Scored 2 rows" in result.stderr and "Skipped 1 bad rows" in result.stderr and "in.csv:3" in result.stderr
    assert "rows/s" in result.stderr
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "id,probability,label"
    result = cli("score", "--model", served_base, "--input", tmp_path / "in.xlsx", "--output", tmp_path / "o.jsonl",
                 cache=tmp_path / "cache")
    assert result.returncode == 2 and "cannot tell the input format" in result.stderr


def test_a_window_of_long_rows_is_bounded_by_bytes_as_well_as_rows(served_base, tmp_path, monkeypatch):
    from keras_sentiment.run.readers import BadRow
    from keras_sentiment.apps.scoring import windows

    megabyte_rows = [Row(i, "x" * 2**20, i + 1) for i in range(10)]
    sizes = [len(w) for w in windows(iter(megabyte_rows), max_rows=2048, max_bytes=3 * 2**20)]
    assert sizes == [3, 3, 3, 1]  # 3 MB per window, not all 10 MB
    assert [len(w) for w in windows(iter([Row(0, "y" * 5 * 2**20, 1), *megabyte_rows[:2]]), 2048, 2**20)] == [1, 1, 1]
    small = [Row(i, "good", i + 1) if i % 5 else BadRow(i + 1, "bad") for i in range(20)]
    assert [len(w) for w in windows(iter(small), max_rows=8, max_bytes=2**20)] == [8, 8, 4]

    # End to end: a file of ~1 MB reviews scores with at most two of them in memory per window.
    source = tmp_path / "long.txt"
    source.write_text("".join(("good film " if i % 2 else "awful film ") * 100_000 + "\n" for i in range(6)))
    largest = []
    real_score_texts = scoring.score_texts

    def spy(scorer, texts, batch_size):
        largest.append(sum(len(t) for t in texts))
        return real_score_texts(scorer, texts, batch_size)

    monkeypatch.setattr(scoring, "score_texts", spy)
    report = score(served_base, source, tmp_path / "out.jsonl", "txt", batch_size=256, window_bytes=2 * 2**20)
    assert report.rows == 6 and len(largest) == 3 and max(largest) <= 2 * 1_100_000
    labels = [row["label"] for row in read_jsonl(tmp_path / "out.jsonl")]
    assert labels == [0, 1, 0, 1, 0, 1]
