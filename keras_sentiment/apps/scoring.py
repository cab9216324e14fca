"""Batch scoring: stream a CSV, TSV, JSONL or text file through a model into JSONL or CSV.

The input is read line by line from a byte offset, so memory stays bounded by one window of
rows whatever the file size, and an interrupted run can continue from the last row written.
Output goes to `<output>.partial`; after every window the rows are flushed and a small state
file records how far input and output got, so `--resume` truncates the partial output to that
point and seeks the input there: no row is written twice or lost. The finished output is
renamed into place in one step.

Every row's id is its `--id-column` / `--id-field` value, or else the line number where the row
starts in the input (1-based; a CSV header is line 1).
"""

import csv
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from keras_sentiment.core.errors import KerasSentimentError, MalformedDataError
from keras_sentiment.core.scorer import class_probabilities, predicted_classes, score_texts
from keras_sentiment.run.loading import load_scorer
from keras_sentiment.run.readers import BadRow, InputReader, Row
from keras_sentiment.run.rundir import (SENTIMENT_CLASSES, is_run_dir, read_class_names, read_threshold,
                                        resolve_saved_model)

ON_ERROR = ("fail", "skip")
STATE_VERSION = 1


@dataclass
class ScoreReport:
    output: Path
    rows: int = 0
    skipped: int = 0
    skipped_file: Path = None
    seconds: float = 0.0
    resumed_rows: int = 0
    new_rows: int = 0
    skipped_examples: list = field(default_factory=list)

    @property
    def rows_per_second(self):
        """Rows scored by this run (not the resumed ones) per second of this run."""
        return self.new_rows / self.seconds if self.seconds else 0.0


class PartialFile:
    """An output file written as `<path>.partial`, truncatable back to a recorded size."""

    def __init__(self, path, size=0):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        mode = "r+b" if size else "wb"
        if size and not self.partial.exists():
            raise KerasSentimentError(f"cannot resume: {self.partial} is missing")
        self.handle = open(self.partial, mode)
        self.handle.truncate(size)
        self.handle.seek(size)

    def write(self, text):
        self.handle.write(text.encode("utf-8"))

    def flush(self):
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self.handle.tell()

    def finish(self):
        self.handle.close()
        os.replace(self.partial, self.path)

    def close(self):
        self.handle.close()


class OutputWriter:
    """Rows of scores: `id, probability, label` for a two-class model (P(second class), its id); with k > 2
    classes `id, class, label` and each class's probability (JSONL: `scores`, a name -> probability object)."""

    def __init__(self, partial, output_format, class_names=SENTIMENT_CLASSES, threshold=0.5):
        self.partial, self.format, self.class_names, self.threshold = partial, output_format, tuple(class_names), threshold
        self.many = len(self.class_names) > 2
        if output_format == "csv":
            self._csv = csv.writer(self, lineterminator="\n")
            if partial.handle.tell() == 0:
                self._csv.writerow(["id", "class", "label", *self.class_names] if self.many else ["id", "probability", "label"])

    def write(self, text):  # the file-like target of csv.writer
        self.partial.write(text)

    def write_rows(self, rows, logits):
        """One output row per input row, from the model's logits (`[n]` or `[n, k]`)."""
        for row, label, probabilities in zip(rows, predicted_classes(logits, self.threshold), class_probabilities(logits)):
            if self.many:
                self.write_classes(row.id, int(label), [float(p) for p in probabilities])
            else:
                self.write_row(row.id, float(probabilities[1]), int(label))

    def write_row(self, row_id, probability, label):
        if self.format == "csv":
            self._csv.writerow([row_id, repr(probability), label])
        else:
            self.partial.write(json.dumps({"id": row_id, "probability": probability, "label": label},
                                          ensure_ascii=False) + "\n")

    def write_classes(self, row_id, label, probabilities):
        name = self.class_names[label]
        if self.format == "csv":
            self._csv.writerow([row_id, name, label, *map(repr, probabilities)])
        else:
            self.partial.write(json.dumps({"id": row_id, "class": name, "label": label,
                                           "scores": dict(zip(self.class_names, probabilities))}, ensure_ascii=False) + "\n")


def state_path(output):
    output = Path(output)
    return output.with_name(output.name + ".partial.state.json")


def _write_state(path, state):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def _input_identity(path):
    stat = Path(path).stat()
    return {"input": str(Path(path).resolve()), "input_size": stat.st_size, "input_mtime_ns": stat.st_mtime_ns}


def _progress_bar(total_bytes, enabled):
    return tqdm(total=total_bytes, unit="B", unit_scale=True, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, desc="scoring",
                bar_format="{l_bar}{bar}| {n_fmt}B/{total_fmt}B{postfix} [{elapsed}<{remaining}]")


def windows(items, max_rows, max_bytes):
    """Consecutive lists of `items`, each closed at `max_rows` items or once its texts reach `max_bytes` (UTF-8).

    The byte bound keeps a file of long rows from filling memory: 2,048 rows of 1 MB are 2 GB
    of text, and more once tokenized. A single row larger than `max_bytes` is a window alone.
    """
    window, size = [], 0
    for item in items:
        window.append(item)
        size += len(item.text.encode("utf-8")) if isinstance(item, Row) else 0
        if len(window) >= max_rows or size >= max_bytes:
            yield window
            window, size = [], 0
    if window:
        yield window


def score_file(model, input_path, output_path, options, batch_size=256, on_error="fail", resume=False,
               overwrite=False, progress=True, window_batches=8, window_bytes=64 * 2**20):
    """Score every row of `input_path` with `model`, writing `output_path`; returns a `ScoreReport`.

    Args:
        model: a SavedModel directory, an export base (its latest version; a resumed run keeps
            the version it started with) or a run directory.
        input_path: CSV, TSV, JSONL or text file (one review per line).
        output_path: JSONL (default) or CSV (`.csv`) file of `id, probability, label`.
        options: a `ScoreOptions` (formats, column and field names).
        batch_size: texts per model call.
        on_error: "fail" stops at the first bad row with `file:line` and the reason; "skip"
            skips it and lists it in `<output>.skipped.jsonl`.
        resume: continue an interrupted run from its `.partial` output.
        overwrite: replace an existing finished output.
        window_batches: batches read ahead and sorted by length; bounds memory.
        window_bytes: and at most this many bytes of text read ahead (long rows: fewer of them).

    Example:
    >>> report = score_file("saved_models/imdb_bigru", "reviews.csv", "scores.jsonl",
    ...                     ScoreOptions("csv", "jsonl", text_column="review"))  # doctest: +SKIP
    """

    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise KerasSentimentError(f"{input_path}: no such input file")
    skipped_path = output_path.with_name(output_path.name + ".skipped.jsonl")
    state_file = state_path(output_path)

    state = None
    if state_file.exists():
        if not resume:
            raise KerasSentimentError(
                f"{output_path}.partial is an interrupted run: pass --resume to continue it, or delete "
                f"{output_path}.partial and {state_file.name} to start over"
            )
        state = json.loads(state_file.read_text())
    elif resume:
        print(f"nothing to resume for {output_path}: starting from the first row", file=sys.stderr)
    if output_path.exists() and not overwrite and state is None:
        raise KerasSentimentError(f"{output_path} exists; pass --overwrite to replace it")
    output_path.parent.mkdir(parents=True, exist_ok=True)

    identity = _input_identity(input_path)
    settings = {"options": asdict(options)}  # --on-error may change: e.g. resume a failed run with skip
    if state is None:
        model_path = Path(model) if is_run_dir(model) else resolve_saved_model(model)
        state = {"version": STATE_VERSION, **identity, **settings, "model": str(model_path) if model_path else None,
                 "input_offset": 0, "input_line": 0, "rows": 0, "skipped": 0, "output_bytes": 0, "skipped_bytes": 0}
    else:
        for key, value in {**identity, **settings}.items():
            if state.get(key) != value:
                raise KerasSentimentError(
                    f"cannot resume {output_path}: {key} was {state.get(key)!r} and is now {value!r}; "
                    f"delete {output_path}.partial and {state_file.name} to start over"
                )
    scorer = load_scorer(state["model"] or model)  # the error for a bad path comes from here

    report = ScoreReport(output_path, resumed_rows=state["rows"])
    output = PartialFile(output_path, state["output_bytes"])
    skipped = PartialFile(skipped_path, state["skipped_bytes"])
    model_path = state["model"] or model
    writer = OutputWriter(output, options.output_format, read_class_names(model_path), read_threshold(model_path))
    reader = InputReader(input_path, options, state["input_offset"], state["input_line"])
    bar = _progress_bar(identity["input_size"], progress)
    bar.update(reader.offset)
    _write_state(state_file, state)

    def finish_window(window, rows, logits, input_offset, input_line):
        """A scored window's bad rows (in input order, before its rows) and rows written, then the state; returns
        the rows written."""
        for bad in (item for item in window if isinstance(item, BadRow)):
            if on_error == "fail":
                hint = (f" [the {state['rows']:,} rows before it are kept in {output.partial.name}: fix the row "
                        "and start over, or continue with --resume --on-error skip]") if state["rows"] else ""
                raise MalformedDataError(input_path, bad.line, bad.reason + hint)
            skipped.write(json.dumps({"line": bad.line, "reason": bad.reason}) + "\n")
            state["skipped"] += 1
        if rows:
            writer.write_rows(rows, logits.result())
        state.update(rows=state["rows"] + len(rows), output_bytes=output.flush(), skipped_bytes=skipped.flush(),
                     input_offset=input_offset, input_line=input_line)
        _write_state(state_file, state)
        bar.update(input_offset - bar.n)
        bar.set_postfix_str(f"{state['rows']:,} rows, {(scored_now + len(rows)) / (time.perf_counter() - start):,.0f} rows/s")
        return len(rows)

    start, scored_now = time.perf_counter(), 0
    # The next window is read and scored on a thread while this one's rows are written: the cores stay busy.
    scoring = ThreadPoolExecutor(1, thread_name_prefix="score-window")
    try:
        pending = None
        for window in windows(reader, batch_size * window_batches, window_bytes):
            rows = [item for item in window if isinstance(item, Row)]
            logits = scoring.submit(score_texts, scorer, [r.text for r in rows], batch_size) if rows else None
            if pending:
                scored_now += finish_window(*pending)
            pending = (window, rows, logits, reader.offset, reader.line)
        if pending:
            scored_now += finish_window(*pending)
    finally:
        scoring.shutdown(wait=True, cancel_futures=True)
        bar.close()
        reader.close()
        output.close()
        skipped.close()
    output.finish()
    if state["skipped"]:
        skipped.finish()
        report.skipped_file = skipped_path
        with open(skipped_path, encoding="utf-8") as handle:
            report.skipped_examples = [json.loads(line) for _, line in zip(range(10), handle)]
    else:
        skipped.partial.unlink()
    state_file.unlink()
    report.rows, report.skipped, report.new_rows = state["rows"], state["skipped"], scored_now
    report.seconds = time.perf_counter() - start
    return report
