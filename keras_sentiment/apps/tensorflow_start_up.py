"""TensorFlow's start in a command: quieter, and without Keras' optional extras.

`prepare_tensorflow_start_up()` makes the first `import tensorflow` or `import keras` (which imports TensorFlow),
wherever a command does it:

- hold back TensorFlow's start-up notes. TensorFlow 2.21 writes a few lines to stderr while it loads,
  before it reads TF_CPP_MIN_LOG_LEVEL (absl's "All log messages before absl::InitializeLog() ...",
  oneDNN's and CUDA probing's notes), twice over (two libraries) on every command; the import runs
  with stderr held in a file, and afterwards every held line but those notes is written back.
- leave out what Keras imports only for features no command uses: scikit-learn (its `keras.wrappers`)
  and matplotlib (its image-gallery plot), which Keras imports as it loads when they are installed
  (~0.7-1.0 s of a 3 s import on 2 cores, docs/PERFORMANCE.md "Starting a command"). They import
  normally afterwards: the plots of `train` and `evaluate` load matplotlib when they draw.

Nothing changes until TensorFlow is imported, so a command that fails on a bad flag still fails at once.

Example:
>>> prepare_tensorflow_start_up()  # doctest: +SKIP
>>> import tensorflow  # stderr shows what it wrote but the notes; sklearn and matplotlib not loaded  # doctest: +SKIP
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
UNUSED_EXTRAS = ("sklearn", "matplotlib")  # imported by Keras as it loads, for features no command uses
STARTS_TENSORFLOW = ("tensorflow", "keras")  # Keras imports TensorFlow, and the extras, while it loads


def prepare_tensorflow_start_up():
    """Load TensorFlow, when it or Keras is first imported, without `UNUSED_EXTRAS` and with
    `stderr_without_start_up_notes`.

    Not where either is loaded already. Notes are held only while TF_CPP_MIN_LOG_LEVEL is 3 (below it the
    user asked for TensorFlow's logs), and not on a CPU without AVX (or where that cannot be told):
    TensorFlow's x86 builds abort there while loading, and their reason must reach the user.
    """
    if any(name in sys.modules for name in STARTS_TENSORFLOW):
        return
    hold_notes = os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3" and cpu_has_avx()
    sys.meta_path.insert(0, _LoadTensorFlow(hold_notes))


class _LoadTensorFlow:
    """A meta-path finder for the first of `STARTS_TENSORFLOW` imported, once: the spec the other finders give,
    its module run without the unused extras and, if `hold_notes`, with stderr held."""

    def __init__(self, hold_notes):
        self.hold_notes = hold_notes

    def find_spec(self, name, path=None, target=None):
        if name not in STARTS_TENSORFLOW:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, exec_module = spec.loader, spec.loader.exec_module

        def exec_module_lean_and_quiet(module):
            del loader.exec_module  # the loader is this spec's own: back to its class's method
            with without_modules(UNUSED_EXTRAS), stderr_without_start_up_notes() if self.hold_notes \
                    else contextlib.nullcontext():
                exec_module(module)

        loader.exec_module = exec_module_lean_and_quiet
        return spec


@contextlib.contextmanager
def without_modules(names):
    """Importing a module of the packages `names` raises ImportError in the block (Keras takes that as "not
    installed"); after it they import as usual."""
    refuse = _RefuseImports(set(names))
    sys.meta_path.insert(0, refuse)
    try:
        yield
    finally:
        sys.meta_path.remove(refuse)


class _RefuseImports:
    def __init__(self, packages):
        self.packages = packages

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.packages:
            raise ImportError(f"{name} is left out while TensorFlow starts (keras_sentiment.apps.tensorflow_start_up)")
        return None


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
