"""TensorFlow's thread pools for scoring, decided before TensorFlow starts (no TensorFlow import here).

The packed recurrence (`keras_sentiment.core.packed`) runs a bidirectional model's two directions as two
chains of small matrix products, which TensorFlow's inter-op pool runs side by side. With the default
intra-op pool (one thread per core) each of those products is also split over every core, and the two
chains wait on each other; one intra-op thread per chain scored 1.2-1.4x faster on 2 cores, a
one-direction model the same (docs/PERFORMANCE.md, "Scoring and serving the shipped model").
Models that do not run the packed recurrence (BERT, stacked layers) keep the default.
"""

import os
import sys

from keras_sentiment.run.rundir import runs_packed_recurrence

INTRA_OP_THREADS = "TF_NUM_INTRAOP_THREADS"  # TensorFlow reads it when its runtime starts


def set_scoring_threads(model_path, cores=None):
    """For a model that scores by the packed recurrence, TensorFlow's intra-op threads = half the cores (at
    least 1), unless `TF_NUM_INTRAOP_THREADS` is set already (the user's choice wins) or TensorFlow is imported
    already (its pools may be sized: a process that imported it keeps its own); returns the number set, or None.

    Example:
    >>> set_scoring_threads("saved_models/imdb_bigru", cores=2)  # doctest: +SKIP
    1
    """
    if INTRA_OP_THREADS in os.environ or "tensorflow" in sys.modules or not model_path \
            or not runs_packed_recurrence(model_path):
        return None
    threads = max(1, (cores or os.cpu_count() or 1) // 2)
    os.environ[INTRA_OP_THREADS] = str(threads)
    return threads
