"""Which CPU kernel should run the exported LSTM? One masked LSTM layer, three ways.

- `keras_fp32`: `keras.layers.LSTM` as exported today (on CPU Keras runs its generic masked
  recurrence: a `tf.while_loop` of small ops per time step).
- `block_fp32`: TensorFlow's fused CPU kernel `tf.raw_ops.BlockLSTMV2` (the op behind the old
  `LSTMBlockCell`; IFCO gate order like Keras, so Keras' weights plug in unchanged) on the same
  weights; each text's state is read at its last real token, so the result equals Keras'.
- `keras_bf16`: the Keras layer under the `mixed_bfloat16` policy (bf16 matmuls, which this
  CPU runs on AMX/AVX512-BF16 units).

Shapes are the reference BiLSTM's two layers (input 100 and 256, hidden 128) on a batch of 256
texts of 150-230 tokens (a length-sorted IMDB batch is about that). Interleaved rounds, median.

    python benchmarks/lstm_kernels.py [--rounds 5]

Prints ms per batch per design and layer, the largest difference from `keras_fp32`, and
`speedup_block=X speedup_bf16=Y` (keras_fp32 time over each, both layers summed).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

BATCH, MAX_LEN, HIDDEN = 256, 230, 128


def keras_lstm(input_dim, policy):
    keras.mixed_precision.set_global_policy(policy)
    layer = keras.layers.LSTM(HIDDEN)
    layer.build((None, None, input_dim))
    keras.mixed_precision.set_global_policy("float32")
    return layer


def block_lstm_last_state(layer):
    """The Keras layer's weights run by `BlockLSTMV2`; returns `fn(x, lengths) -> [batch, hidden]`."""
    cell = layer.cell
    weights = tf.concat([cell.kernel, cell.recurrent_kernel], axis=0)  # [input + hidden, 4 * hidden]
    no_peephole = tf.zeros([HIDDEN])

    def run(x, lengths):
        batch = tf.shape(x)[0]
        zeros = tf.zeros([batch, HIDDEN])
        outputs = tf.raw_ops.BlockLSTMV2(
            seq_len_max=tf.cast(tf.shape(x)[1], tf.int64), x=tf.transpose(x, [1, 0, 2]),  # [seq_len, batch, input]
            cs_prev=zeros, h_prev=zeros, w=weights, wci=no_peephole, wcf=no_peephole, wco=no_peephole,
            b=cell.bias, cell_clip=0.0, use_peephole=False,
        )
        states = tf.transpose(outputs[6], [1, 0, 2])  # h: [batch, seq_len, hidden]
        return tf.gather(states, lengths - 1, batch_dims=1)  # [batch, hidden], state at the last real token

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per design and layer")
    args = parser.parse_args()
    print(machine(), flush=True)
    keras.utils.set_random_seed(0)
    lengths = tf.random.uniform([BATCH], 150, MAX_LEN + 1, dtype=tf.int32)
    totals = {"keras_fp32": 0.0, "block_fp32": 0.0, "keras_bf16": 0.0}
    for input_dim in (100, 2 * HIDDEN):
        x = tf.random.normal([BATCH, MAX_LEN, input_dim])
        reference = keras_lstm(input_dim, "float32")
        bf16 = keras_lstm(input_dim, "mixed_bfloat16")
        bf16.set_weights(reference.get_weights())
        designs = {
            "keras_fp32": tf.function(lambda x, lengths: reference(x, mask=tf.sequence_mask(lengths, tf.shape(x)[1]))),
            "block_fp32": tf.function(block_lstm_last_state(reference)),
            "keras_bf16": tf.function(lambda x, lengths: tf.cast(bf16(x, mask=tf.sequence_mask(lengths, tf.shape(x)[1])), "float32")),
        }
        expected = designs["keras_fp32"](x, lengths).numpy()
        times = {name: [] for name in designs}
        for name, fn in designs.items():  # warm-up (tracing) and the equality check
            difference = abs(fn(x, lengths).numpy() - expected).max()
            print(f"input {input_dim}: {name} max |difference| from keras_fp32 = {difference:.2e}", flush=True)
        for round_ in range(args.rounds):
            for name in designs if round_ % 2 == 0 else list(designs)[::-1]:
                start = time.perf_counter()
                designs[name](x, lengths).numpy()
                times[name].append(time.perf_counter() - start)
        for name, runs in times.items():
            totals[name] += statistics.median(runs)
            print(f"input {input_dim}: {name} {1000 * statistics.median(runs):.0f} ms per batch "
                  f"(runs: {', '.join(f'{1000 * r:.0f}' for r in runs)})", flush=True)
    print(f"speedup_block={totals['keras_fp32'] / totals['block_fp32']:.2f} "
          f"speedup_bf16={totals['keras_fp32'] / totals['keras_bf16']:.2f}")


if __name__ == "__main__":
    main()
