"""Where a run and an export keep their files: the one module that knows their names.

A run directory (`RunDir`) holds `config.json` (the resolved settings and what the run measured),
`best.keras` (the model it delivers), `selected.keras` (the model early stopping chose, kept
beside a `--refit` one), `members/<n>/` (`--ensemble`), `history.csv`, `metrics.json`, plots,
`tensorboard/`, the text encoder's files and `backup/` (`keras_sentiment.run.backup`). An export
base holds integer version folders, each a SavedModel (`saved_model.pb`); a `--no-tokenizer` BERT
export carries its tokenizer for clients in `assets.extra/tokenizer/`; every export carries its class
names in order in `assets.extra/class_names.json` (a JSON list; read without TensorFlow).

Example:
>>> run = RunDir("runs/imdb_bigru_20261203")
>>> run.best.name, run.member(2).history.as_posix()
('best.keras', 'runs/imdb_bigru_20261203/members/2/history.csv')
"""

import json
from pathlib import Path

SAVED_MODEL_FILE = "saved_model.pb"
CLIENT_TOKENIZER_DIR = Path("assets.extra") / "tokenizer"  # TF Serving ignores assets.extra/
CLASS_NAMES_FILE = Path("assets.extra") / "class_names.json"
THRESHOLD_FILE = Path("assets.extra") / "threshold.json"  # {"threshold": P}: two classes' decision threshold
RECURRENCE_FILE = Path("assets.extra") / "recurrence.json"  # {"packed": true}: serves by the packed recurrence
EXPLAIN_SIGNATURE, EXPLAIN_CLASS_SIGNATURE = "explain", "explain_class"  # an export's explanations: default, chosen class
SENTIMENT_CLASSES = ("negative", "positive")  # the classes of IMDB, SST-2 and every run before class names were recorded


class RunDir:
    """The files of one run directory, by role.

    Args:
        path: the run directory (it need not exist yet).
    """

    CONFIG, BEST, SELECTED, BEST_PART = "config.json", "best.keras", "selected.keras", "best_part.keras"
    HISTORY, REFIT_HISTORY, METRICS = "history.csv", "refit_history.csv", "metrics.json"
    CURVES, CONFUSION_MATRIX, RELIABILITY = "curves.png", "confusion_matrix.png", "reliability.png"
    TENSORBOARD = "tensorboard"
    MEMBERS, BACKUP, TOKENIZER, ENCODER_CACHE = "members", "backup", "tokenizer", "encoder_cache"
    DATA_CACHE = "data_cache"  # a streamed training file's token ids, while it trains

    def __init__(self, path):
        self.path = Path(path)

    def __fspath__(self):
        return str(self.path)

    def __str__(self):
        return str(self.path)

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name):
        return self.path / name

    config = property(lambda self: self.path / self.CONFIG)
    best = property(lambda self: self.path / self.BEST)  # the model the run delivers
    selected = property(lambda self: self.path / self.SELECTED)
    best_part = property(lambda self: self.path / self.BEST_PART)  # what fit trains, when that is a part of the model
    history = property(lambda self: self.path / self.HISTORY)
    refit_history = property(lambda self: self.path / self.REFIT_HISTORY)
    metrics = property(lambda self: self.path / self.METRICS)
    curves = property(lambda self: self.path / self.CURVES)
    confusion_matrix = property(lambda self: self.path / self.CONFUSION_MATRIX)
    reliability = property(lambda self: self.path / self.RELIABILITY)
    tensorboard = property(lambda self: self.path / self.TENSORBOARD)
    backup = property(lambda self: self.path / self.BACKUP)
    tokenizer = property(lambda self: self.path / self.TOKENIZER)
    encoder_cache = property(lambda self: self.path / self.ENCODER_CACHE)
    data_cache = property(lambda self: self.path / self.DATA_CACHE)

    def member(self, number):
        """`--ensemble N`: member `number`'s own run directory (checkpoint, history, backup)."""
        return RunDir(self.path / self.MEMBERS / str(number))

    def member_checkpoint_name(self, number):
        """How `metrics.json` names a member's checkpoint, relative to the run directory."""
        return f"{self.MEMBERS}/{number}/{self.BEST}"

    def holds_model(self):
        """Whether this is a run directory with a model to load (`config.json` and `best.keras`)."""
        return self.config.is_file() and self.best.is_file()

    def read_config(self):
        """`config.json`: the resolved settings it trained with (`keras_sentiment.run.settings`)."""
        return json.loads(self.config.read_text())


def is_run_dir(path):
    """Whether `path` is a run directory holding a model (`config.json` and `best.keras`)."""
    return RunDir(path).holds_model()


def read_run_config(run_dir):
    """A run directory's `config.json`."""
    return RunDir(run_dir).read_config()


def existing_versions(export_dir):
    """The integer versions under an export base, ascending ([] when there is none)."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        return []
    return sorted(int(p.name) for p in export_dir.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(export_dir):
    """The next free integer version under `export_dir` (1 when there is none)."""
    return max(existing_versions(export_dir), default=0) + 1


def is_saved_model(path):
    return (Path(path) / SAVED_MODEL_FILE).is_file()


def resolve_saved_model(path):
    """`path` itself if it is a SavedModel, else its highest integer version, else None."""
    path = Path(path)
    if is_saved_model(path):
        return path
    versions = existing_versions(path)
    return path / str(versions[-1]) if versions else None


def takes_token_ids(saved_model_dir):
    """Whether an export was written with `--no-tokenizer` (token ids in, tokenizer for clients beside)."""
    return (Path(saved_model_dir) / CLIENT_TOKENIZER_DIR).is_dir()


def class_names_of(config):
    """The class names, in class-id order, that a run's `config.json` records as `classes` (`SENTIMENT_CLASSES`
    if none; `class_names` there is the `--class-names` setting)."""
    return tuple(config.get("classes") or SENTIMENT_CLASSES)


def read_class_names(path):
    """The class names of a run directory or an export (a SavedModel version folder or its base).

    Example:
    >>> read_class_names("saved_models/imdb_bigru")  # doctest: +SKIP
    ('negative', 'positive')
    """
    path = Path(path)
    if RunDir(path).config.is_file():
        return class_names_of(read_run_config(path))
    saved_model = resolve_saved_model(path)
    names_file = saved_model / CLASS_NAMES_FILE if saved_model is not None else None
    if names_file is not None and names_file.is_file():
        return tuple(json.loads(names_file.read_text(encoding="utf-8")))
    return SENTIMENT_CLASSES  # an export from before class names were stored: two-class sentiment


def read_threshold(path):
    """The decision threshold of a two-class run directory or export: the probability of the second class
    above which it is the label (`--threshold`); 0.5 where none was chosen."""
    path = Path(path)
    if RunDir(path).config.is_file():
        return float(read_run_config(path).get("decision_threshold") or 0.5)
    saved_model = resolve_saved_model(path)
    threshold_file = saved_model / THRESHOLD_FILE if saved_model is not None else None
    if threshold_file is not None and threshold_file.is_file():
        return float(json.loads(threshold_file.read_text(encoding="utf-8"))["threshold"])
    return 0.5


def runs_packed_recurrence(path):
    """Whether a run directory or an export scores by the packed recurrence (`keras_sentiment.core.packed`), read
    without TensorFlow: an export records it (`RECURRENCE_FILE`); a run directory's one-layer recurrent
    architectures do (what `packed_forward` computes), BERT and stacked layers do not."""
    path = Path(path)
    try:  # a hint only: an unreadable file says no here, and the command that loads the model says why
        if RunDir(path).config.is_file():
            config = read_run_config(path)
            return config.get("arch") != "bert_gru" and config.get("num_layers") == 1
        saved_model = resolve_saved_model(path)
        marker = saved_model / RECURRENCE_FILE if saved_model is not None else None
        return bool(marker is not None and marker.is_file() and json.loads(marker.read_text())["packed"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def not_a_model_message(path):
    """The one line for a path that is neither kind of model."""
    return (f"{path}: neither a run directory ({RunDir.CONFIG} + {RunDir.BEST}) nor a SavedModel "
            f"({SAVED_MODEL_FILE}, or integer version folders holding one)")
