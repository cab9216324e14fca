"""The benchmarks run end to end on generated data (their numbers are not checked here: benchmarks
are not tests), and `ngrams_beside_a_run.py` gives the model it claims to. torch is not installed by
`make test`, so the throughput benchmark's PyTorch peer is left out."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY_GRU, load_keras_model, train_on_generated_sst2, write_aclimdb
from test_cli import ROOT


@pytest.mark.parametrize("model", ["reference", "shipped"])
def test_train_throughput_runs_and_prints_the_ratio_line(tmp_path, model):
    write_aclimdb(tmp_path / "data", per_class=80)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--data-dir", str(tmp_path / "data"),
         "--steps", "2", "--repeats", "1", "--designs", "ours", "fixed_padding", "--output", str(tmp_path / "r.json"),
         "--model", model],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"\n{model}: {{'arch': '{'bigru' if model == 'shipped' else 'bilstm'}'" in result.stdout
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio_vs_torch_packed=nan ratio_vs_fixed_padding=")
    assert float(lines[-1].split("ratio_vs_fixed_padding=")[1]) > 0
    assert "| ours | end_to_end |" in result.stdout and "| fixed_padding | model_only |" in result.stdout
    # Both Keras designs report the time fit spent after on_train_end: never negative, never the whole run.
    assert lines[-2].startswith("without fit's teardown: ratio_vs_torch_packed=nan ratio_vs_fixed_padding=")
    for entry in json.loads((tmp_path / "r.json").read_text())["results"].values():
        assert all(0 <= teardown < run for teardown, run in zip(entry["teardowns"], entry["runs"]))
        assert 0 < entry["median_seconds_without_teardown"] <= entry["median_seconds"]


def test_ngrams_beside_a_finished_run_give_the_model_train_with_ngrams_gives(tmp_path):
    """`benchmarks/ngrams_beside_a_run.py` claims that adding the n-grams to a finished run is what
    `train --ngrams 2` delivers: the same seed and flags, trained once with the flag and once without + the script."""
    with_flag = train_on_generated_sst2(tmp_path / "with", *TINY_GRU, "--ngrams", 2)
    without = train_on_generated_sst2(tmp_path / "without", *TINY_GRU)
    out = tmp_path / "added"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ngrams_beside_a_run.py"), str(without["dir"]),
                             str(out), "--ngrams", "2"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| the run + n-grams 1-2 |" in result.stdout
    added, trained = (json.loads((d / "config.json").read_text()) for d in (out, with_flag["dir"]))
    assert added["ngram_stack"] == pytest.approx(trained["ngram_stack"], abs=1e-3)
    assert added["ngram_features"] == trained["ngram_features"] and added["ngram_l2"] == trained["ngram_l2"]
    ids = np.array([[5, 9, 3, 0, 0], [7, 2, 11, 4, 6]])
    np.testing.assert_allclose(load_keras_model(out / "best.keras")(ids),
                               load_keras_model(with_flag["dir"] / "best.keras")(ids), atol=1e-4)
    for name in ("metrics.json", "best.keras"):  # the finished run itself is left as it was
        assert (without["dir"] / name).is_file()
    assert "ngram_stack" not in json.loads((without["dir"] / "config.json").read_text())
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ngrams_beside_a_run.py"), str(out), str(tmp_path / "x")],
                           capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 2 and "already has n-grams" in again.stderr


def test_average_runs_scores_each_run_as_its_metrics_and_each_group_by_its_mean_logit(tmp_path):
    """`benchmarks/average_runs.py`: a run alone reproduces its `metrics.json`; a group's row is the
    accuracy of its mean logit; runs of different seeds are refused (their valid splits differ)."""
    from benchmarks.average_runs import mean_logit_figures

    one = train_on_generated_sst2(tmp_path / "one", *TINY_GRU)
    other = train_on_generated_sst2(tmp_path / "other", *TINY_GRU, "--hidden-dim", 12, "--epochs", 3)
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "average_runs.py"), str(one["dir"]),
                             str(other["dir"])], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("| ")}
    for letter, run in (("A", one), ("B", other)):
        metrics = json.loads((run["dir"] / "metrics.json").read_text())
        assert rows[letter] == (f"| {letter} | {metrics['valid']['accuracy']:.2%} | {metrics['test']['accuracy']:.2%} | "
                                f"{metrics['test']['f1']:.4f} |")
    assert "A + B" in rows

    # Two runs, each sure where it is right and unsure where wrong: their mean is right everywhere.
    labels = {"valid": np.array([1, 1, 0, 0]), "test": np.array([1, 0])}
    logits = {"a": {"valid": np.array([4.0, -1, -4, 1]), "test": np.array([4.0, 1])},
              "b": {"valid": np.array([-1.0, 4, 1, -4]), "test": np.array([-1.0, -4])}}
    figures = dict(mean_logit_figures(labels, logits))
    assert [figures[(run,)]["valid"]["accuracy"] for run in "ab"] == [0.5, 0.5]
    assert figures[("a", "b")]["valid"]["accuracy"] == 1.0 and figures[("a", "b")]["test"]["accuracy"] == 1.0

    reseeded = train_on_generated_sst2(tmp_path / "reseeded", *TINY_GRU, "--seed", 7)
    refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "average_runs.py"), str(one["dir"]),
                              str(reseeded["dir"])], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert refused.returncode == 2 and "trained on another split" in refused.stderr and "seed 1234 vs 7" in refused.stderr


def test_the_plots_minutes_count_the_refit_and_every_run_needed_before(tmp_path):
    """A self-trained student cost its own epochs, its refit's, its teacher's and what that teacher needed."""
    from benchmarks.plot_accuracy_vs_time import training_minutes

    def run_dir(name, epoch_seconds, refit_seconds=(), teacher=None, init_from=None):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"teacher_model": teacher and str(tmp_path / teacher),
                                                        "init_from": init_from and str(tmp_path / init_from)}))
        for file, seconds in (("history.csv", epoch_seconds), ("refit_history.csv", refit_seconds)):
            if seconds:
                (folder / file).write_text("epoch,epoch_seconds\n" + "".join(f"{i},{s}\n" for i, s in enumerate(seconds)))
        return folder

    run_dir("imdb", [600])
    run_dir("first_teacher", [60, 120])
    run_dir("teacher", [300], teacher="first_teacher", init_from="imdb")
    student = run_dir("student", [120, 120], refit_seconds=[60], teacher="teacher")
    assert training_minutes(student) == pytest.approx((600 + 60 + 120 + 300 + 120 + 120 + 60) / 60)
    # An export as the teacher (no history.csv) adds nothing; a run naming itself is counted once.
    assert training_minutes(run_dir("from_an_export", [60], teacher="an_export")) == pytest.approx(1)
    assert training_minutes(run_dir("own_teacher", [60], teacher="own_teacher")) == pytest.approx(1)
