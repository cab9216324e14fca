"""Inference-only recurrence: a trained recurrent classifier's logits, the same numbers, less CPU work.

`packed_forward(model)` returns a function from right-padded token ids `[batch, seq_len]` (0 =
padding, as every encoder gives them) to the logits `model(token_ids, training=False)` gives (same
shape, equal up to float rounding), or None for a model it does not know; callers then use the model
itself. It knows the one-layer recurrent classifiers of `keras_sentiment.core.recurrent` (SimpleRNN,
GRU, LSTM, one or two directions, every pooling, Keras' default activations), their ensembles, and
either of them inside a `build_with_ngrams` model: what `make train` and the `best` rules ship.
A `build_with_ngrams` model whose stack gives the recurrent logits no weight runs its n-grams alone.

Where Keras' masked recurrence spends its time on a CPU, and what this does instead (measured in
docs/PERFORMANCE.md, "Scoring and serving the shipped model"):
- The input projection `x_t W + b` depends on the token alone: it is computed once per distinct
  token of the batch, in one matrix product, instead of once per position inside the loop.
- The texts run longest first, and step t computes only the texts still running (a prefix of the
  batch): no work on padding, whatever the batch's mix of lengths.
- Both directions advance in the same loop step (the backward one over each text reversed within its
  length), and the pooling is accumulated in the loop, so no `[batch, seq_len, dim]` outputs are kept.
- A step takes few operations: the recurrent weights are read once before the loop, the recurrent
  bias is one `BiasAdd` on the product (which Grappler may fuse into it), a GRU's z and r gates share
  one sigmoid, and a pooled model keeps only the running texts' states (no copy of the finished
  ones). A loop iteration takes `STEPS_PER_ITERATION` steps (a while loop's own operations cost as
  much as a step's near the end).
`direction_parts(model)` splits such a model into one function per direction and the rest, so that another
runtime can run the directions side by side (`keras_sentiment.run.litert`: LiteRT, for `score` and `serve`).
Training has its own packed loop with a hand-written backward pass (`keras_sentiment.core.packed_training`);
the explanations and every other backend keep using the Keras layers.
"""

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from keras_sentiment.core.recurrent import (RECURRENT_PART, STACK, MaskedPooling, ensemble_members, ngram_parts,
                                            stack_weights)

# Time steps per loop iteration: a while loop's own ops cost as much as a step's when few texts are still running.
STEPS_PER_ITERATION = 4

CELLS = (keras.layers.SimpleRNN, keras.layers.GRU, keras.layers.LSTM)  # the layers a `Direction` computes


@dataclass
class Direction:
    """One direction of a recurrent layer: its cell kind and weights (variables, read when traced, so a function
    made before or during training computes with the weights of the moment it runs)."""

    kind: type
    kernel: object  # [emb_dim, gates * units]
    recurrent_kernel: object  # [units, gates * units]
    bias: object  # [gates * units]; a GRU's [2, gates * units] (input, recurrent); or None
    units: int

    @classmethod
    def of(cls, layer):
        """The direction of a Keras SimpleRNN / GRU / LSTM layer, or None if it is not one computed here."""
        kind = type(layer)
        cell = getattr(layer, "cell", None)
        if kind not in CELLS or layer.stateful:
            return None
        activation_ok = cell.activation is keras.activations.tanh
        if kind is not keras.layers.SimpleRNN:
            activation_ok &= cell.recurrent_activation is keras.activations.sigmoid
        if not activation_ok or (kind is keras.layers.GRU and not cell.reset_after):
            return None
        return cls(kind, cell.kernel, cell.recurrent_kernel, cell.bias if cell.use_bias else None, cell.units)

    @property
    def input_bias(self):
        """The bias added to the input projection, read now: `[gates * units]` or None."""
        if self.bias is None:
            return None
        bias = tf.convert_to_tensor(self.bias)
        return bias[0] if self.kind is keras.layers.GRU else bias

    @property
    def recurrent_bias(self):
        """A GRU's bias of the recurrent product, read now: `[gates * units]`, or None."""
        if self.bias is None or self.kind is not keras.layers.GRU:
            return None
        return tf.convert_to_tensor(self.bias)[1]

    def weights(self):
        """The recurrent kernel and bias as tensors, read once before the loop (not once a step)."""
        return tf.convert_to_tensor(self.recurrent_kernel), self.recurrent_bias

    def step(self, x, states, weights):
        """One time step: `x` the input projection `[n, gates * units]`, `states` `[n, units]` each
        (LSTM: h and c), `weights` from `weights()` -> the new states; the first is the step's output."""
        if self.kind is keras.layers.GRU:
            return [gru_step(x, states[0], *weights, self.units)[0]]
        inner = tf.matmul(states[0], weights[0])  # [n, gates * units]; only a GRU has a recurrent bias
        if self.kind is keras.layers.SimpleRNN:
            return [tf.tanh(x + inner)]
        i, f, c, o = tf.split(x + inner, 4, axis=1)  # LSTM
        c = tf.sigmoid(f) * states[1] + tf.sigmoid(i) * tf.tanh(c)
        return [tf.sigmoid(o) * tf.tanh(c), c]

    def project(self, embeddings):
        """The input projection of each distinct token's embedding `[tokens, emb_dim]` -> `[tokens, gates * units]`,
        with the input bias (the recurrent one goes with the recurrent product, `step`)."""
        projected = tf.matmul(embeddings, tf.convert_to_tensor(self.kernel))
        if self.bias is not None:
            projected += self.input_bias
        return projected

    @property
    def num_states(self):
        return 2 if self.kind is keras.layers.LSTM else 1


def gru_step(x, h, kernel, bias, units):
    """One step of a GRU (reset_after) over packed rows: `x` the input projection `[n, 3 * units]`, `h` the
    states `[n, units]`, the recurrent `kernel` `[units, 3 * units]` and `bias` (or None) -> `(new states,
    gates z and r [n, 2 * units], candidate [n, units], recurrent h-part [n, units])`; the last three are
    what the training loop keeps for its backward pass (`keras_sentiment.core.packed_training`)."""
    inner = tf.matmul(h, kernel)  # [n, 3 * units]
    if bias is not None:
        inner = tf.nn.bias_add(inner, bias)  # the whole bias at once; Grappler may fuse it into the product
    x_zr, x_h = tf.split(x, [2 * units, units], axis=1)
    inner_zr, inner_h = tf.split(inner, [2 * units, units], axis=1)
    gates = tf.sigmoid(x_zr + inner_zr)  # z and r in one sigmoid
    z, r = tf.split(gates, 2, axis=1)
    candidate = tf.tanh(x_h + r * inner_h)
    # z * h + (1 - z) * candidate, as candidate + z * (h - candidate): fewer ops a step
    return candidate + z * (h - candidate), gates, candidate, inner_h


def packed_forward(model):
    """Token ids `[batch, seq_len]` -> `model`'s logits, by the packed recurrence; None if `model` is not
    one it computes (see the module docstring).

    Example:
    >>> import numpy as np
    >>> from keras_sentiment.core.recurrent import ModelConfig, build_model
    >>> model = build_model("bigru", ModelConfig(vocab_size=50, embedding_dim=4, hidden_dim=3, pooling="max"))
    >>> ids = np.array([[5, 6, 7, 0], [8, 0, 0, 0]], "int32")
    >>> bool(np.allclose(packed_forward(model)(ids), model(ids), atol=1e-6))
    True
    """
    forward = _forward_of(model)
    if forward is None:
        return None
    return tf.function(lambda token_ids: forward(tf.cast(token_ids, tf.int32)), reduce_retracing=True)


def _forward_of(model):
    names = [layer.name for layer in model.layers]
    if STACK in names and RECURRENT_PART in names:  # the names `build_with_ngrams` gives its own layers
        return _with_ngrams(model)
    members = ensemble_members(model)
    if members:
        forwards = [_forward_of(member) for member in members]
        if any(forward is None for forward in forwards):
            return None
        return lambda token_ids: tf.add_n([forward(token_ids) for forward in forwards]) / len(forwards)
    return _classifier(model)


def _with_ngrams(model):
    """`build_with_ngrams`: the stack over the packed recurrent logits and the n-gram logits; the n-gram logits
    alone where the stack gives the recurrent ones no weight (`a = 0`, read now: the stack is fixed once built)."""
    first_tokens, ngram = ngram_parts(model)
    stack = model.get_layer(STACK)
    if ngram is not None and recurrent_weighs_nothing(model):
        def ngrams_alone(token_ids):  # what `a = 0` times any recurrent logit adds, without running the recurrence
            ngram_logits = ngram(token_ids)  # [batch, units]
            return stack(tf.concat([tf.zeros_like(ngram_logits), ngram_logits], axis=1))  # [batch, units]

        return ngrams_alone
    recurrent = _forward_of(model.get_layer(RECURRENT_PART))
    if recurrent is None or ngram is None:
        return None

    def forward(token_ids):
        recurrent_ids = first_tokens(token_ids) if first_tokens is not None else token_ids
        both = tf.concat([recurrent(recurrent_ids), ngram(token_ids)], axis=1)  # [batch, 2 * units]
        return stack(both)  # [batch, units]

    return forward


def recurrent_weighs_nothing(model):
    """Whether a `build_with_ngrams` model gives its recurrent logits weight 0 (`ngrams.fit_stack` holds the
    weights at 0 or above; at 1,000-2,000 long reviews it leaves the GRU out: RESULTS.md, "Your own data")."""
    a, _, _ = stack_weights(model.get_layer(STACK))
    return a == 0.0


def _classifier(model):
    """Embedding -> one recurrent layer -> [pooling] -> Dense, with dropouts between: the packed forward, else None."""
    parts = _classifier_parts(model)
    if parts is None:
        return None
    embedding, directions, mode, logit = parts

    def forward(token_ids):
        pooled = packed_recurrence(token_ids, embedding.embeddings, directions, mode)  # [batch, units * directions]
        return logit(pooled)  # [batch, 1 or k]

    return forward


def direction_parts(model):
    """`model` as `(directions, head)`, for a runtime that runs each direction apart (`keras_sentiment.run.litert`),
    or None for a model it does not split (ensembles, a recurrent part reading the first tokens of longer ids, and
    whatever `packed_forward` does not compute).

    `directions`: one function per direction, right-padded ids `[batch, seq_len]` -> its pooled states `[batch,
    units]` (a backward one reverses each text within its length itself); each depends on nothing else, so they can
    run side by side. `head(token_ids, pooled)`: the pooled states of every direction, concatenated in that order
    `[batch, sum of units]`, -> the model's logits; `head(ids, concat of each direction(ids))` equals `model(ids)`.

    Example:
    >>> from keras_sentiment.core.recurrent import ModelConfig, build_model
    >>> model = build_model("bigru", ModelConfig(vocab_size=50, embedding_dim=4, hidden_dim=3, pooling="max"))
    >>> directions, head = direction_parts(model)
    >>> ids = np.array([[5, 6, 7, 0], [8, 0, 0, 0]], "int32")
    >>> pooled = tf.concat([direction(ids) for direction in directions], axis=1)  # [batch, 2 * 3]
    >>> bool(np.allclose(head(ids, pooled), model(ids), atol=1e-6))
    True
    """
    names = [layer.name for layer in model.layers]
    ngrams = None
    if STACK in names and RECURRENT_PART in names:
        first_tokens, ngram = ngram_parts(model)
        if first_tokens is not None or ngram is None or recurrent_weighs_nothing(model):  # a = 0: no recurrence to run
            return None
        ngrams, stack, model = (ngram, model.get_layer(STACK), model.get_layer(RECURRENT_PART))
    parts = _classifier_parts(model)
    if parts is None:
        return None
    embedding, directions, mode, logit = parts

    def direction_function(d, backward):
        def pooled(token_ids):  # [batch, seq_len] -> [batch, units]
            if backward:  # Keras' go_backwards under a mask: each text's own tokens, last first
                lengths = tf.reduce_sum(tf.cast(token_ids != 0, tf.int32), axis=1)
                token_ids = tf.reverse_sequence(token_ids, lengths, seq_axis=1, batch_axis=0)
            return packed_recurrence(token_ids, embedding.embeddings, [d], mode)
        return pooled

    def head(token_ids, pooled):
        logits = logit(pooled)  # [batch, 1 or k]
        return stack(tf.concat([logits, ngrams(token_ids)], axis=1)) if ngrams is not None else logits

    return [direction_function(d, backward=i == 1) for i, d in enumerate(directions)], head


def _classifier_parts(model):
    """`(embedding, directions, pooling mode, logit layer)` of a classifier `packed_recurrence` computes, else None."""
    kept = [layer for layer in model.layers
            if not isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout))]
    if len(kept) not in (3, 4) or not isinstance(kept[0], keras.layers.Embedding) or not kept[0].mask_zero:
        return None
    embedding, recurrent, *pooling, logit = kept
    if not isinstance(logit, keras.layers.Dense) or logit.activation is not keras.activations.linear:
        return None
    if pooling and not isinstance(pooling[0], MaskedPooling):
        return None
    mode = pooling[0].mode if pooling else "last"
    layers = direction_layers(recurrent)
    if layers is None:
        return None
    directions = [Direction.of(layer) for layer in layers]
    if any(d is None for d in directions) or any(layer.return_sequences != (mode != "last") for layer in layers):
        return None
    return embedding, directions, mode, logit


def direction_layers(recurrent):
    """The layer of each direction of a recurrent layer or its `Bidirectional` wrapper (forward, then backward),
    or None for a merge other than concat or directions in another order."""
    if isinstance(recurrent, keras.layers.Bidirectional):
        if recurrent.merge_mode != "concat":
            return None
        layers = [recurrent.forward_layer, recurrent.backward_layer]
    else:
        layers = [recurrent]
    return layers if [layer.go_backwards for layer in layers] == [False, True][: len(layers)] else None


def packed_recurrence(token_ids, embeddings, directions, mode):
    """The pooled states `[batch, sum of units]` of `directions` (forward, then backward) over right-padded ids.

    `mode`: "last" (each direction's final state), "max" or "mean" over each text's real tokens; a text with
    no token pools to zeros, as `MaskedPooling` does (and "last" gives the zero initial state, as Keras does).
    """
    batch, width = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    lengths = tf.reduce_sum(tf.cast(token_ids != 0, tf.int32), axis=1)  # [batch]
    # === Distinct tokens, projected once ===
    distinct, index = tf.unique(tf.reshape(token_ids, [-1]))
    index = tf.reshape(index, [batch, width])  # [batch, seq_len]: row of each token in `distinct`
    vectors = tf.gather(tf.convert_to_tensor(embeddings), distinct)  # [tokens, emb_dim]
    projections = [d.project(vectors) for d in directions]  # each [tokens, gates * units]
    # === Longest first, time major; the backward direction reads each text reversed within its length ===
    order = tf.argsort(lengths, direction="DESCENDING", stable=True)
    readings = [index, tf.reverse_sequence(index, lengths, seq_axis=1, batch_axis=0)][: len(directions)]
    extra = STEPS_PER_ITERATION - 1  # steps the last iteration may take past the last column
    step_index = [tf.pad(tf.gather(tf.transpose(ids), order, axis=1), [[0, extra], [0, 0]])  # [seq_len + extra, batch]
                  for ids in readings]
    running = tf.reduce_sum(tf.cast(tf.sequence_mask(lengths, width), tf.int32), axis=0)  # [seq_len]: texts still running
    running = tf.pad(running, [[0, extra]])

    # === The loop: states and pooled values per direction, only the running prefix computed ===
    pools = int(mode != "last")  # pooled values per direction: "last" pools the final state itself

    def initial(d):
        states = [tf.zeros([batch, d.units]) for _ in range(d.num_states)]
        return states + [tf.fill([batch, d.units], -np.inf if mode == "max" else 0.0) for _ in range(pools)]

    def per_direction(carried):
        """The loop's flat values as `(states, pooled)` per direction."""
        parts, at = [], 0
        for d in directions:
            parts.append((carried[at : at + d.num_states], carried[at + d.num_states : at + d.num_states + pools]))
            at += d.num_states + pools
        return parts

    weights = [d.weights() for d in directions]

    def one_step(t, carried):
        n, out = running[t], []
        for d, w, projection, ids, (states, pooled) in zip(directions, weights, projections, step_index,
                                                           per_direction(carried)):
            new = d.step(tf.gather(projection, ids[t, :n]), [s[:n] for s in states], w)  # each [n, units]
            # pooled: a finished text's states are never read again, so only the running prefix is kept
            out += new if pools else [tf.concat([s_new, s[n:]], 0) for s_new, s in zip(new, states)]
            for p in pooled:
                merged = tf.maximum(p[:n], new[0]) if mode == "max" else p[:n] + new[0]
                out.append(tf.concat([merged, p[n:]], 0))
        return out

    def body(t, *carried):
        for k in range(STEPS_PER_ITERATION):  # past the last column no text runs (n = 0): those steps change nothing
            carried = one_step(t + k, carried)
        return (t + STEPS_PER_ITERATION, *carried)

    carried = [value for d in directions for value in initial(d)]
    invariants = [tf.TensorShape([None, value.shape[-1]]) for value in carried]
    _, *carried = tf.while_loop(lambda t, *_: t < width, body, [tf.constant(0), *carried],
                                shape_invariants=[tf.TensorShape([]), *invariants])
    # === Pooled per direction, back in input order ===
    results = [pooled[0] if pools else states[0] for states, pooled in per_direction(carried)]  # rows in loop order
    pooled = tf.concat(results, axis=1)  # [batch, sum of units]
    if mode == "mean":
        pooled = pooled / tf.cast(tf.maximum(tf.gather(lengths, order), 1), pooled.dtype)[:, None]
    pooled = tf.scatter_nd(order[:, None], pooled, tf.shape(pooled))  # row i of the loop is text order[i]
    return tf.where(lengths[:, None] > 0, pooled, 0.0) if pools else pooled
