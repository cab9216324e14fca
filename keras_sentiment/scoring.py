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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from keras_sentiment.errors import KerasSentimentError, MalformedDataError

INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
ON_ERROR = ("fail", "skip")
MAX_FIELD_BYTES = 64 * 1024 * 1024  # one CSV field; a larger one is an error, not a memory blow-up
STATE_VERSION = 1


@dataclass
class Row:
    id: object
    text: str
    line: int


@dataclass
class BadRow:
    line: int
    reason: str


@dataclass
class ScoreOptions:
    """What is read, how, and with which model; a resumed run must use the same."""

    input_format: str
    output_format: str
    text_column: str = "text"
    id_column: str = None
    text_field: str = "text"
    id_field: str = None


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


def detect_format(path, formats, kind, given=None):
    if given:
        return given
    suffix = Path(path).suffix.lower()
    if kind == "output":
        return formats.get(suffix, "jsonl")
    if suffix not in formats:
        raise KerasSentimentError(
            f"{path}: cannot tell the input format from '{suffix or 'no extension'}'; "
            f"use one of {', '.join(sorted(formats))} or pass --input-format"
        )
    return formats[suffix]


class LineSource:
    """Decoded lines of a file from a byte offset, with `offset` and `line` of what was consumed.

    A UTF-8 BOM at the start is dropped. A line that is not valid UTF-8 is decoded with
    replacement characters and its number recorded in `bad_lines`, so the row holding it is
    reported instead of scored as altered text.
    """

    def __init__(self, handle, offset=0, line=0):
        self.handle, self.offset, self.line = handle, offset, line
        self.bad_lines = set()
        handle.seek(offset)

    def __iter__(self):
        for raw in self.handle:
            if self.offset == 0 and raw.startswith(b"\xef\xbb\xbf"):
                raw_text = raw[3:]
            else:
                raw_text = raw
            self.offset += len(raw)
            self.line += 1
            try:
                text = raw_text.decode("utf-8")
            except UnicodeDecodeError:
                self.bad_lines.add(self.line)
                text = raw_text.decode("utf-8", errors="replace")
            yield text

    def take_bad(self, first, last):
        """Whether a line in `[first, last]` was not UTF-8 (and forget lines up to `last`)."""
        bad = any(first <= n <= last for n in self.bad_lines)
        self.bad_lines = {n for n in self.bad_lines if n > last}
        return bad


class InputReader:
    """Rows (`Row`) and bad rows (`BadRow`) of an input file, resumable at a byte offset.

    `handle`: an open binary file to read instead of opening `path` (e.g. one from a Beam
    filesystem); `path` then only names it in messages.
    """

    def __init__(self, path, options, offset=0, line=0, handle=None):
        self.path, self.options = Path(path), options
        csv.field_size_limit(MAX_FIELD_BYTES)
        self.handle = handle or open(self.path, "rb")
        self.header = None
        if options.input_format in ("csv", "tsv"):
            self.header = self._read_header()
            offset, line = max(offset, self._header_end), max(line, 1)
        self.source = LineSource(self.handle, offset, line)

    def close(self):
        self.handle.close()

    @property
    def offset(self):
        return self.source.offset

    @property
    def line(self):
        return self.source.line

    def _read_header(self):
        source = LineSource(self.handle)
        try:
            header = next(csv.reader(source, **self._csv_dialect()))
        except StopIteration:
            raise MalformedDataError(self.path, 1, "empty file: expected a header row") from None
        except csv.Error as error:
            raise MalformedDataError(self.path, 1, f"unreadable header: {error}") from None
        self._header_end = source.offset
        for role, name in (("--text-column", self.options.text_column), ("--id-column", self.options.id_column)):
            if name is not None and name not in header:
                raise MalformedDataError(self.path, 1, f"{role} '{name}' is not a column; columns: {', '.join(header)}")
        return header

    def _csv_dialect(self):
        if self.options.input_format == "tsv":
            # TSV as GLUE writes it: no quoting, a field holds no tab or newline, quotes are text.
            return {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "strict": True}
        return {"delimiter": ",", "strict": True}

    def __iter__(self):
        reader = {"csv": self._csv_rows, "tsv": self._csv_rows, "jsonl": self._jsonl_rows, "txt": self._text_rows}
        for item in reader[self.options.input_format]():
            first = item.line
            if isinstance(item, Row) and self.source.take_bad(first, self.source.line):
                item = BadRow(first, "not valid UTF-8")
            yield item

    def _text_rows(self):
        for text in self.source:
            yield Row(self.source.line, text.rstrip("\r\n"), self.source.line)

    def _jsonl_rows(self):
        options = self.options
        for text in self.source:
            line = self.source.line
            if not text.strip():
                continue  # a blank line holds no record
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                yield BadRow(line, f"not valid JSON ({error.msg} at column {error.colno})")
                continue
            if not isinstance(record, dict):
                yield BadRow(line, f"expected a JSON object, got {type(record).__name__}")
                continue
            if options.text_field not in record:
                yield BadRow(line, f"no '{options.text_field}' field (see --text-field)")
                continue
            value = record[options.text_field]
            if not isinstance(value, str):
                yield BadRow(line, f"'{options.text_field}' must be a string, got {json.dumps(value)[:40]}")
                continue
            if not _is_unicode(value):
                yield BadRow(line, f"'{options.text_field}' holds an unpaired surrogate escape (not Unicode text)")
                continue
            if options.id_field is None:
                yield Row(line, value, line)
            elif options.id_field not in record:
                yield BadRow(line, f"no '{options.id_field}' field (see --id-field)")
            else:
                yield Row(record[options.id_field], value, line)

    def _csv_rows(self):
        reader = csv.reader(self.source, **self._csv_dialect())
        text_index = self.header.index(self.options.text_column)
        id_index = self.header.index(self.options.id_column) if self.options.id_column is not None else None
        while True:
            first = self.source.line + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield BadRow(first, f"malformed CSV ({error})")
                continue
            if len(fields) != len(self.header):
                if not fields or fields == [""]:
                    continue  # a blank line holds no record
                yield BadRow(first, f"expected {len(self.header)} fields like the header, found {len(fields)}")
                continue
            row_id = fields[id_index] if id_index is not None else first
            yield Row(row_id, fields[text_index], first)


def _is_unicode(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    def __init__(self, partial, output_format):
        self.partial, self.format = partial, output_format
        if output_format == "csv":
            self._csv = csv.writer(self, lineterminator="\n")
            if partial.handle.tell() == 0:
                self._csv.writerow(["id", "probability", "label"])

    def write(self, text):  # the file-like target of csv.writer
        self.partial.write(text)

    def write_row(self, row_id, probability, label):
        if self.format == "csv":
            self._csv.writerow([row_id, repr(probability), label])
        else:
            self.partial.write(json.dumps({"id": row_id, "probability": probability, "label": label},
                                          ensure_ascii=False) + "\n")


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
    from tqdm.auto import tqdm

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


def score_texts(scorer, texts, batch_size):
    """Logits for `texts` in input order, scored in batches of similar length (less padding)."""
    import numpy as np
    import tensorflow as tf

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    logits = np.zeros([len(texts)], "float32")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        logits[index] = scorer(tf.constant([texts[i] for i in index], tf.string)).numpy()
    return logits


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
    from keras_sentiment.inference import is_run_dir, load_scorer, resolve_saved_model, sigmoid

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
    writer = OutputWriter(output, options.output_format)
    reader = InputReader(input_path, options, state["input_offset"], state["input_line"])
    bar = _progress_bar(identity["input_size"], progress)
    bar.update(reader.offset)
    _write_state(state_file, state)
    start, scored_now = time.perf_counter(), 0
    try:
        for window in windows(reader, batch_size * window_batches, window_bytes):
            rows = [item for item in window if isinstance(item, Row)]
            for bad in (item for item in window if isinstance(item, BadRow)):
                if on_error == "fail":
                    hint = (f" [the {state['rows']:,} rows before it are kept in {output.partial.name}: fix the row "
                            "and start over, or continue with --resume --on-error skip]") if state["rows"] else ""
                    raise MalformedDataError(input_path, bad.line, bad.reason + hint)
                skipped.write(json.dumps({"line": bad.line, "reason": bad.reason}) + "\n")
                state["skipped"] += 1
            logits = score_texts(scorer, [r.text for r in rows], batch_size) if rows else []
            for row, logit, probability in zip(rows, logits, sigmoid(logits)):
                writer.write_row(row.id, float(probability), int(logit > 0))
            state.update(rows=state["rows"] + len(rows), output_bytes=output.flush(), skipped_bytes=skipped.flush(),
                         input_offset=reader.offset, input_line=reader.line)
            _write_state(state_file, state)
            scored_now += len(rows)
            bar.update(reader.offset - bar.n)
            bar.set_postfix_str(f"{state['rows']:,} rows, {scored_now / (time.perf_counter() - start):,.0f} rows/s")
    finally:
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
