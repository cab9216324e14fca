"""What the throughput benchmarks share: the reference configuration and the review samples."""

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import date

# The reference configuration of issue #5, used by ours and by both peers.
REFERENCE = {"arch": "bilstm", "embedding_dim": 100, "hidden_dim": 128, "num_layers": 2, "vocab_size": 25_000,
             "max_length": 400, "batch_size": 64, "learning_rate": 1e-3, "optimizer": "Adam",
             "pooling": "last"}  # the final state, as both peers classify
# The recurrent model `make train` ships (its recipe in keras_sentiment/run/settings.py, BEST): one BiGRU
# layer, masked max pooling over the states, 800 tokens; the peers build the same (#36).
SHIPPED = {**REFERENCE, "arch": "bigru", "num_layers": 1, "max_length": 800, "pooling": "max"}
MODELS = {"reference": REFERENCE, "shipped": SHIPPED}


def imdb_split(data_dir, split):
    """`(texts, labels)` lists of one IMDB split from local files, in the loader's fixed order."""
    from keras_sentiment.run.sources import load_imdb

    dataset = getattr(load_imdb(data_dir, source="local"), split)
    texts, labels = [], []
    for text, label in dataset.as_numpy_iterator():
        texts.append(text.decode("utf-8"))
        labels.append(int(label))
    return texts, labels


def cpu_name():
    """The CPU model from /proc/cpuinfo, else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown CPU"


def machine():
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu_name()}), {date.today()}"


class WorkerProcess:
    """One design in its own process: `script --worker NAME --work-file F`, driven over stdin.

    The worker prints `READY` once set up, then `RESULT {"seconds": ...}` per command line.
    Separate processes keep one library's thread pools from competing with another's.
    """

    @staticmethod
    def add_flags(parser, designs):
        """The hidden `--worker NAME --work-file F` flags a script needs to run as a worker."""
        parser.add_argument("--worker", choices=designs, help=argparse.SUPPRESS)
        parser.add_argument("--work-file", help=argparse.SUPPRESS)

    def __init__(self, script, name, work_file, extra=()):
        command = [sys.executable, str(script), "--worker", name, "--work-file", str(work_file), *extra]
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        self._expect("READY")

    def _expect(self, prefix):
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        sys.exit(f"worker {self.name} exited with {self.process.wait()}")

    def run(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self._expect("RESULT "))

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)
