"""Training-time recurrence: a GRU classifier's forward pass with a hand-written backward pass, fewer ops a step.

`packed_training_forward(model)` returns a function from right-padded token ids `[batch, seq_len]` to the logits
`model(token_ids, training=True)` gives (dropouts drawn from the model's own layers), whose gradients with
respect to every trainable weight equal Keras' (up to float rounding; tests/test_packed_training.py), or None
for a model it does not know, whose callers then train the model itself. It knows what `make train` and the
`best` rules train for two or more classes: the one-layer GRU classifier of `keras_sentiment.core.recurrent`,
one or two directions, masked max pooling, Keras' default activations, no dropout inside the cell.

Why (measured in docs/PERFORMANCE.md, "make train: where the time goes"): differentiating Keras' masked
GRU, or even the packed inference loop of `keras_sentiment.core.packed`, keeps dozens of intermediate
tensors a step and replays every operation backwards. Here, as in `packed`, the texts run longest first and a
step computes only the texts still running; each step keeps its gates and output (two writes), pooling is one
segment max after the loop, and the backward loop is the GRU's own derivative: per step one matrix product
and a dozen element-wise operations, the recurrent kernel's gradient one product after the loop.
"""

from contextlib import contextmanager

import keras
import tensorflow as tf

from keras_sentiment.core.packed import STEPS_PER_ITERATION, Direction, direction_layers, gru_step, packed_forward
from keras_sentiment.core.recurrent import MaskedPooling


def packed_training_forward(model):
    """Token ids `[batch, seq_len]` -> `model`'s training-mode logits with the hand-written GRU gradient; None
    if `model` is not the classifier it computes (see the module docstring).

    Example:
    >>> import numpy as np
    >>> from keras_sentiment.core.recurrent import ModelConfig, build_model
    >>> model = build_model("bigru", ModelConfig(vocab_size=50, embedding_dim=4, hidden_dim=3, pooling="max",
    ...                                          dropout=0.0))
    >>> ids = np.array([[5, 6, 7, 0], [8, 0, 0, 0]], "int32")
    >>> bool(np.allclose(packed_training_forward(model)(ids), model(ids, training=True), atol=1e-6))
    True
    """
    parts = _classifier_parts(model)
    if parts is None:
        return None
    embedding, before, directions, after, logit = parts

    def forward(token_ids):
        token_ids = tf.cast(token_ids, tf.int32)
        vectors = tf.gather(tf.convert_to_tensor(embedding.embeddings), token_ids)  # [batch, seq_len, emb_dim]
        for dropout in before:
            vectors = dropout(vectors, training=True)
        pooled = packed_gru_max_pool(token_ids, vectors, directions)  # [batch, units * directions]; weights read here
        for dropout in after:
            pooled = dropout(pooled, training=True)
        return logit(pooled)  # [batch, 1 or k]

    return tf.function(forward, reduce_retracing=True)  # a graph also when called eagerly: TensorArray concat needs it


@contextmanager
def fitted_by_packed_recurrence(model):
    """Within it, `model.fit` trains by `packed_training_forward` and validates by `packed.packed_forward` (the
    same numbers as Keras' layers, fewer operations) where the model is one they compute, on a CPU, one replica;
    yields whether it does.

    Keras calls `model.call` from the train and test functions it builds at the first `fit`, so the model's
    `call` is replaced for the duration and those functions are rebuilt on the way in and out.

    Example:
    >>> from keras_sentiment.core.recurrent import ModelConfig, build_model
    >>> model = build_model("bigru", ModelConfig(vocab_size=50, embedding_dim=4, hidden_dim=3, pooling="max"))
    >>> with fitted_by_packed_recurrence(model) as packed:
    ...     packed
    True
    """
    train_forward, inference_forward = packed_training_forward(model), packed_forward(model)
    if train_forward is None or inference_forward is None or model.jit_compile \
            or tf.config.list_logical_devices("GPU") or tf.distribute.has_strategy() \
            or model.distribute_strategy.num_replicas_in_sync > 1:
        yield False  # a GPU runs Keras' own GRU kernel (cuDNN), XLA cannot compile these loops, replicas stay Keras'
        return

    def call(inputs, training=False, mask=None):  # the signature of `Functional.call`
        return train_forward(inputs) if training else inference_forward(inputs)

    model.call = call
    model.train_function = model.test_function = model.predict_function = None
    try:
        yield True
    finally:
        del model.call
        model.train_function = model.test_function = model.predict_function = None


def _classifier_parts(model):
    """`(embedding, dropouts before, each direction's `packed.Direction` (forward, then backward), dropouts after,
    logit)` of a one-layer GRU classifier with masked max pooling and float32 weights, else None."""
    kept = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    pooling = [i for i, layer in enumerate(kept) if isinstance(layer, MaskedPooling)]
    if len(pooling) != 1 or kept[pooling[0]].mode != "max" or not 2 <= pooling[0] < len(kept) - 1:
        return None  # one max pooling, after an embedding and a recurrent layer, before a logit
    at = pooling[0]
    embedding, *before, recurrent = kept[:at]
    *after, logit = kept[at + 1:]
    if not isinstance(embedding, keras.layers.Embedding) or not embedding.mask_zero \
            or not all(isinstance(layer, keras.layers.Dropout) and layer.noise_shape is None for layer in before + after) \
            or not isinstance(logit, keras.layers.Dense) or logit.activation is not keras.activations.linear \
            or model.dtype_policy.name != "float32":
        return None
    layers = direction_layers(recurrent)
    if layers is None or [type(layer) for layer in layers] != [keras.layers.GRU] * len(layers) \
            or not all(layer.return_sequences and layer.cell.dropout == 0 and layer.cell.recurrent_dropout == 0
                       and layer.cell.use_bias and Direction.of(layer) is not None for layer in layers):
        return None
    return embedding, before, [Direction.of(layer) for layer in layers], after, logit


def packed_gru_max_pool(token_ids, vectors, directions):
    """Max over each text's GRU states `[batch, sum of units]` (forward, then backward; zeros for a text with no
    token), from right-padded ids `[batch, seq_len]` and their input vectors `[batch, seq_len, emb_dim]`."""
    batch, width = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
    lengths = tf.reduce_sum(tf.cast(token_ids != 0, tf.int32), axis=1)  # [batch]
    steps = tf.maximum(-(-width // STEPS_PER_ITERATION), 1) * STEPS_PER_ITERATION  # whole loop iterations
    # === Longest first; each step's running texts as one packed row each, step after step ===
    order = tf.argsort(lengths, direction="DESCENDING", stable=True)
    sorted_lengths = tf.gather(lengths, order)
    running = tf.reduce_sum(tf.cast(tf.sequence_mask(sorted_lengths, steps), tf.int32), axis=0)  # [steps]
    packed = tf.cast(tf.where(tf.transpose(tf.sequence_mask(sorted_lengths, steps))), tf.int32)  # [rows, 2]: step, row
    step_of, row_of = packed[:, 0], packed[:, 1]
    text_of = tf.gather(order, row_of)
    positions = [text_of * width + step_of,  # the forward direction reads t, the backward one length - 1 - t
                 text_of * width + tf.gather(sorted_lengths, row_of) - 1 - step_of][: len(directions)]
    flat = tf.reshape(vectors, [batch * width, -1])  # [batch * seq_len, emb_dim]
    inputs = [d.project(tf.gather(flat, at)) for d, at in zip(directions, positions)]  # each [rows, 3 * units]
    recurrent = [value for d in directions for value in d.weights()]  # each direction's kernel, then bias
    pooled = _gru_max_pool(running, row_of, batch, [d.units for d in directions], *inputs, *recurrent)
    pooled = tf.gather(pooled, tf.math.invert_permutation(order))  # input order
    return tf.where(lengths[:, None] > 0, pooled, 0.0)


def _gru_max_pool(running, row_of, batch, units, *tensors):
    """The packed loop with its own gradient: `tensors` are each direction's packed input projections
    `[rows, 3 * units]`, then each direction's recurrent kernel and bias; returns the pooled states in loop order."""
    count = len(units)
    steps = tf.shape(running)[0]

    def array(dim, size):
        return tf.TensorArray(tf.float32, size=size, element_shape=tf.TensorShape([None, dim]), infer_shape=False)

    @tf.custom_gradient
    def loop(*tensors):
        inputs, kernels, biases = tensors[:count], tensors[count::2], tensors[count + 1::2]
        input_steps = [array(3 * u, steps).split(x, running) for u, x in zip(units, inputs)]

        def body(t, *arrays):  # per direction: outputs (entry 0 the zero initial state, t + 1 step t's), gates
            arrays = list(arrays)
            for k in range(STEPS_PER_ITERATION):
                n = running[t + k]
                for d, u in enumerate(units):
                    h = arrays[2 * d].read(t + k)[:n]  # [n, units]
                    h, gates, candidate, inner_h = gru_step(input_steps[d].read(t + k), h, kernels[d], biases[d], u)
                    arrays[2 * d] = arrays[2 * d].write(t + k + 1, h)
                    arrays[2 * d + 1] = arrays[2 * d + 1].write(t + k, tf.concat([gates, candidate, inner_h], 1))
            return (t + STEPS_PER_ITERATION, *arrays)

        arrays = [each for u in units for each in (array(u, steps + 1).write(0, tf.zeros([batch, u])),
                                                   array(4 * u, steps))]
        _, *arrays = tf.while_loop(lambda t, *_: t < steps, body, [tf.constant(0), *arrays])
        states = [arrays[2 * d].concat() for d in range(count)]  # [batch + rows, units]: zeros, then each step's
        outputs = [s[batch:] for s in states]  # [rows, units]
        pooled = [tf.math.unsorted_segment_max(o, row_of, batch) for o in outputs]  # [batch, units]

        def gradient(upstream):
            upstream = tf.split(tf.convert_to_tensor(upstream), units, axis=1)
            # the pooled gradient reaches the step(s) where each unit's maximum was
            from_pool = [array(u, steps).split(tf.where(tf.equal(o, tf.gather(p, row_of)), tf.gather(g, row_of), 0.0),
                                               running) for u, o, p, g in zip(units, outputs, pooled, upstream)]

            def back(t, *carried):
                carried = list(carried)  # per direction: the state's gradient (rows running at t + 1), then
                # the arrays of the input projections' and the recurrent product's gradients
                for k in range(STEPS_PER_ITERATION):
                    step, n = t - k, running[t - k]
                    for d, u in enumerate(units):
                        gates, candidate, inner_h = tf.split(arrays[2 * d + 1].read(step), [2 * u, u, u], axis=1)
                        z, r = tf.split(gates, 2, axis=1)
                        h = arrays[2 * d].read(step)[:n]
                        dh = carried[3 * d]
                        dh = tf.pad(dh, [[0, n - tf.shape(dh)[0]], [0, 0]]) + from_pool[d].read(step)  # [n, units]
                        d_candidate = dh * (1.0 - z) * (1.0 - candidate * candidate)  # before the tanh
                        d_gates = tf.concat([dh * (h - candidate), d_candidate * inner_h], 1) * (gates * (1.0 - gates))
                        d_inner = tf.concat([d_gates, d_candidate * r], 1)  # [n, 3 * units]
                        carried[3 * d] = dh * z + tf.matmul(d_inner, kernels[d], transpose_b=True)
                        carried[3 * d + 1] = carried[3 * d + 1].write(step, tf.concat([d_gates, d_candidate], 1))
                        carried[3 * d + 2] = carried[3 * d + 2].write(step, d_inner)
                return (t - STEPS_PER_ITERATION, *carried)

            carried = [value for u in units for value in (tf.zeros([0, u]), array(3 * u, steps), array(3 * u, steps))]
            invariants = [shape for u in units for shape in (tf.TensorShape([None, u]), tf.TensorShape(None),
                                                             tf.TensorShape(None))]
            _, *carried = tf.while_loop(lambda t, *_: t >= 0, back, [steps - 1, *carried],
                                        shape_invariants=[tf.TensorShape([]), *invariants])
            d_inputs, d_recurrent = [], []
            previous = _previous_rows(running, batch)  # each packed row's state before its step
            for d in range(count):
                d_inner = carried[3 * d + 2].concat()  # [rows, 3 * units]
                d_inputs.append(carried[3 * d + 1].concat())
                d_recurrent += [tf.matmul(tf.gather(states[d], previous), d_inner, transpose_a=True),
                                tf.reduce_sum(d_inner, axis=0)]
            return (*d_inputs, *d_recurrent)

        return tf.concat(pooled, axis=1), gradient

    return loop(*tensors)


def _previous_rows(running, batch):
    """For each packed row (step t, row i), the index of its previous state in `[batch zero rows, then each
    step's outputs]`: row i of the zeros at t = 0, else row i of step t - 1's outputs."""
    starts = tf.concat([[0], batch + tf.cumsum(running, exclusive=True)[:-1]], 0)  # [steps]
    steps_of = tf.repeat(tf.range(tf.shape(running)[0]), running)
    rows = tf.range(tf.reduce_sum(running)) - tf.repeat(tf.cumsum(running, exclusive=True), running)
    return tf.gather(starts, steps_of) + rows

