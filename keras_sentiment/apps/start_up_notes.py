"""TensorFlow's start-up notes, held back from the commands' stderr.

TensorFlow 2.21 writes a few lines to stderr while it loads, before it reads TF_CPP_MIN_LOG_LEVEL
(absl's "All log messages before absl::InitializeLog() ...", oneDNN's and CUDA probing's notes),
twice over (two libraries) on every command. `hold_back_tensorflow_start_up_notes()` makes the
first `import tensorflow`, wherever a command does it, run with stderr held in a file; afterwards
every held line but those notes is written back. Nothing changes until TensorFlow is imported, so
a command that fails on a bad flag still fails at once.

Example:
>>> hold_back_tensorflow_start_up_notes()  # doctest: +SKIP
>>> import tensorflow  # stderr shows what it wrote but the notes  # doctest: +SKIP
"""

import contextlib
import importlib.util
import os
import sys
import tempfile

START_UP_NOTES = ("All log messages before absl::InitializeLog() is called are written to STDERR",
                  "oneDNN custom operations are on", "Could not find cuda drivers on your machine",
                  "This TensorFlow binary is optimized to use available CPU instructions",
                  "To enable the following instructions:")  # that note's second line


def hold_back_tensorflow_start_up_notes():
    """Load TensorFlow, when it is first imported, with `stderr_without_start_up_notes`.

    Only while TF_CPP_MIN_LOG_LEVEL is 3 (below it the user asked for TensorFlow's logs); not where
    TensorFlow is loaded already; not on a CPU without AVX (or where that cannot be told):
    TensorFlow's x86 builds abort there while loading, and their reason must reach the user.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3" or "tensorflow" in sys.modules or not cpu_has_avx():
        return
    sys.meta_path.insert(0, _LoadTensorFlowHoldingNotes())


class _LoadTensorFlowHoldingNotes:
    """A meta-path finder for `tensorflow` alone, once: the spec the other finders give, its module run
    with stderr held."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, exec_module = spec.loader, spec.loader.exec_module

        def exec_module_holding_notes(module):
            del loader.exec_module  # the loader is this spec's own: back to its class's method
            with stderr_without_start_up_notes():
                exec_module(module)

        loader.exec_module = exec_module_holding_notes
        return spec


@contextlib.contextmanager
def stderr_without_start_up_notes():
    """File descriptor 2 goes to a file for the block; then every line but `START_UP_NOTES`' is written back."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode("utf-8", errors="replace").splitlines(keepends=True):
                if not any(note in line for note in START_UP_NOTES):
                    sys.stderr.write(line)
            sys.stderr.flush()


def cpu_has_avx():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            return " avx" in cpuinfo.read()
    except OSError:  # not Linux: cannot tell
        return False
