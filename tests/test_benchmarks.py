"""The throughput benchmark runs end to end on generated data (its numbers are not checked here:
benchmarks are not tests). torch is not installed by `make test`, so the PyTorch peer is left out."""

import subprocess
import sys

from conftest import write_aclimdb
from test_cli import ROOT


def test_train_throughput_runs_and_prints_the_ratio_line(tmp_path):
    write_aclimdb(tmp_path / "data", per_class=80)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--data-dir", str(tmp_path / "data"),
         "--steps", "2", "--repeats", "1", "--designs", "ours", "fixed_padding", "--output", str(tmp_path / "r.json")],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio_vs_torch_packed=nan ratio_vs_fixed_padding=")
    assert float(lines[-1].split("ratio_vs_fixed_padding=")[1]) > 0
    assert "| ours | end_to_end |" in result.stdout and "| fixed_padding | model_only |" in result.stdout
