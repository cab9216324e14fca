"""Token-id batches for training and evaluation: texts encoded in the pipeline, bucketed by length.

`make_batches` encodes `(text, label)` examples with a text encoder and groups them by length
so that little of each batch is padding; `EpochBatches` gives each epoch its own order, fixed by
the seed and the epoch, so a resumed run trains on exactly what an uninterrupted one would.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def default_bucket_boundaries(max_length, num_buckets=10):
    """Geometric length boundaries: short texts are common, so small buckets are dense."""
    bounds = np.unique(np.geomspace(8, max(max_length, 9), num_buckets).astype(int))
    return [int(b) for b in bounds if 1 < b <= max_length]


def make_batches(dataset, encode, batch_size, max_length, *, shuffle=False, seed=0, bucket_boundaries=None,
                 cache_file=None):
    """`(text, label)` examples to bucketed batches `(ids [batch, seq_len], labels [batch])`.

    Texts are vectorized in chunks inside `map` (parallel), cached as token ids, shuffled
    with a seed, then grouped by length so a batch holds similar lengths (little padding).
    Padding is on the right, which the masked models and the cuDNN kernel require.

    Args:
        dataset: examples `(text: tf.string, label: tf.int32)`.
        encode: strings `[n]` to right-padded ids `[n, <= max_length]`, 0 = padding (`TextEncoder`).
        batch_size: examples per batch.
        max_length: longest sequence kept (longer texts are truncated).
        shuffle: shuffle examples before bucketing, a new order each iteration (seeded).
        seed: shuffle seed.
        bucket_boundaries: length boundaries; default `default_bucket_boundaries(max_length)`.
        cache_file: where the token ids are cached (a path prefix; a streamed file's do not fit in memory), or None:
            in memory.
    """
    batches = EpochBatches(dataset, encode, batch_size, max_length, seed=seed, bucket_boundaries=bucket_boundaries,
                           cache_file=cache_file)
    examples = batches.examples
    if shuffle:
        examples = examples.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    return without_autotuning(batches.bucket(examples).prefetch(AUTOTUNE))


def without_autotuning(batches):
    """`batches` with tf.data's autotuning off, for Keras to iterate. With it on, a `fit` over 8 such batches
    (3 s of steps) returned after 5.1 s, in the throughput benchmark after up to 44 s: the time went after the
    last step, not into the steps (docs/PERFORMANCE.md, "Training again and again in one process")."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.with_options(options)


SHUFFLE_BUFFER = 20_000


def epoch_order_seed(seed, epoch):
    """The shuffle seed of `epoch` (0-based): fixed by the run's seed and the epoch alone."""
    return seed * 100_003 + epoch


class EpochBatches:
    """A training split's bucketed batches, epoch by epoch; epoch `e`'s order depends only on `(seed, e)`.

    So a run resumed at epoch `e` (or in the middle of it, `stream(e, epochs, skip=k)`) trains on
    exactly the batches an uninterrupted run would, where a `reshuffle_each_iteration` shuffle
    would restart from the first epoch's order in the new process.

    Args: as `make_batches`.

    Example:
    >>> batches = EpochBatches(examples, encoder, 64, 400, seed=1234)  # doctest: +SKIP
    >>> model.fit(batches.stream(0, 10), epochs=10, steps_per_epoch=batches.per_epoch)  # doctest: +SKIP
    """

    def __init__(self, dataset, encode, batch_size, max_length, *, seed=0, bucket_boundaries=None, cache_file=None):
        def encode_chunk(texts, labels):
            return encode(texts), labels  # [chunk, <= max_length], right padded

        def strip_padding(ids, label):
            # ids are right padded and id 0 never occurs inside a text: the count of non-zero ids
            # is the text's length.
            return ids[: tf.math.count_nonzero(ids, dtype=tf.int32)], label  # [len]

        self.batch_size, self.seed = batch_size, seed
        self.boundaries = bucket_boundaries or default_bucket_boundaries(max_length)
        chunks = dataset.batch(512).map(encode_chunk, num_parallel_calls=AUTOTUNE)
        if cache_file:  # on disk by chunk: a file cache holds an index entry per element in memory
            self.examples = chunks.cache(fresh_cache_file(cache_file)).unbatch().map(strip_padding,
                                                                                    num_parallel_calls=AUTOTUNE)
        else:
            self.examples = chunks.unbatch().map(strip_padding, num_parallel_calls=AUTOTUNE).cache()
        # Bucketing hides the number of batches from Keras (the bar would say "469/Unknown" for
        # the whole first epoch); the lengths give it exactly. This pass also fills the cache.
        self.per_epoch = count_bucketed_batches(text_lengths(self.examples), self.boundaries, batch_size)

    def bucket(self, examples):
        """Group `(ids, label)` examples into batches of similar length; declares the batch count."""
        batches = examples.bucket_by_sequence_length(
            element_length_func=lambda ids, label: tf.shape(ids)[0],
            bucket_boundaries=self.boundaries,
            bucket_batch_sizes=[self.batch_size] * (len(self.boundaries) + 1),
            padded_shapes=([None], []),
        )
        return batches.apply(tf.data.experimental.assert_cardinality(self.per_epoch))

    def epoch(self, epoch):
        """The batches of `epoch` (0-based) in their fixed order."""
        shuffled = self.examples.shuffle(SHUFFLE_BUFFER, seed=epoch_order_seed(self.seed, epoch), reshuffle_each_iteration=False)
        return self.bucket(shuffled)

    def stream(self, first_epoch, epochs, skip=0):
        """Epochs `first_epoch .. epochs-1` in one dataset, less the first `skip` batches; for `fit(steps_per_epoch=per_epoch)`."""
        return concatenate_epochs(self.epoch, first_epoch, epochs, skip)


def fresh_cache_file(prefix):
    """`prefix` as a `tf.data` cache file for this process: the files an earlier (killed) process left under it
    removed (a half-written cache is refused), its folder made."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for stale in prefix.parent.glob(prefix.name + "*"):
        stale.unlink()
    return str(prefix)


def concatenate_epochs(epoch_data, first_epoch, epochs, skip=0):
    """`epoch_data(e)` for `e` in `first_epoch .. epochs-1` as one dataset, without its first `skip` batches."""
    stream = epoch_data(first_epoch).skip(skip)
    for epoch in range(first_epoch + 1, epochs):
        stream = stream.concatenate(epoch_data(epoch))
    return without_autotuning(stream.prefetch(AUTOTUNE))


def text_lengths(examples):
    """Token counts of `(ids, label)` examples, as a numpy array."""
    # Batches of 1,024: a batch of 65,536 cost ~2.8 s per call whatever the data's size, which every
    # make_batches paid (docs/PERFORMANCE.md, "Training again and again in one process").
    lengths = examples.map(lambda ids, label: tf.shape(ids)[0]).batch(1_024)
    return np.concatenate([np.zeros([0], "int32"), *lengths.as_numpy_iterator()])


def count_bucketed_batches(lengths, boundaries, batch_size):
    """How many batches `bucket_by_sequence_length` makes: full ones plus one partial per non-empty bucket.

    Bucket i holds lengths in `[boundaries[i-1], boundaries[i])`; the count does not depend on
    the order of the examples, so one count serves every (reshuffled) epoch.
    """
    per_bucket = np.bincount(np.searchsorted(boundaries, lengths, side="right"), minlength=len(boundaries) + 1)
    return int(np.sum(-(-per_bucket // batch_size)))
