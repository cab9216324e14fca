"""The builder interface each architecture implements for training, and what the builders share.

`keras_sentiment.run.settings.Architecture.module` names a module with `build_encoder(settings,
train_texts, run_dir)` (the text encoder, saved into the run dir), `build_classifier(settings,
encoder, word_vectors)` (token ids -> logit model), `load_encoder(run_dir, config)`,
`make_optimizer(settings, model, total_steps)` and `fit_plan(model, train_batches,
valid_batches, run_dir, settings)` (what `fit` trains): `recurrent_builder` and `bert_builder`.
"""

from dataclasses import dataclass

import keras


@dataclass
class FitPlan:
    """What `fit` trains and on which data; `finish(checkpoint)` puts the result into the whole model.

    Args:
        fit_model: the model `fit` trains (the whole model, or a head over cached features).
        train_epoch: epoch number (0-based) -> that epoch's training batches, in an order fixed
            by the seed and the epoch (so a resumed run trains on what an uninterrupted one would).
        valid_data: the validation batches.
        finish: called with the best checkpoint path of `fit_model` after training; writes
            the whole model's best weights. None: `fit_model` is the whole model.
    """

    fit_model: keras.Model
    train_epoch: object
    valid_data: object
    finish: object = None


def delivered_input_length(config):
    """Tokens per text the run's delivered model takes (`config`: its `config.json`): `--max-length`, or
    once n-grams joined it (`ngram_stack` recorded) what its n-gram part reads, `--ngram-max-length`."""
    if "ngram_stack" not in config:  # a run trained with --ngrams has none until training ends
        return config["max_length"]
    return ngram_input_length(config["max_length"], config.get("ngram_max_length"))


def ngram_input_length(max_length, ngram_max_length):
    """Tokens per text the n-gram part reads: `--ngram-max-length` (None: not set), never fewer than `--max-length`."""
    return max(max_length, ngram_max_length or 0)
