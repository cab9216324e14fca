"""The end-to-end serving model: raw strings in, sentiment out, as a versioned SavedModel.

Signature `serving_default`: input `text` (`tf.string`, `[None]`); outputs `probability`
(float32 `[None]`, P(positive)), `label` (int32 `[None]`) and `logits` (float32 `[None]`).
The vectorizer (vocabulary and standardization) is traced into the graph, so the export loads
with plain `tf.saved_model.load` in a process that never imports `keras_sentiment`, and TF
Serving consumes it unchanged.
"""

import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")


def make_text_scorer(encoder, model):
    """A `tf.function` mapping strings `[batch]` to logits `[batch]`; what the export serves.

    `encoder` maps strings to token ids (`TextEncoder`, `BertTextEncoder`); `model` maps token
    ids to logits `[batch, 1]`.
    """

    @tf.function(input_signature=[TEXT_SPEC], reduce_retracing=True)
    def score(text):
        token_ids = encoder(text)  # [batch, seq_len]
        return model(token_ids, training=False)[:, 0]  # [batch]

    return score


def next_version(export_dir):
    """The next free integer version under `export_dir` (1 when there is none)."""
    return max(existing_versions(export_dir), default=0) + 1


def existing_versions(export_dir):
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        return []
    return sorted(int(p.name) for p in export_dir.iterdir() if p.is_dir() and p.name.isdigit())


def export_serving_model(model, encoder, export_dir, version=None):
    """Write the end-to-end model to `<export_dir>/<version>/`; returns that path.

    The version is written to a hidden temporary directory beside it and renamed into place
    in one step, so a server polling `export_dir` never sees a half-written version.

    Example:
    >>> path = export_serving_model(model, TextEncoder(vectorizer, 400), "saved_models/imdb_bilstm")  # doctest: +SKIP
    >>> tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(["Great!"]))  # doctest: +SKIP
    """
    export_dir = Path(export_dir)
    version = int(version or next_version(export_dir))
    final = export_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists; versions are never overwritten")
    export_dir.mkdir(parents=True, exist_ok=True)
    tmp = export_dir / f".tmp-{version}-{os.getpid()}"
    score = make_text_scorer(encoder, model)

    def serve(text):
        logits = score(text)  # [batch]
        return {"probability": tf.sigmoid(logits), "label": tf.cast(logits > 0, tf.int32), "logits": logits}

    encoder(tf.constant([""]))  # builds the encoder's layers: ExportArchive tracks built layers only
    archive = keras.export.ExportArchive()
    archive.track(model)
    for layer in encoder.layers:
        archive.track(layer)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=[TEXT_SPEC])
    try:
        archive.write_out(str(tmp), verbose=False)
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
