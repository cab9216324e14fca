"""Where a training step of the shipped BiGRU goes, and what each per-step lever does to it (#36).

One batch of token ids `[batch, length]` (lengths 75-100% of `length`, right padded, as a length
bucket holds them), the model as `make train` builds it (BiGRU with masked max pooling, embedding
100, vocabulary 25,000), Adam with clipnorm 1.0. Each variant runs in its own process (thread
settings and the mixed-precision policy are fixed when TensorFlow starts); the median of 6 steps
after one warm-up step, in ms:

- `forward` / `forward+backward` / `step`: where a step's time goes (a `tf.function` each);
- `float32`: the step by Keras' layers (`model.train_on_batch`), as `train` ran it before the packed training;
- `packed`, `packed+intra_op=1`: the step as `train` runs it now (`keras_sentiment.core.packed_training`);
- `bf16`: Keras' `mixed_bfloat16` policy; `xla`: `jit_compile=True` (a fixed shape, compiled once);
- `intra_op=1`, `inter_op=1`: TensorFlow's thread pools (default: one thread per core each);
- `hidden=64`: 64 units per direction instead of 128; `batch=128`, `batch=256`: per review.

    python benchmarks/step_levers.py [--length 200] [--variants float32,bf16]
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHIPPED, machine  # noqa: E402

VARIANTS = {  # name: (environment, options)
    "parts": ({}, {"parts": True}),
    "float32": ({}, {}),
    "packed": ({}, {"packed": True}),
    "packed+intra_op=1": ({"TF_NUM_INTRAOP_THREADS": "1"}, {"packed": True}),
    "bf16": ({}, {"policy": "mixed_bfloat16"}),
    "xla": ({}, {"jit_compile": True}),
    "intra_op=1": ({"TF_NUM_INTRAOP_THREADS": "1"}, {}),
    "inter_op=1": ({"TF_NUM_INTEROP_THREADS": "1"}, {}),
    "hidden=64": ({}, {"hidden": 64}),
    "batch=128": ({}, {"batch": 128}),
    "batch=256": ({}, {"batch": 256}),
    "packed+batch=128": ({}, {"packed": True, "batch": 128}),
    "packed+batch=256": ({}, {"packed": True, "batch": 256}),
}


def cpu_flags(wanted=("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")):
    """The CPU flags that decide what the kernels can use (from /proc/cpuinfo; empty elsewhere)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [flag for flag in wanted if flag in flags]


def one_variant(options):
    """Runs in a child process: the median ms of the variant's step(s), as JSON on stdout."""
    import keras
    import numpy as np
    import tensorflow as tf

    if options.get("policy"):
        keras.mixed_precision.set_global_policy(options["policy"])
    from keras_sentiment.core.packed_training import fitted_by_packed_recurrence
    from keras_sentiment.core.recurrent import ModelConfig, build_model

    batch, length, vocab_size = options.get("batch", SHIPPED["batch_size"]), options["length"], SHIPPED["vocab_size"]
    keras.utils.set_random_seed(0)
    model = build_model(SHIPPED["arch"], ModelConfig(vocab_size=vocab_size, embedding_dim=SHIPPED["embedding_dim"],
                                                     hidden_dim=options.get("hidden", SHIPPED["hidden_dim"]),
                                                     num_layers=SHIPPED["num_layers"], pooling=SHIPPED["pooling"]))
    optimizer = keras.optimizers.Adam(SHIPPED["learning_rate"], clipnorm=1.0)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    rng = np.random.default_rng(0)
    ids = rng.integers(2, vocab_size, size=(batch, length)).astype("int32")
    ids[np.arange(length)[None, :] >= rng.integers(int(length * 0.75), length + 1, size=batch)[:, None]] = 0
    labels = rng.integers(0, 2, size=(batch, 1)).astype("float32")

    def median_ms(call):
        call()
        times = []
        for _ in range(6):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return round(1000 * sorted(times)[3], 1)

    if options.get("parts"):
        x, y = tf.constant(ids), tf.constant(labels)

        @tf.function
        def forward():
            return model(x, training=True)

        @tf.function
        def forward_backward():
            with tf.GradientTape() as tape:
                value = loss(y, model(x, training=True))
            gradients = tape.gradient(value, model.trainable_variables)
            return tf.add_n([tf.reduce_sum(g.values if isinstance(g, tf.IndexedSlices) else g) for g in gradients])

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                value = loss(y, model(x, training=True))
            optimizer.apply(tape.gradient(value, model.trainable_variables), model.trainable_variables)
            return value

        return {"forward": median_ms(lambda: forward().numpy()),
                "forward+backward": median_ms(lambda: forward_backward().numpy()),
                "step": median_ms(lambda: step().numpy())}
    model.compile(optimizer=optimizer, loss=loss, jit_compile=bool(options.get("jit_compile")))
    with fitted_by_packed_recurrence(model) if options.get("packed") else contextlib.nullcontext():
        ms = median_ms(lambda: model.train_on_batch(ids, labels))
    return {"step": ms, "per_review": round(ms / batch, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=200, help="tokens per row of the batch (a bucket's length)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_variant(json.loads(args.child))))
        return 0
    print(machine(), "flags:", " ".join(cpu_flags()) or "-")
    for name in args.variants.split(","):
        env, options = VARIANTS[name]
        child = subprocess.run([sys.executable, __file__, "--child", json.dumps({**options, "length": args.length})],
                               capture_output=True, text=True, check=False,
                               env={**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if child.returncode != 0:
            print(f"{name}: failed\n{child.stderr[-2000:]}", file=sys.stderr)
            return 1
        print(f"{name:<12} length {args.length}: {child.stdout.strip().splitlines()[-1]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
