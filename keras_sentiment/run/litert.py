"""An export's recurrence by LiteRT: each direction a float32 LiteRT model, the directions side by side.

Why: TensorFlow's executor spends about a microsecond or two on each operation, and a step of the packed
recurrence (`keras_sentiment.core.packed`) is about twenty small operations a direction, so on a server's small
batches most of a call is the executor's own work. LiteRT's interpreter (with its default XNNPACK delegate) runs
the same operations with less overhead each; one interpreter a direction, each on its own thread, keeps the two
directions side by side as TensorFlow's inter-op pool did. The numbers are the same (float32, the same operations;
logits within ~2e-6). Measured in docs/PERFORMANCE.md, "Scoring and serving the shipped model".

An export that `export_serving_model` wrote for a model `packed.direction_parts` splits holds, besides its usual
signatures (which TF Serving and every other client keep using):
- the signatures `litert_token_ids` (`text` -> `token_ids`) and `litert_outputs` (`token_ids`, `pooled` of every
  direction -> the outputs of `serving_default`);
- `assets.extra/litert/recurrence.tflite`: one float32 LiteRT model with a signature a direction,
  `litert_direction_<i>` (`token_ids` -> direction i's `pooled` states; the weights they share, the embeddings, stored
  once). It is converted from a scratch SavedModel of the directions alone: converting from the export itself would
  load all of it (the explain graphs too) twice, ~3x the time. Exports written before that also hold the direction
  signatures in the SavedModel; nothing reads them there.
`LiteRecurrence.of(...)` runs them for `score`, `serve`, `evaluate` and the Python API: strings -> the outputs of
`serving_default`. `KERAS_SENTIMENT_LITERT=off` in the environment keeps every export on its SavedModel alone.
"""

import os
import queue
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_sentiment.core.scorer import TEXT_SPEC, TOKEN_IDS_SPEC
from keras_sentiment.run.archive import SavedModelArchive

LITERT_FILE = Path("assets.extra") / "litert" / "recurrence.tflite"
TOKEN_IDS_SIGNATURE, OUTPUTS_SIGNATURE, DIRECTION_SIGNATURE = "litert_token_ids", "litert_outputs", "litert_direction_{}"
SWITCH = "KERAS_SENTIMENT_LITERT"  # "off": never use the LiteRT files of an export
POOLED_SPEC = tf.TensorSpec([None, None], tf.float32, name="pooled")  # [batch, sum of the directions' units]


def add_litert_signatures(archive, encoder, head, serving_outputs_of):
    """The signatures `LiteRecurrence` needs besides the LiteRT model, added to a `SavedModelArchive`:
    `litert_token_ids` (the export's own encoder) and `litert_outputs` (`head`, from `packed.direction_parts`, then
    `serving_outputs_of` the logits, as `serving_default` does)."""
    archive.add_endpoint(name=TOKEN_IDS_SIGNATURE, fn=lambda text: {"token_ids": tf.cast(encoder(text), tf.int32)},
                         input_signature=[TEXT_SPEC])
    archive.add_endpoint(name=OUTPUTS_SIGNATURE,
                         fn=lambda token_ids, pooled: serving_outputs_of(head(token_ids, pooled)),
                         input_signature=[TOKEN_IDS_SPEC, POOLED_SPEC])


def write_litert_recurrence(saved_model_dir, directions):
    """`directions` (from `packed.direction_parts`) as one LiteRT model, a signature `litert_direction_<i>` each,
    written into the export at `saved_model_dir`.

    Returns whether it was written: LiteRT only makes scoring faster, so a conversion that fails (a converter of
    another TensorFlow build, an op it lacks) costs the user a slower export, never the export (and the training
    before it). Without the file, `LiteRecurrence.of` gives None and the export scores by TensorFlow alone.
    """
    keys = [DIRECTION_SIGNATURE.format(i) for i in range(len(directions))]
    try:
        with tempfile.TemporaryDirectory(prefix="litert-") as scratch:  # the directions alone, as a SavedModel
            archive = SavedModelArchive()
            for key, direction in zip(keys, directions):
                archive.add_endpoint(name=key, fn=_pooled_states_of(direction), input_signature=[TOKEN_IDS_SPEC])
            archive.write_out(scratch)
            content = tf.lite.TFLiteConverter.from_saved_model(scratch, signature_keys=keys).convert()
    except Exception as error:  # the converter raises many kinds (ConverterError, RuntimeError, ValueError ...)
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        print(f"LiteRT: the recurrence could not be converted ({type(error).__name__}: {reason}); the export scores "
              "by TensorFlow alone (the same outputs, slower)", flush=True)
        return False
    (Path(saved_model_dir) / LITERT_FILE).parent.mkdir(parents=True, exist_ok=True)
    (Path(saved_model_dir) / LITERT_FILE).write_bytes(content)
    return True


def _pooled_states_of(direction):
    return lambda token_ids: {"pooled": direction(token_ids)}  # [batch, units]


class LiteRecurrence:
    """`serving_default`'s outputs for strings, the recurrence run by LiteRT (see the module docstring).

    Safe to call from several threads at once: each call takes a set of interpreters of its own (a new set when
    every set is busy), and a shared pool runs a set's directions side by side.

    Example:
    >>> signatures = tf.saved_model.load("saved_models/imdb_bigru/1").signatures  # doctest: +SKIP
    >>> LiteRecurrence.of("saved_models/imdb_bigru/1", signatures)(["A fine film."])["probability"]  # doctest: +SKIP
    <tf.Tensor: shape=(1,), dtype=float32, numpy=array([0.93], dtype=float32)>
    """

    @classmethod
    def of(cls, saved_model_dir, signatures):
        """For an export (its folder and its loaded `signatures`) with the LiteRT model and signatures, else None
        (and always None under `KERAS_SENTIMENT_LITERT=off`)."""
        file = Path(saved_model_dir) / LITERT_FILE
        if os.environ.get(SWITCH, "").lower() in ("off", "0", "false", "no") or not file.is_file() \
                or not {TOKEN_IDS_SIGNATURE, OUTPUTS_SIGNATURE} <= set(signatures):
            return None
        return cls(file, signatures[TOKEN_IDS_SIGNATURE], signatures[OUTPUTS_SIGNATURE])

    def __init__(self, file, token_ids, outputs):
        """`file`: the LiteRT model, a signature `litert_direction_<i>` a direction; `token_ids`, `outputs`: the
        export's signatures of those names."""
        self.file, self.token_ids, self.outputs = str(file), token_ids, outputs
        directions = self._interpreter().get_signature_list()
        self.keys = sorted(directions, key=lambda key: int(key.rsplit("_", 1)[1]))  # litert_direction_<i>, by i
        self.free = queue.SimpleQueue()  # sets of direction runners not in use
        self.pool = ThreadPoolExecutor(max_workers=len(self.keys), thread_name_prefix="litert")
        self.free.put(self._runners())

    def _interpreter(self):
        with warnings.catch_warnings():  # tf.lite.Interpreter warns of its move to ai_edge_litert
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=self.file, num_threads=1)

    def _runners(self):
        """One direction each, each in an interpreter of its own: a runner may run beside the others."""
        return [self._interpreter().get_signature_runner(key) for key in self.keys]

    def __call__(self, text):
        """Strings `[batch]` -> the outputs of `serving_default` (a dict of tensors)."""
        ids = self.token_ids(text=tf.convert_to_tensor(text, tf.string))["token_ids"].numpy()  # [batch, seq_len]
        try:
            runners = self.free.get_nowait()
        except queue.Empty:
            runners = self._runners()
        try:
            # the other directions on the pool, the first here: each interpreter releases Python's lock as it runs
            others = [self.pool.submit(runner, token_ids=ids) for runner in runners[1:]]
            pooled = np.concatenate([runners[0](token_ids=ids)["pooled"]] + [o.result()["pooled"] for o in others], axis=1)
        finally:
            self.free.put(runners)
        return self.outputs(token_ids=tf.constant(ids), pooled=tf.constant(pooled))
