"""Batch scoring on Apache Beam (DirectRunner): the same rows and scores as `score`, sharded."""

import csv
import json
import os

import numpy as np
import pytest

from keras_sentiment.apps import cli
from keras_sentiment.run.readers import ScoreOptions
from keras_sentiment.apps.scoring import score_file

TEXTS = ["a wonderful, moving film", "dull and boring, a waste", 'two\nlines, "quoted" and great', "",
         "just awful acting", "superb and brilliant"]


def write_inputs(folder):
    """The same reviews as CSV (quoted, multi-line), TSV, JSONL and text, plus bad rows in some."""
    folder.mkdir()
    with open(folder / "a.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "review"])
        writer.writerows([f"c{i}", text] for i, text in enumerate(TEXTS))
        handle.write("c-bad,too,many\n")  # line 9: 3 fields
    (folder / "b.tsv").write_text("id\treview\n" + "".join(f"t{i}\t{t}\n" for i, t in enumerate(TEXTS) if "\n" not in t))
    lines = [json.dumps({"id": f"j{i}", "review": t}) for i, t in enumerate(TEXTS)]
    lines[2:2] = ["not json", json.dumps({"id": "j-num", "review": 5})]  # lines 3 and 4
    (folder / "c.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "d.csv").write_text("id,text\n1,no review column\n")  # the header lacks --text-column


def read_shards(pattern_folder, prefix):
    rows = []
    for shard in sorted(pattern_folder.glob(f"{prefix}-*-of-*.jsonl")):
        rows += [json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines()]
    return rows


def local_scores(model, path, fmt, tmp_path):
    out = tmp_path / f"local_{path.name}.jsonl"
    options = ScoreOptions(fmt, "jsonl", text_column="review", id_column="id", text_field="review", id_field="id")
    score_file(model, path, out, options, on_error="skip", progress=False)
    return {row["id"]: row for row in map(json.loads, out.read_text().splitlines())}


def test_beam_scores_every_row_of_many_files_like_score_and_dead_letters_the_bad_ones(served_base, tmp_path, capsys):
    write_inputs(tmp_path / "in")
    code = cli.main(["score", "--runner", "beam", "--model", str(served_base), "--input", str(tmp_path / "in/*.csv"),
                     str(tmp_path / "in/b.tsv"), str(tmp_path / "in/c.jsonl"), "--text-column", "review", "--id-column",
                     "id", "--text-field", "review", "--id-field", "id", "--output", str(tmp_path / "out/scores.jsonl"),
                     "--num-shards", "2", "--batch-size", "2",
                     "--direct_num_workers", "2", "--direct_running_mode", "multi_threading"])  # Beam's own options
    assert code == 0
    assert len(list((tmp_path / "out").glob("scores-*-of-00002.jsonl"))) == 2
    rows = read_shards(tmp_path / "out", "scores")
    by_id = {row["id"]: row for row in rows}
    assert len(by_id) == len(rows) == 6 + 5 + 6  # every good row once: CSV, TSV (no multi-line row), JSONL
    for name, fmt in (("a.csv", "csv"), ("b.tsv", "tsv"), ("c.jsonl", "jsonl")):
        expected = local_scores(served_base, tmp_path / "in" / name, fmt, tmp_path)
        for row_id, row in expected.items():
            assert by_id[row_id]["source"].startswith(str(tmp_path / "in" / name) + ":")
            np.testing.assert_allclose(by_id[row_id]["probability"], row["probability"], atol=1e-5)
            assert by_id[row_id]["label"] == row["label"] or abs(row["probability"] - 0.5) < 1e-5
    assert by_id["c2"]["source"].endswith("a.csv:4")  # the line where the multi-line row starts

    bad = {(row["file"].rsplit("/", 1)[-1], row["line"]): row["reason"] for row in read_shards(tmp_path / "out", "scores.bad-rows")}
    assert set(bad) == {("a.csv", 9), ("c.jsonl", 3), ("c.jsonl", 4), ("d.csv", 1)}
    assert "expected 2 fields" in bad["a.csv", 9] and "not valid JSON" in bad["c.jsonl", 3]
    assert "must be a string" in bad["c.jsonl", 4] and "'review' is not a column" in bad["d.csv", 1]
    err = capsys.readouterr().err
    assert "Scored 17 rows from 4 files" in err and "4 bad rows" in err


def test_a_beam_runner_by_name_keeps_line_number_ids(served_base, tmp_path):
    source = tmp_path / "reviews.txt"
    source.write_text("\n".join(TEXTS[:2] + TEXTS[3:]) + "\n")
    assert cli.main(["score", "--runner", "DirectRunner", "--model", str(served_base / "1"), "--input", str(source),
                     "--output", str(tmp_path / "o")]) == 0
    rows = read_shards(tmp_path, "o")
    assert sorted(row["id"] for row in rows) == [1, 2, 3, 4, 5]
    assert read_shards(tmp_path, "o.bad-rows") == []


@pytest.mark.parametrize("flags, message", [
    (["--input", "{tmp}/nothing*.csv"], "no input file matches"),
    (["--input", "{tmp}/x.parquet"], "cannot tell the input format"),
    (["--input", "{tmp}/x.txt", "--model", "{tmp}/no-model"], "neither a run directory"),
    (["--input", "{tmp}/x.txt", "--resume"], "there is no --resume"),
    (["--input", "{tmp}/x.txt", "--output", "{tmp}/taken.jsonl"], "exists (and 0 more shards); pass --overwrite"),
])
def test_beam_user_mistakes_are_one_line_errors_before_the_pipeline(served_base, tmp_path, capsys, flags, message):
    (tmp_path / "x.parquet").write_text("?")
    (tmp_path / "x.txt").write_text("fine\n")
    (tmp_path / "taken-00000-of-00001.jsonl").write_text("{}\n")
    args = dict(zip(["--model", "--output"], [str(served_base), str(tmp_path / "new.jsonl")]))
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    for name, value in args.items():
        if name not in flags:
            flags += [name, value]
    assert cli.main(["score", "--runner", "beam", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1] and "Traceback" not in "\n".join(err)
    assert not list(tmp_path.glob("new*")) and not list(tmp_path.glob("beam-temp-*"))


def test_options_foreign_to_score_are_refused_without_a_beam_runner(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("fine\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["score", "--input", str(tmp_path / "x.txt"), "--output", str(tmp_path / "o.jsonl"), "--direct_num_workers", "2"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --direct_num_workers 2" in capsys.readouterr().err


IMPORTS_OF_BEAM_SCORING = """
import sys
import keras_sentiment.apps.beam_score
print(sorted(name for name in ("tensorflow_hub", "pkg_resources", "apache_beam.ml.inference.tensorflow_inference")
             if name in sys.modules))
"""


def test_beam_scoring_needs_neither_tensorflow_hub_nor_pkg_resources():
    """Beam's TensorFlow handler imports tensorflow-hub, whose `import pkg_resources` fails under a current
    setuptools (no pkg_resources since 81): our handler must not bring either in."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", IMPORTS_OF_BEAM_SCORING], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
