"""The Python API: train a model, load one, predict, evaluate, explain and export; the CLI runs the same calls.

`train(**settings)` takes the settings of `keras-sentiment train` by their Python names
(`arch="bigru"`, `data_dir="../shared/data"`); one table (`keras_sentiment.run.settings`) decides
the defaults and the recipes for both. `load(path)` takes a run directory, a SavedModel version
folder or an export base (its latest version) and returns a `SentimentModel`.

Example:
>>> import keras_sentiment as ks
>>> run = ks.train(dataset="sst2", arch="gru", recipe="seed", epochs=2, data_dir="data")  # doctest: +SKIP
>>> run.metrics["test"]["accuracy"]  # doctest: +SKIP
0.81
>>> model = ks.load(run.run_dir)  # doctest: +SKIP
>>> model.predict(["A wonderful, moving film."])  # doctest: +SKIP
[{'label': 'positive', 'scores': {'negative': 0.03, 'positive': 0.97}}]
"""

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.explanation import DEFAULT_STEPS
from keras_sentiment.core.scorer import class_probabilities, predicted_classes, score_texts
from keras_sentiment.run import training
from keras_sentiment.run.evaluation import classification_metrics
from keras_sentiment.run.explaining import explain_in_batches, load_explainer
from keras_sentiment.run.export import export_serving_model, write_version
from keras_sentiment.run.labelled import LabelledTexts, label_name, model_class_ids
from keras_sentiment.run.loading import load_run, load_scorer
from keras_sentiment.run.rundir import (SENTIMENT_CLASSES, is_run_dir, not_a_model_message, read_class_names,
                                        read_run_config, read_threshold, resolve_saved_model)
from keras_sentiment.run.settings import BY_NAME, resolve_settings, settings_from_python, settings_of_run

CLASS_NAMES = SENTIMENT_CLASSES  # the classes of IMDB and SST-2 models, and of every export made before class names


@dataclass
class Run:
    """What `train` made.

    Args:
        run_dir: the run directory (checkpoints, logs, `config.json`, `metrics.json`).
        export_path: the SavedModel version it exported.
        settings: every setting in force and what the run recorded (its `config.json`).
        metrics: test and valid metrics (`metrics.json`).
    """

    run_dir: Path
    export_path: Path
    settings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def load(self):
        """The trained model (`SentimentModel`), from the run directory."""
        return load(self.run_dir)


def train(resume=None, **settings):
    """Train, evaluate and export one model, as `keras-sentiment train`; returns a `Run`.

    Args:
        resume: a run directory a killed run left: continue it with its own settings (give no others).
        **settings: any `train` setting by its Python name (`python -m keras_sentiment.run.settings`
            lists them); what is not given comes from the recipe, the architecture, the dataset or
            the table's default, as on the command line.

    Raises:
        KerasSentimentError: one line, for a setting or value no layer allows, or data not found.
    """
    if resume is not None:
        if settings:
            flags = " ".join(BY_NAME[name].flag if name in BY_NAME else name for name in settings)
            raise KerasSentimentError(f"resume continues {resume} with its own settings; drop {flags}")
        resolved = settings_of_run(resume).replace(run_dir=str(resume), source="--resume")
    else:
        resolved = resolve_settings(settings_from_python(settings))
    run_dir, export_path, metrics, final = training.train(resolved, resume=resume is not None)
    return Run(Path(run_dir), Path(export_path), final.to_json(), metrics)


def load(path):
    """A trained model from a run directory, a SavedModel, or an export base (its latest version).

    Raises:
        KerasSentimentError: one line, for a path that is neither.
    """
    return SentimentModel(path)


class SentimentModel:
    """A trained text classifier: raw strings in, class names and probabilities out.

    Args:
        path: a run directory, a SavedModel version folder, or an export base (latest version).

    Attributes:
        class_names: the classes in class-id order (`("negative", "positive")` for IMDB and SST-2).
        threshold: two classes' decision threshold: P(second class) above it is that class (`--threshold`).

    Example:
    >>> model = SentimentModel("saved_models/imdb_bigru")  # doctest: +SKIP
    >>> model.predict(["Dull and far too long."])[0]["label"]  # doctest: +SKIP
    'negative'
    """

    def __init__(self, path):
        self.path = Path(path)
        if not is_run_dir(self.path) and resolve_saved_model(self.path) is None:
            raise KerasSentimentError(not_a_model_message(self.path))
        self.class_names = read_class_names(self.path)
        self.threshold = read_threshold(self.path)
        self._scorer, self._explainer = None, None  # loaded on first use: a model only explained never loads a scorer

    def __repr__(self):
        return f"SentimentModel({str(self.path)!r})"

    def logits(self, texts, batch_size=256):
        """The logits (float32 numpy): `[len(texts)]` for two classes (> 0: the second), `[len(texts), k]` for k."""
        if self._scorer is None:
            self._scorer = load_scorer(self.path)
        return score_texts(self._scorer, _as_list(texts), batch_size)

    def predict(self, texts, batch_size=256):
        """Per text, `{"label": class name, "scores": {class name: probability}}`, in input order."""
        logits = self.logits(texts, batch_size)
        names = self.class_names
        return [{"label": names[label], "scores": {name: float(p) for name, p in zip(names, probabilities)}}
                for label, probabilities in zip(predicted_classes(logits, self.threshold), class_probabilities(logits))]

    def evaluate(self, texts, labels, batch_size=256):
        """The model's metrics on labelled texts, as `keras-sentiment evaluate` computes them: accuracy,
        macro-F1, each class's precision, recall and F1, the confusion matrix (rows: the true class), loss,
        ROC AUC, the expected calibration error, and for classes that are numbers the mean absolute error
        (`keras_sentiment.run.evaluation.classification_metrics`).

        `labels`: one class name per text (a number names its class: 5, 5.0 and "5" are class "5").

        Raises:
            KerasSentimentError: one line, for a label that is not a class or is empty, or labels that do not pair
                with texts.
        """
        texts, names = _as_list(texts), [label_name(label) for label in labels]
        if len(names) != len(texts):
            raise KerasSentimentError(f"evaluate: {len(texts)} texts but {len(names)} labels; give one label per text")
        places = [f"labels[{i}]" for i in range(len(names))]
        empty = next((place for place, name in zip(places, names) if name is None), None)
        if empty:
            raise KerasSentimentError(f"evaluate: {empty} is empty; give each text its class name")
        ids = model_class_ids(LabelledTexts(texts, names, "evaluate", places), self.class_names)
        return classification_metrics(np.array(ids, "int64"), self.logits(texts, batch_size), class_names=self.class_names,
                                      threshold=self.threshold)

    def explanations(self, texts, steps=DEFAULT_STEPS, batch_size=8, merge_pieces=True, class_name=None):
        """Yield each text's `Explanation` (`keras_sentiment.core.explanation`), `batch_size` texts a call.

        `class_name`: the class to explain, one of `class_names` (None: two classes, the second; more,
        each text's predicted class). A run directory is explained with `steps` Integrated Gradients
        steps; an export runs its own `explain` (`explain_class`) signature (the steps it was exported with).
        """
        if class_name is not None and class_name not in self.class_names:
            raise KerasSentimentError(f"class {class_name!r}: not a class of {self.path}; its classes are "
                                      f"{', '.join(self.class_names)}")
        if self._explainer is None or self._explainer[0] != (steps, class_name):
            self._explainer = ((steps, class_name), load_explainer(self.path, steps, class_name))
        yield from explain_in_batches(self._explainer[1], _as_list(texts), batch_size, merge_pieces, self.class_names)

    def explain(self, texts, steps=DEFAULT_STEPS, batch_size=8, merge_pieces=True, class_name=None):
        """Each text's `Explanation` of `class_name` (None: the default class, see `explanations`): its tokens'
        attributions (they add up to the class's logit - its baseline logit)."""
        return list(self.explanations(texts, steps, batch_size, merge_pieces, class_name))

    def export(self, export_dir=None, version=None, **options):
        """Write the model to `<export_dir>/<version>/` as a SavedModel; returns that folder.

        From a run directory the model is exported afresh (`options`: `tokenizer_in_graph`,
        `explain_steps`, as `keras_sentiment.run.export.export_serving_model`; `export_dir`
        defaults to the run's own); from an export, the SavedModel is copied as the next version.
        """
        if is_run_dir(self.path):
            encoder, model = load_run(self.path)
            return export_serving_model(model, encoder, export_dir or read_run_config(self.path)["export_dir"], version,
                                        class_names=self.class_names, threshold=self.threshold, **options)
        if export_dir is None or options:
            raise KerasSentimentError(f"{self.path} is an export: give export_dir, and no export options (they need "
                                      "the run directory)")
        return copy_saved_model(resolve_saved_model(self.path), export_dir, version)


def copy_saved_model(saved_model, export_dir, version=None):
    """Copy a SavedModel version folder to `<export_dir>/<version>/`, renamed into place in one step."""
    return write_version(export_dir, version, lambda folder: shutil.copytree(saved_model, folder))


def _as_list(texts):
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list of strings, not one string: wrap it as [text]")
    if isinstance(texts, tf.Tensor):
        return [t.decode("utf-8") for t in texts.numpy().tolist()]
    return list(texts)
