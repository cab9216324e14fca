"""Batch scoring on Apache Beam: `score` for inputs that outgrow one process.

    keras-sentiment score --runner beam --model saved_models/imdb_bigru \\
        --input 'reviews/*.csv' --text-column review --id-column id --output out/scores.jsonl
    python -m keras_sentiment.apps.beam_score --model ... --input ... --output ... [Beam pipeline options]

The pipeline, top to bottom:

1. every file matching the `--input` globs (`fileio.MatchFiles`; a file is read whole by one
   worker, so many files are what spread the reading);
2. rows parsed by the same readers as `score` (CSV, TSV, JSONL, text; a row's id is its
   `--id-column`/`--id-field`, else its line number, as in `score`); a row that cannot be read
   goes to the dead-letter output with `file:line` and the reason, never stopping the rest;
3. Beam's `RunInference` with its TensorFlow model handler (`TFModelHandlerTensor`), keyed by
   row; each batch is scored in length-sorted slices of `--batch-size` (less padding);
4. sharded JSONL: `OUTPUT-00000-of-0000N.jsonl`, one `{"id", "source", "probability", "label"}`
   per scored row (`source` is `file:line`), and `OUTPUT.bad-rows-*.jsonl`, one
   `{"file", "line", "source", "reason"}` per bad row.

Beam writes each shard to a temporary folder and renames it on success, so a failed pipeline
leaves no partial output; rerun it (there is no `--resume`). The runner is any of Beam's: the
DirectRunner here, Dataflow, Flink or Spark with their own pipeline options (docs/SCALE.md).

`KerasSentimentModelHandler` loads our SavedModel (or run directory) as `score` does; batching,
model sharing and metrics stay Beam's.
"""

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path


class _QuietBeamNotices(logging.Filter):
    """Drop two warnings Beam logs on every start that concern features we do not use."""

    NOTICES = ("apitools not found", "Resource module is not available")

    def filter(self, record):
        return not str(record.msg).startswith(self.NOTICES)


logging.getLogger().addFilter(_QuietBeamNotices())

import apache_beam as beam  # noqa: E402  (after the filter: the import logs one of them)
from apache_beam.io import fileio  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402
from apache_beam.metrics.metric import Metrics, MetricsFilter  # noqa: E402
import numpy as np  # noqa: E402
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from keras_sentiment.core.errors import KerasSentimentError, MalformedDataError  # noqa: E402
from keras_sentiment.core.scorer import class_probabilities, predicted_classes, score_texts  # noqa: E402
from keras_sentiment.run.loading import load_scorer  # noqa: E402
from keras_sentiment.run.readers import INPUT_FORMATS, InputReader, Row, ScoreOptions, detect_format  # noqa: E402
from keras_sentiment.run.rundir import (SENTIMENT_CLASSES, is_run_dir, not_a_model_message, read_class_names,  # noqa: E402
                                        read_threshold, resolve_saved_model)

BAD_ROWS = "bad_rows"
METRICS = "keras_sentiment"
# Beam's batches hold this many --batch-size slices, sorted by length inside (as `score`'s window).
# Fixed, not Beam's adaptive size: that starts at one row and grows, and small unsorted batches pad
# every review to the longest of a few (IMDB test: 114 reviews/s adaptive vs 352 for `score`).
SLICES_PER_BATCH = 8


# ------------------------------------------------------------------------------ model handler


def score_batch(scorer, texts, inference_args, model_id=None, batch_size=256):
    """Beam's `inference_fn`: one `PredictionResult` (the logit; k > 2 classes: the list of k) per text, in input order."""
    logits = score_texts(scorer, list(texts), batch_size)
    return [PredictionResult(text, logit.tolist(), model_id) for text, logit in zip(texts, logits)]


class KerasSentimentModelHandler(ModelHandler):
    """Beam's model handler for a keras-sentiment export; elements are review strings.

    Built on Beam's generic `ModelHandler`, not its TensorFlow one: that module imports
    tensorflow-hub, whose `pkg_resources` import fails under a current setuptools, and it loads
    with `tf.keras.models.load_model`, which under Keras 3 reads only `.keras` files. So this
    handler loads our SavedModel (or run directory) as `score` does; batching, model sharing and
    metrics stay Beam's.

    Args:
        model: SavedModel version dir, export base (latest version) or run directory.
        batch_size: texts per model call; Beam batches up to `SLICES_PER_BATCH` times that.

    Example:
    >>> handler = KerasSentimentModelHandler("saved_models/imdb_bigru")  # doctest: +SKIP
    >>> with beam.Pipeline() as p:  # doctest: +SKIP
    ...     p | beam.Create(["Great film.", "Dull."]) | RunInference(handler) | beam.Map(print)
    """

    def __init__(self, model, batch_size=256):
        super().__init__(min_batch_size=batch_size * SLICES_PER_BATCH, max_batch_size=batch_size * SLICES_PER_BATCH)
        self._model_uri, self._batch_size = str(model), batch_size

    def load_model(self):
        return load_scorer(self._model_uri)

    def run_inference(self, batch, model, inference_args=None):
        return score_batch(model, batch, inference_args, batch_size=self._batch_size)

    def get_num_bytes(self, batch):
        return sum(len(text.encode("utf-8")) for text in batch)

    def get_metrics_namespace(self):
        return "BeamML_KerasSentiment"


# ------------------------------------------------------------------------------ reading rows


class ReadRows(beam.DoFn):
    """A matched file -> `((id, "file:line"), text)` per row; bad rows to the `bad_rows` output."""

    def __init__(self, options):
        self.options = options
        self.rows = Metrics.counter(METRICS, "rows_read")
        self.bad = Metrics.counter(METRICS, "bad_rows")

    def process(self, readable_file):
        path = readable_file.metadata.path
        input_format = detect_format(path, INPUT_FORMATS, "input", self.options.input_format)
        options = ScoreOptions(**{**asdict(self.options), "input_format": input_format})
        with readable_file.open() as handle:
            try:
                reader = InputReader(path, options, handle=handle)
            except MalformedDataError as error:  # the header: the whole file is unreadable
                self.bad.inc()
                yield beam.pvalue.TaggedOutput(BAD_ROWS, bad_row_record(path, error.line, error.reason))
                return
            for item in reader:
                if isinstance(item, Row):
                    self.rows.inc()
                    yield (item.id, f"{path}:{item.line}"), item.text
                else:
                    self.bad.inc()
                    yield beam.pvalue.TaggedOutput(BAD_ROWS, bad_row_record(path, item.line, item.reason))


def bad_row_record(path, line, reason):
    return json.dumps({"file": path, "line": line, "source": f"{path}:{line}", "reason": reason}, ensure_ascii=False)


def prediction_record(keyed_result, class_names=SENTIMENT_CLASSES, threshold=0.5):
    """A JSON line as `score` writes it: `probability` and `label` for two classes (the second above the
    decision `threshold`), else `class`, `label` and `scores`."""
    (row_id, source), result = keyed_result
    logits = np.asarray([result.inference], "float64")  # [1] or [1, k]
    label, probabilities = int(predicted_classes(logits, threshold)[0]), class_probabilities(logits)[0]
    if len(class_names) == 2:
        record = {"probability": float(probabilities[1]), "label": label}
    else:
        record = {"class": class_names[label], "label": label,
                  "scores": {name: float(p) for name, p in zip(class_names, probabilities)}}
    return json.dumps({"id": row_id, "source": source, **record}, ensure_ascii=False)


# ------------------------------------------------------------------------------ the pipeline


def build_pipeline(pipeline, model, patterns, output, options, batch_size=256, num_shards=0):
    """Add read -> RunInference -> sharded JSONL (and the dead-letter output) to `pipeline`."""
    prefix, suffix = output_prefix(output)
    files = (
        pipeline
        | "Globs" >> beam.Create(patterns)
        | "MatchFiles" >> fileio.MatchAll()
        | "ReadMatches" >> fileio.ReadMatches()
    )
    rows = files | "ReadRows" >> beam.ParDo(ReadRows(options)).with_outputs(BAD_ROWS, main="rows")
    (
        rows.rows
        | "RunInference" >> RunInference(KeyedModelHandler(KerasSentimentModelHandler(model, batch_size)))
        | "ToJson" >> beam.Map(prediction_record, read_class_names(model), read_threshold(model))
        | "WriteScores" >> beam.io.WriteToText(prefix, file_name_suffix=suffix, num_shards=num_shards)
    )
    rows[BAD_ROWS] | "WriteBadRows" >> beam.io.WriteToText(prefix + ".bad-rows", file_name_suffix=suffix, num_shards=1)


def output_prefix(output):
    """`scores.jsonl` -> (`scores`, `.jsonl`): shards are `scores-00000-of-00004.jsonl`."""
    for ending in (".jsonl", ".ndjson", ".json"):
        if output.endswith(ending):
            return output[: -len(ending)], ending
    return output, ".jsonl"


def matched_inputs(patterns, input_format):
    """Every file the globs match; a pattern matching nothing, or an unknown extension, is a one-line error."""
    files = []
    for pattern, result in zip(patterns, FileSystems.match(list(patterns))):
        if not result.metadata_list:
            raise KerasSentimentError(f"{pattern}: no input file matches")
        files += [m.path for m in result.metadata_list]
    if input_format is None:
        for path in files:
            detect_format(path, INPUT_FORMATS, "input")
    return files


def resolved_model(model):
    """A local model as the exact SavedModel version every worker will load (a newer version
    appearing mid-run must not mix into the output), checked before the pipeline starts.
    A remote path (`gs://...`) is passed on as given; the workers report a bad one."""

    model = str(model)
    if "://" in model or is_run_dir(model):
        return model
    saved_model = resolve_saved_model(model)
    if saved_model is None:
        raise KerasSentimentError(not_a_model_message(model))
    return str(saved_model)


def existing_outputs(output):
    prefix, suffix = output_prefix(output)
    pattern = f"{prefix}-*-of-*{suffix}"
    return [m.path for m in FileSystems.match([pattern])[0].metadata_list]


def score_on_beam(model, patterns, output, options, runner="DirectRunner", pipeline_args=(), batch_size=256,
                  num_shards=0, overwrite=False):
    """Run the pipeline to completion; returns `{"rows", "bad_rows", "files", "seconds"}`.

    Args:
        model: SavedModel dir, export base or run directory (readable by the workers).
        patterns: input file globs (local paths or any Beam filesystem, e.g. `gs://`).
        output: output prefix, e.g. `out/scores.jsonl` -> `out/scores-00000-of-00002.jsonl`.
        options: a `ScoreOptions` (its `input_format` None: each file's from its extension).
        runner: a Beam runner name; `pipeline_args`: its other pipeline options.
        num_shards: output shards (0: the runner decides).
    """
    model = resolved_model(model)
    files = matched_inputs(patterns, options.input_format)
    found = existing_outputs(output)
    if found and not overwrite:
        raise KerasSentimentError(f"{found[0]} exists (and {len(found) - 1} more shards); pass --overwrite to replace")
    pipeline_options = PipelineOptions(["--runner", runner, *pipeline_args])
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=pipeline_options)
    build_pipeline(pipeline, model, patterns, output, options, batch_size, num_shards)
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception:
        remove_temporary_shards(output)
        raise
    counters = {c.key.metric.name: c.committed for c in result.metrics().query(MetricsFilter().with_namespace(METRICS))["counters"]}
    return {"rows": counters.get("rows_read", 0), "bad_rows": counters.get("bad_rows", 0), "files": len(files),
            "seconds": time.perf_counter() - start}


def remove_temporary_shards(output):
    """Beam leaves `beam-temp-*` folders beside a failed pipeline's local output; nothing in them is final."""

    if "://" in output:
        return
    prefix = Path(output_prefix(output)[0])
    for folder in prefix.parent.glob(f"beam-temp-{prefix.name}-*"):
        shutil.rmtree(folder, ignore_errors=True)
