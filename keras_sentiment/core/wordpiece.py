"""Client-side word pieces for a `--no-tokenizer` BERT export: no TensorFlow, no TF Text.

Keras and keras-hub are imported when a `BertTokenIds` is made, not with this module, so the
standard-library client (`keras_sentiment.apps.client`) can offer it.
"""

import json
from pathlib import Path

from keras_sentiment.core.errors import KerasSentimentError


class BertTokenIds:
    """Texts -> the `[CLS] word-pieces [SEP]` ids a `--no-tokenizer` BERT export takes, client-side.

    For servers without TensorFlow Text's ops. Reads the tokenizer the export carries in
    `assets.extra/tokenizer/` and runs keras-hub's pure-Python WordPiece path: the same
    vocabulary, normalization and splitting as the in-graph TF Text tokenizer (tests check
    that the ids are identical). Rows are truncated to the export's `max_length` and right
    padded with 0 to the longest row of the call.

    Args:
        export: the SavedModel version directory (or a copy of its `assets.extra/tokenizer/`).

    Example:
    >>> ids = BertTokenIds("saved_models/sst2_bert_gru/2")  # doctest: +SKIP
    >>> ids(["A fine film."])  # doctest: +SKIP
    [[101, 1037, 2986, 2143, 1012, 102]]
    >>> predict("http://127.0.0.1:8501", "sst2_bert_gru", ["A fine film."], tokenizer=ids)  # doctest: +SKIP
    """

    def __init__(self, export):
        import keras
        import keras_hub  # noqa: F401  (registers the tokenizer class the config names)

        folder = Path(export)
        if not (folder / "tokenizer.json").is_file():
            folder = folder / "assets.extra" / "tokenizer"
        if not (folder / "tokenizer.json").is_file():
            raise KerasSentimentError(f"{export}: no assets.extra/tokenizer/ (was it exported with --no-tokenizer?)")
        self.tokenizer = keras.saving.deserialize_keras_object(json.loads((folder / "tokenizer.json").read_text()))
        self.tokenizer.load_assets(str(folder))
        self.max_length = json.loads((folder / "encoder.json").read_text())["max_length"]

    def __call__(self, texts):
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in texts]
        # TF Text's ops read a string only up to a NUL character; the in-graph tokenizer ignores the rest, so must we.
        texts = [t.split("\x00", 1)[0] for t in texts]
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        rows = [[cls, *map(int, pieces[: self.max_length - 2]), sep] for pieces in self.tokenizer(texts)] if texts else []
        width = max(map(len, rows), default=0)
        return [row + [0] * (width - len(row)) for row in rows]
