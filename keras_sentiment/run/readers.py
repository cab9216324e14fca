"""Rows of a labelled or unlabelled text file: CSV, TSV, JSONL or plain text, read from a byte offset.

One reader for every command that reads a user's file (`score`, Beam): the same header,
quoting, BOM and encoding rules everywhere. A row that is not valid UTF-8 or does not parse is a
`BadRow` with its line number, never a crash or altered text.
"""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from keras_sentiment.core.errors import KerasSentimentError, MalformedDataError


INPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}


OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


MAX_FIELD_BYTES = 64 * 1024 * 1024  # one CSV field; a larger one is an error, not a memory blow-up


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
    filesystem); `path` then only names it in messages. `flags`: the flag that names each
    column or field in messages, where it is not the option's own (`--label-column` for a
    labelled file's `id_column`).
    """

    FLAGS = {"text_column": "--text-column", "id_column": "--id-column", "text_field": "--text-field", "id_field": "--id-field"}

    def __init__(self, path, options, offset=0, line=0, handle=None, flags=None):
        self.path, self.options = Path(path), options
        self.flags = {**self.FLAGS, **(flags or {})}
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
        for role, name in (("text_column", self.options.text_column), ("id_column", self.options.id_column)):
            if name is not None and name not in header:
                raise MalformedDataError(self.path, 1, f"{self.flags[role]} '{name}' is not a column; columns: {', '.join(header)}")
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
                yield BadRow(line, f"no '{options.text_field}' field (see {self.flags['text_field']})")
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
                yield BadRow(line, f"no '{options.id_field}' field (see {self.flags['id_field']})")
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
