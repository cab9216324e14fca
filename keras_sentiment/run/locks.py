"""One process at a time: an advisory lock file for work that several runs may start at once.

Two runs on one machine share the cache (the extracted IMDB archive, word vectors, an automatic
teacher). `exclusive_lock` makes the second wait while the first writes, so it then finds the
work done instead of writing into the same folder.
"""

import contextlib
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(path, waiting):
    """Hold an exclusive lock on the file `path` (created if missing) for the `with` block, saying
    `waiting` first if another process holds it. The OS drops the lock when its holder ends, even
    by `kill -9`, so a crashed run never leaves a stale lock. Without `fcntl` (Windows): no lock.

    Example:
    >>> with exclusive_lock("/tmp/demo.lock", waiting="another run holds it; waiting"):
    ...     pass
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(waiting, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
