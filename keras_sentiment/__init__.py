"""keras-sentiment: masked recurrent and BERT-backed sentiment models for Keras 3 / TensorFlow.

The public API, for `import keras_sentiment as ks`:

- `ks.train(**settings) -> ks.Run`: train, evaluate and export, with the settings, recipes and
  defaults of `keras-sentiment train` (their Python names: `arch="bigru"`, `data_dir=...`);
- `ks.load(path) -> ks.SentimentModel`: a run directory, a SavedModel, or an export base (its
  latest version), with `predict(texts)`, `explain(texts)` and `export(dir)`.

The package has three layers: `keras_sentiment.core` (the model code, pure Keras/TensorFlow),
`keras_sentiment.run` (settings, data, training, run directories, export, loading) and
`keras_sentiment.apps` (the CLI, batch scoring, Beam, serving, the REST client); a layer imports
only those below it. These names load TensorFlow on first use, not on `import keras_sentiment`,
so the command line's `--help` stays instant.
"""

import importlib

__all__ = ["train", "load", "Run", "SentimentModel", "KerasSentimentError"]
_HOMES = {"train": "keras_sentiment.run.api", "load": "keras_sentiment.run.api", "Run": "keras_sentiment.run.api",
          "SentimentModel": "keras_sentiment.run.api", "KerasSentimentError": "keras_sentiment.core.errors"}


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'keras_sentiment' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__():
    return sorted([*globals(), *__all__])
