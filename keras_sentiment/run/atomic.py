"""Files written whole or not at all: each is written beside its place, then renamed into it.

A kill at any moment leaves the previous file or the new one, never a mix; a full disk or a
permission error is one line that says what to do, and leaves the file as it was.
"""

import contextlib
import errno
import json
import os
from pathlib import Path

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.run.rundir import RunDir


def replace_atomically(path, write):
    """Create `path` by `write(partial)` on a file beside it, then one rename: never half written.

    The partial file keeps the suffix (Keras wants `.keras` and `.weights.h5`); a full disk or a
    permission error is one line (`disk_errors_explained`) and leaves `path` as it was.
    """
    path = Path(path)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        with disk_errors_explained(path):
            write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def save_model_atomically(model, path):
    replace_atomically(path, model.save)


def write_json_atomically(path, content):
    write_text_atomically(path, json.dumps(content, indent=2))


def write_text_atomically(path, text):
    replace_atomically(path, lambda partial: partial.write_text(text))


@contextlib.contextmanager
def disk_errors_explained(path):
    """Turn a full disk or a permission error while writing `path` into a one-line `KerasSentimentError`."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            raise
        run_dir = Path(path).parent
        run_dir = run_dir.parent if run_dir.name == RunDir.BACKUP else run_dir
        raise KerasSentimentError(
            f"{path}: cannot write ({os.strerror(error.errno)}); the files written before are kept: "
            f"fix it and continue with `keras-sentiment train --resume {run_dir}`") from None
