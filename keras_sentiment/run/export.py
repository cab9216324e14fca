"""The end-to-end serving model: raw strings in, sentiment out, as a versioned SavedModel.

Signature `serving_default`: input `text` (`tf.string`, `[None]`); outputs `scores` (float32
`[None, k]`, the class probabilities), `classes` (string `[None, k]`, the class names), `label`
(int32 `[None]`, the predicted class id) and `logits` (float32 `[None]`, or `[None, k]` for k > 2);
two-class exports also give `probability` (float32 `[None]`, P(second class), P(positive) for
sentiment), as before class names existed. The class names are also in `assets.extra/class_names.json`.
Signature `explain`: input `text`; outputs `tokens` (string `[None, None]`, "" at padding),
`attributions` (float32 `[None, None]`, Integrated Gradients, `keras_sentiment.core.explanation`),
`probability`, `logits` and `baseline_logits` (float32 `[None]`; the attributions of a text sum
to about `logits - baseline_logits`), `class_id` (the class explained: two classes, the second; more,
the predicted one) and `label` (the predicted class). Signature `explain_class`: inputs `text` and
`class_name` (string `[None]`, the class to explain per text, "" the default), the same outputs.
The vectorizer (vocabulary and standardization) is traced into the graph, so the export loads
with plain `tf.saved_model.load` in a process that never imports `keras_sentiment`, and TF
Serving consumes it unchanged.

A BERT export's word-piece tokenizer uses TensorFlow Text ops, which a server must register.
`tokenizer_in_graph=False` (`export --no-tokenizer`) leaves it out: the signature's input is
`token_ids` (int32 `[None, None]`, `[CLS] ... [SEP]`, 0-padded) and the export carries the
tokenizer in `assets.extra/tokenizer/` for `keras_sentiment.apps.client.BertTokenIds` to run on the
client. `ops_outside_core_tensorflow` lists what an export needs beyond core TensorFlow.

A one-layer recurrent export also holds its recurrence as a LiteRT model (one signature a direction) and the
signatures around it (`litert_token_ids`, `litert_outputs`): `score`, `serve` and the
Python API run those, the same numbers faster (`keras_sentiment.run.litert`); TF Serving and other clients keep
`serving_default`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tensorflow as tf

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.explanation import DEFAULT_STEPS
from keras_sentiment.core.integrated_gradients import CLASS_NAME_SPEC, make_class_explainer
from keras_sentiment.core.packed import direction_parts, packed_forward
from keras_sentiment.core.scorer import (TEXT_SPEC, TOKEN_IDS_SPEC, make_text_scorer, model_logits, per_text,
                                         serving_outputs)
from keras_sentiment.run.archive import SavedModelArchive
from keras_sentiment.run.atomic import write_json_atomically
from keras_sentiment.run.litert import add_litert_signatures, write_litert_recurrence
from keras_sentiment.run.loading import ops_used
from keras_sentiment.run.rundir import (CLASS_NAMES_FILE, CLIENT_TOKENIZER_DIR, EXPLAIN_CLASS_SIGNATURE, EXPLAIN_SIGNATURE,
                                        RECURRENCE_FILE, SENTIMENT_CLASSES, THRESHOLD_FILE, existing_versions,
                                        next_version)


def export_serving_model(model, encoder, export_dir, version=None, tokenizer_in_graph=True, explain_steps=DEFAULT_STEPS,
                         class_names=SENTIMENT_CLASSES, threshold=0.5):
    """Write the end-to-end model to `<export_dir>/<version>/`; returns that path.

    `class_names`: the model's classes in class-id order (as many as it has logits; 2 for one logit).
    `threshold`: two classes' decision threshold, applied to `label` (stored in `assets.extra/threshold.json`).

    `tokenizer_in_graph=False` (BERT encoders only): token ids in instead of text, see above; such
    an export has no `explain` signature. `explain_steps`: the Integrated Gradients steps of the
    `explain` signature.

    The version is written to a hidden temporary directory beside it and renamed into place
    in one step, so a server polling `export_dir` never sees a half-written version.

    Example:
    >>> path = export_serving_model(model, TextEncoder(vectorizer, 400), "saved_models/imdb_bigru")  # doctest: +SKIP
    >>> tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(["Great!"]))  # doctest: +SKIP
    """
    if not tokenizer_in_graph and not hasattr(encoder, "save_for_clients"):
        raise KerasSentimentError("--no-tokenizer is for bert_gru exports: a recurrent export's vectorizer uses core "
                                  "TensorFlow ops only, so every TF Serving build loads it with the text in the graph")
    units = model.output.shape[-1]
    if len(class_names) != (2 if units == 1 else units):
        raise KerasSentimentError(f"{len(class_names)} class names for a model of {2 if units == 1 else units} classes")
    if tokenizer_in_graph:
        score = make_text_scorer(encoder, model)
        archive = SavedModelArchive(layers=encoder.layers)  # the layers: the vocabulary's table
        archive.add_endpoint(name="serving_default", fn=lambda text: serving_outputs(score(text), class_names, threshold),
                              input_signature=[TEXT_SPEC])
        explain_class = make_class_explainer(encoder, model, class_names, explain_steps, threshold)
        # Not traced here: writing traces each endpoint, once (a trace here would add one)
        archive.add_endpoint(name=EXPLAIN_CLASS_SIGNATURE, fn=explain_class, input_signature=[TEXT_SPEC, CLASS_NAME_SPEC])
        # `explain` calls `explain_class` for the default class: one Integrated Gradients graph in the export, not two
        archive.add_endpoint(name=EXPLAIN_SIGNATURE, fn=lambda text: explain_class(text, tf.fill(tf.shape(text), "")),
                             input_signature=[TEXT_SPEC])
        parts = direction_parts(model)  # the recurrence's directions for LiteRT (`keras_sentiment.run.litert`)
        if parts is not None:
            add_litert_signatures(archive, encoder, parts[1],
                                  lambda logits: serving_outputs(per_text(logits), class_names, threshold))
    else:
        parts = None
        archive = SavedModelArchive()
        archive.add_endpoint(name="serving_default",
                             fn=lambda token_ids: serving_outputs(model_logits(model, token_ids), class_names, threshold),
                             input_signature=[TOKEN_IDS_SPEC])

    def write(folder):
        archive.write_out(folder)
        (folder / CLASS_NAMES_FILE).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(folder / CLASS_NAMES_FILE, list(class_names))
        if len(class_names) == 2:
            write_json_atomically(folder / THRESHOLD_FILE, {"threshold": threshold})
        # Read by `keras_sentiment.run.threads` before TensorFlow starts, to size its thread pools.
        write_json_atomically(folder / RECURRENCE_FILE, {"packed": tokenizer_in_graph and packed_forward(model) is not None})
        if not tokenizer_in_graph:
            encoder.save_for_clients(folder / CLIENT_TOKENIZER_DIR)
        if parts is not None:
            write_litert_recurrence(folder, parts[0])

    return write_version(export_dir, version, write)


def write_version(export_dir, version, write):
    """`<export_dir>/<version>/` (None: the next free version) filled by `write(folder)`; returns it.

    `write` fills a hidden folder beside it, renamed into place in one step, so a server polling
    `export_dir` never sees a half-written version; an existing version is never overwritten.
    """
    export_dir = Path(export_dir)
    version = int(version or next_version(export_dir))
    final = export_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists; versions are never overwritten")
    export_dir.mkdir(parents=True, exist_ok=True)
    tmp = export_dir / f".tmp-{version}-{os.getpid()}"
    try:
        write(tmp)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def prune_versions(export_dir, keep):
    """Remove all but the `keep` highest versions; returns the removed version numbers.

    Each version is first renamed to a hidden name (one step), so a server polling the base
    path sees it disappear whole, then deleted.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    export_dir = Path(export_dir)
    removed = existing_versions(export_dir)[:-keep]
    for version in removed:
        doomed = export_dir / f".removing-{version}-{os.getpid()}"
        os.rename(export_dir / str(version), doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    return removed


# Run in a fresh interpreter that imports tensorflow alone: this process may have registered
# TensorFlow Text's ops already, which would hide them.
_UNREGISTERED_IN_CORE = """
import json, sys
import tensorflow
from tensorflow.python.framework import op_def_registry
print(json.dumps([name for name in json.load(sys.stdin) if op_def_registry.get(name) is None]))
"""


def ops_outside_core_tensorflow(saved_model_dir):
    """The op types of a SavedModel that core TensorFlow does not register (sorted), e.g. TensorFlow Text's.

    A server (TF Serving, or `tf.saved_model.load` without `import tensorflow_text`) must
    register these to load the model; an empty list means any TensorFlow build of a recent
    enough version loads it.

    Example:
    >>> ops_outside_core_tensorflow("saved_models/imdb_bigru/1")  # doctest: +SKIP
    []
    """
    result = subprocess.run([sys.executable, "-c", _UNREGISTERED_IN_CORE], input=json.dumps(sorted(ops_used(saved_model_dir))),
                            capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])
