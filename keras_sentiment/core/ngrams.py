"""A bag-of-n-grams logistic regression beside a recurrent model (`--ngrams N`).

NBSVM (Wang and Manning, 2012) is still one of the strongest models on IMDB that use no
unlabelled text: a linear model on which 1..N-grams a review contains, each feature scaled by its
Naive Bayes log-count ratio. It errs on other reviews than a recurrent model does, so the two
together beat either (docs/RESULTS.md). Contract:

- Features: the n-grams (orders 1..N) of the model's own token ids, so the model still takes
  token ids `[batch, seq_len]` and the export, scoring and explanations stay as they are. With
  `--ngram-max-length` the ids run longer than the model reads (the whole review beside BERT's
  first 256 word pieces; the model gets its own first tokens back, `models.FirstTokens`). An
  n-gram is a feature when it occurs in the training split; one with a padding id never is.
  Presence counts, not frequency: a review saying "great" five times has the feature once.
- Fit (`fit_ngram_logit`): NB ratios `r = log(p / |p|) - log(q / |q|)` with add-one counts, then
  an L2-regularised logistic regression on the presence times `r` (L-BFGS, scipy), strength `C`
  chosen on the valid split. The layer stores `r * w`, so serving is one gather and a sum.
  k > 2 classes: one such model per class against the rest (its own `r`), one logit per class.
- Combination (`fit_stack`): `logit = a * recurrent logit + b * n-gram logit + c`, `a, b, c` a
  logistic regression fitted on the valid split's logits (k classes: a softmax regression, the
  same `a` and `b` for every class and one `c` per class), with `a, b >= 0`: a part is weighed, or
  left out, never turned against its own prediction.
- Padding never changes the logit: padded positions make no n-gram.

Example:
>>> import numpy as np
>>> layer = NgramLogit(vocabulary_size=10, order=2, num_features=2)
>>> layer.set_feature_weights(np.array([5, ngram_key([5, 6], 10)]), np.array([1.0, 2.0]), bias=0.5)
>>> float(layer(np.array([[5, 6, 5, 0]]))[0, 0])  # "5" once (presence), "5 6" once, "6 5" unknown
3.5
"""

import numpy as np
import scipy.optimize
import scipy.sparse
import keras
import tensorflow as tf

from keras_sentiment.core.errors import KerasSentimentError

# L2 strengths tried on the valid split (inverse, as LIBLINEAR's C): IMDB's valid accuracy
# barely moves across them (91.44-91.65%, seed 1234, orders 1-2), so a short grid suffices.
L2_GRID = (0.1, 0.3, 1.0, 3.0)
# A key is below 2 * vocabulary_size**order: order 3 fits int64 for vocabularies up to about 1.6 million
# (ours: 25,000 words, BERT's 30,522 word pieces). Orders above 2 were never measured to help.
MAX_ORDER = 3


def ngram_key(ids, vocabulary_size):
    """The int64 key of one n-gram (a list of token ids): distinct for distinct n-grams of any order <= 3."""
    offset = sum(vocabulary_size**k for k in range(1, len(ids)))
    return offset + sum(int(i) * vocabulary_size ** (len(ids) - 1 - j) for j, i in enumerate(ids))


def ngram_keys(token_ids, order, vocabulary_size):
    """The keys of every n-gram (orders 1..`order`) at every position: int64 `[batch, positions]`,
    -1 where an n-gram would hold padding (or run past the end). Positions: order 1's, then 2's, ..."""
    ids = tf.cast(token_ids, tf.int64)  # [batch, seq_len]
    length = tf.shape(ids)[1]
    keys, offset = [], 0
    for k in range(1, order + 1):
        width = tf.maximum(length - k + 1, 0)
        key = tf.zeros_like(ids[:, :width])
        valid = tf.ones_like(key, tf.bool)
        for j in range(k):
            window = ids[:, j : j + width]  # [batch, width]: the j-th id of each n-gram
            key = key * vocabulary_size + window
            valid &= window != 0
        keys.append(tf.where(valid, key + offset, -1))
        offset += vocabulary_size**k
    return tf.concat(keys, axis=1)  # [batch, sum over k of (seq_len - k + 1)]


def present_keys(token_ids, order, vocabulary_size):
    """`(keys sorted per row, first)`: `first` marks each distinct valid key once per row (presence)."""
    keys = tf.sort(ngram_keys(token_ids, order, vocabulary_size), axis=1)
    first = tf.concat([tf.ones_like(keys[:, :1], tf.bool), keys[:, 1:] != keys[:, :-1]], axis=1)
    return keys, first & (keys >= 0)


@keras.saving.register_keras_serializable(package="keras_sentiment")
class NgramLogit(keras.layers.Layer):
    """Token ids `[batch, seq_len]` -> the bag-of-n-grams logits `[batch, units]` (see the module docstring).

    Args:
        vocabulary_size: token ids the encoder produces (PAD and OOV included).
        order: longest n-gram (1 to 3).
        num_features: n-grams with a weight (set by `set_feature_weights`).
        units: logits per text: 1 for two classes, one per class for k > 2.
    """

    def __init__(self, vocabulary_size, order, num_features, units=1, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order must be 1..{MAX_ORDER}, got {order}")
        self.vocabulary_size, self.order, self.num_features = int(vocabulary_size), int(order), int(num_features)
        self.units = int(units)
        # One logit keeps the shapes of the two-class layers saved before k classes: [features] and [].
        weight_shape, bias_shape = ((self.num_features,), ()) if self.units == 1 else \
            ((self.num_features, self.units), (self.units,))
        # === Weights ===
        self.keys = self.add_weight(shape=(self.num_features,), dtype="int64", initializer="zeros",
                                    trainable=False, name="keys")  # sorted n-gram keys
        self.feature_weights = self.add_weight(shape=weight_shape, initializer="zeros", trainable=False,
                                               name="feature_weights")
        self.bias = self.add_weight(shape=bias_shape, initializer="zeros", trainable=False, name="bias")

    def set_feature_weights(self, keys, weights, bias):
        """`weights`: `[len(keys)]` for one logit, `[len(keys), units]`; `bias` a number or `[units]`."""
        order = np.argsort(keys)
        self.keys.assign(np.asarray(keys, "int64")[order])
        self.feature_weights.assign(np.asarray(weights, "float32")[order].reshape(self.feature_weights.shape))
        self.bias.assign(np.asarray(bias, "float32").reshape(self.bias.shape))

    def _lookup(self, keys):
        """`(index into the table, found)` of keys `[batch, n]`."""
        table = tf.convert_to_tensor(self.keys)
        flat = tf.reshape(keys, [1, -1])
        index = tf.minimum(tf.searchsorted(table[None], flat), self.num_features - 1)
        index = tf.reshape(index, tf.shape(keys))
        return index, tf.gather(table, index) == keys

    def _weights_of(self, index, kept):
        """The weights `[batch, n, units]` of the features at `index` `[batch, n]`, 0 where not `kept`."""
        table = tf.reshape(tf.convert_to_tensor(self.feature_weights), [self.num_features, self.units])
        return tf.where(kept[..., None], tf.gather(table, index), 0.0)

    def call(self, token_ids):
        keys, first = present_keys(token_ids, self.order, self.vocabulary_size)  # [batch, positions]
        index, found = self._lookup(keys)
        weights = self._weights_of(index, first & found)  # [batch, positions, units]
        return tf.reduce_sum(weights, axis=1) + tf.reshape(tf.convert_to_tensor(self.bias), [self.units])  # [batch, units]

    def token_shares(self, token_ids):
        """Each token's exact share of `logits - bias`, `[batch, seq_len]` (k > 2 classes: `[batch, seq_len, k]`):
        an n-gram's weight is split evenly over its occurrences, and each occurrence's part evenly over its tokens."""
        keys = ngram_keys(token_ids, self.order, self.vocabulary_size)  # [batch, positions], unsorted
        index, found = self._lookup(keys)
        in_order = tf.sort(keys, axis=1)  # each key's occurrences in its row: the width of its run here
        occurrences = tf.cast(tf.searchsorted(in_order, keys, side="right") - tf.searchsorted(in_order, keys, side="left"),
                              tf.float32)
        part = self._weights_of(index, found & (keys >= 0)) / occurrences[..., None]  # [batch, positions, units]
        length = tf.shape(token_ids)[1]
        shares, start = tf.zeros(tf.concat([tf.shape(token_ids), [self.units]], 0), tf.float32), 0
        for k in range(1, self.order + 1):
            width = tf.maximum(length - k + 1, 0)
            of_order = part[:, start : start + width] / k  # [batch, width, units]: per token of each n-gram
            for j in range(k):  # the j-th token of the n-gram at position i sits at i + j
                shares += tf.pad(of_order, [[0, 0], [j, length - width - j], [0, 0]])
            start += width
        return shares[..., 0] if self.units == 1 else shares

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "order": self.order,
                "num_features": self.num_features, "units": self.units}


# === Fitting (numpy / scipy) ===


def row_keys(batches, order, vocabulary_size, num_classes=2):
    """`(keys, labels)` of batches `(token ids, labels)`: each row's distinct n-gram keys (a list of
    int64 arrays) and labels: two classes rounded to 0/1 (a teacher's probabilities included), k the class ids."""
    present = tf.function(lambda ids: present_keys(ids, order, vocabulary_size), reduce_retracing=True)
    rows, labels = [], []
    for ids, targets in batches:
        keys, first = (t.numpy() for t in present(ids))
        rows += [row[mask] for row, mask in zip(keys, first)]
        labels.append(np.asarray(targets) >= 0.5 if num_classes == 2 else np.asarray(targets).reshape(-1))
    return rows, np.concatenate(labels).astype("float64" if num_classes == 2 else "int64") if labels else np.zeros([0])


def presence_matrix(rows, table):
    """Sparse `[len(rows), len(table)]` 0/1 matrix of which of `table`'s (sorted) keys each row has."""
    indptr, indices = [0], []
    for keys in rows:
        index = np.searchsorted(table, keys)
        kept = index[(index < len(table)) & (table[np.minimum(index, len(table) - 1)] == keys)]
        indices.append(kept)
        indptr.append(indptr[-1] + len(kept))
    indices = np.concatenate(indices) if indices else np.zeros([0], "int64")
    return scipy.sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), len(table)))


def nb_ratios(presence, labels):
    """Naive Bayes log-count ratios (add-one smoothing) of each feature, positive over negative."""
    positive = 1.0 + np.asarray(presence[labels == 1].sum(axis=0)).ravel()
    negative = 1.0 + np.asarray(presence[labels == 0].sum(axis=0)).ravel()
    return np.log(positive / positive.sum()) - np.log(negative / negative.sum())


def logistic_regression(features, labels, C, nonnegative=False):
    """`(weights, bias)` minimising mean log loss + `|w|^2 / (2 C n)` (the bias unpenalised), by L-BFGS;
    with `nonnegative`, every weight held at 0 or above."""
    signs, n = 2.0 * labels - 1.0, features.shape[0]

    def loss_and_gradient(params):
        weights, bias = params[:-1], params[-1]
        margins = signs * (features @ weights + bias)
        d_margins = -signs * 0.5 * (1.0 - np.tanh(0.5 * margins)) / n  # d log(1 + e^-m) / dm = -sigmoid(-m)
        loss = np.logaddexp(0.0, -margins).sum() / n + weights @ weights / (2 * C * n)
        return loss, np.append(features.T @ d_margins + weights / (C * n), d_margins.sum())

    bounds = [(0.0, None)] * features.shape[1] + [(None, None)] if nonnegative else None
    result = scipy.optimize.minimize(loss_and_gradient, np.zeros(features.shape[1] + 1), jac=True,
                                     method="L-BFGS-B", bounds=bounds, options={"maxiter": 1000})
    return result.x[:-1], result.x[-1]


def fit_ngram_logit(train_rows, train_labels, C, num_classes=2):
    """`(keys, weights, bias)` of the NB-scaled logistic regression on rows of n-gram keys: weights
    `[features]` and a bias for two classes (labels 0/1); for k > 2 (labels class ids) one regression per
    class against the rest, weights `[features, k]` and bias `[k]`."""
    table = np.unique(np.concatenate(train_rows)) if train_rows else np.zeros([0], "int64")
    if len(table) == 0:  # every training text empty: a layer with no n-gram cannot even be called
        raise KerasSentimentError("--ngrams: the training texts hold no n-gram (no token the model reads), "
                                  "so there is nothing to fit; check the training data, or drop --ngrams")
    presence = presence_matrix(train_rows, table)

    def one_against_rest(labels):  # 0/1 labels
        ratios = nb_ratios(presence, labels)
        weights, bias = logistic_regression(presence @ scipy.sparse.diags(ratios), labels, C)
        return ratios * weights, bias

    if num_classes == 2:
        return (table, *one_against_rest(train_labels))
    fits = [one_against_rest((train_labels == k).astype("float64")) for k in range(num_classes)]
    return table, np.stack([weights for weights, _ in fits], axis=1), np.array([bias for _, bias in fits])


def ngram_logits(rows, keys, weights, bias):
    """The fitted model's logits (numpy) for rows of n-gram keys: `[rows]`, or `[rows, k]` for k classes."""
    return presence_matrix(rows, keys) @ weights + bias


def predicted_classes(logits):
    """Class ids from logits: `[n]` two-class logits (> 0: class 1), or `[n, k]` (the largest)."""
    return (logits > 0).astype("int64") if logits.ndim == 1 else np.argmax(logits, axis=1)


def choose_l2(train, valid, grid=L2_GRID, report=print, num_classes=2):
    """`(C, fit, valid logits)`: the grid's C with the highest valid accuracy (the smaller on a tie)."""
    best = None
    for C in grid:
        fitted = fit_ngram_logit(*train, C, num_classes=num_classes)
        logits = ngram_logits(valid[0], *fitted)
        accuracy = np.mean(predicted_classes(logits) == valid[1])
        report(f"  n-grams, C={C:g}: valid accuracy {accuracy:.2%} ({len(fitted[0]):,} n-grams)")
        if best is None or accuracy > best[0]:
            best = (accuracy, C, fitted, logits)
    return best[1:]


def fit_stack(recurrent_logits, ngram_logits_, labels):
    """`(a, b, c)`: `a * recurrent + b * n-grams + c` fitted to `labels` (barely regularised), `a, b >= 0`:
    a logistic regression for two classes (`[n]` logits, 0/1 labels); for k (`[n, k]` logits, class ids) a
    softmax regression with one `a` and `b` for all classes and `c` a list of k biases.

    A negative weight would turn a part against its own prediction: on a small valid split a weak
    part's noise fits that way (2,000 IMDB reviews: a = -1.59 on a GRU at 65.5% valid; RESULTS, "Your
    own data"). The free fit comes first and is kept when both weights are >= 0, so a stack fitted
    before the bound is fitted again to the same digits.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 2, 400)
    >>> strong, noise = 3.0 * (labels - 0.5) + rng.normal(size=400), rng.normal(size=400)
    >>> a, b, c = fit_stack(noise, strong, labels)
    >>> a >= 0.0 and b > 1.0
    True
    """
    two_classes = np.ndim(recurrent_logits) == 1
    if two_classes:
        features = np.stack([recurrent_logits, ngram_logits_], axis=1)

        def fit(nonnegative):
            (a, b), c = logistic_regression(features, labels, C=1e6, nonnegative=nonnegative)
            return a, b, c
    else:
        recurrent, ngram = np.asarray(recurrent_logits, "float64"), np.asarray(ngram_logits_, "float64")

        def fit(nonnegative):
            return softmax_stack(recurrent, ngram, np.asarray(labels, "int64"), nonnegative=nonnegative)

    a, b, c = fit(nonnegative=False)
    if min(a, b) < 0.0:
        a, b, c = fit(nonnegative=True)
    return float(a), float(b), (float(c) if two_classes else [float(bias) for bias in c])


def softmax_stack(recurrent, ngram, labels, C=1e6, nonnegative=False):
    """`(a, b, c [k])` minimising the mean softmax cross-entropy of `a * recurrent + b * ngram + c`
    (`[n, k]` each) + `(a^2 + b^2) / (2 C n)`, by L-BFGS; with `nonnegative`, `a, b >= 0`."""
    n, k = recurrent.shape
    truth = np.eye(k)[labels]  # [n, k]

    def loss_and_gradient(params):
        a, b, c = params[0], params[1], params[2:]
        z = a * recurrent + b * ngram + c  # [n, k]
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        d_z = (np.exp(log_p) - truth) / n  # d mean cross-entropy / dz
        loss = -(truth * log_p).sum() / n + (a * a + b * b) / (2 * C * n)
        return loss, np.concatenate([[(d_z * recurrent).sum() + a / (C * n), (d_z * ngram).sum() + b / (C * n)],
                                     d_z.sum(axis=0)])

    start = np.concatenate([[1.0, 1.0], np.zeros(k)])
    bounds = [(0.0, None)] * 2 + [(None, None)] * k if nonnegative else None
    result = scipy.optimize.minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", bounds=bounds,
                                     options={"maxiter": 1000})
    return result.x[0], result.x[1], result.x[2:]
