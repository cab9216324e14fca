"""Token-id rows kept without padding, as the GPU bundles carry them (numpy only: the device imports it).

A split is `ids` (uint16, every row's ids one after another) and `offsets` (int64 `[rows + 1]`): row i is
`ids[offsets[i]:offsets[i + 1]]`.
"""

import numpy as np


def concatenated(rows):
    """`(ids, offsets)` of a list of id rows."""
    offsets = np.concatenate([[0], np.cumsum([len(row) for row in rows])]).astype(np.int64)
    return np.concatenate(rows).astype(np.uint16), offsets


def rows_of(ids, offsets, count=None):
    """The rows of `(ids, offsets)`, the first `count` of them (None: all), as views into `ids`."""
    count = len(offsets) - 1 if count is None else min(count, len(offsets) - 1)
    return [ids[offsets[i]:offsets[i + 1]] for i in range(count)]
