"""Knowledge distillation: a trained teacher's probabilities become the training targets.

With `--teacher MODEL` (a run dir or an export), `distil_training_split` replaces each training
label by the teacher's P(positive) on that text (binary cross-entropy against these soft targets
is Hinton et al.'s distillation loss at temperature 1). Texts that only the teacher labels can be
added: `--teacher-variants N` variants of each whole training text (Tang et al. 2019, "Distilling
task-specific knowledge from BERT into simple neural networks", found such variants are where a
BiLSTM student gains most), and `--teacher-text FILE|imdb`, the sentences of unlabelled text. The
valid and test splits keep their labels, so early stopping and the reported metrics mean what
they mean without a teacher.

Contracts:
* Variants are made from a text alone (seeded by its own hash), and unlabelled sentences are
  chosen by their hash, so every run, whatever its seed, gets the same ones, and the teacher
  scores each distinct text once: its logits are cached per teacher
  (`<cache>/teacher_logits/<teacher fingerprint>.json`).
* Variants use the text's own words in their order (words dropped, or a span kept), never a word
  from another text; no variant or unlabelled sentence equals a training text.
"""

import hashlib
import json
import re

import keras
import numpy as np
import tensorflow as tf

from keras_sentiment.core.bert import import_keras_hub, resolve_bert_preset
from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.scorer import score_texts, sigmoid
from keras_sentiment.run.atomic import write_json_atomically
from keras_sentiment.run.backup import read_backup_state
from keras_sentiment.run.loading import load_scorer
from keras_sentiment.run.locks import exclusive_lock
from keras_sentiment.run.rundir import RunDir, is_run_dir, read_run_config, resolve_saved_model
from keras_sentiment.run.settings import (FLAG, IMDB_EMBEDDINGS_TEXT, NO_EMBEDDINGS_TEXT, NO_TEACHER, OWN_DATA_ONLY,
                                          resolve_settings, settings_of_run)
from keras_sentiment.run.sources import Splits, default_cache_dir, hash_file_into, whole_text_indices
from keras_sentiment.run.word_vectors import imdb_training_reviews_file

# Tang et al.'s masking and n-gram sampling, with dropping for masking: the student's vocabulary
# and the teacher's word pieces then see the same text.
DROP_PROBABILITY = 0.1
SPAN_PROBABILITY = 0.25
LONGEST_SPAN = 5
SCORING_BATCH = 128


def distil_training_split(settings, splits, teacher):
    """`splits` with the training split's targets from `teacher` (a run dir or export), and the texts only it labels added.

    Returns `(splits, facts)`: the new training split holds `(text, float32 target)` in a seeded
    order (the teacher-only texts spread among the originals); `facts` are for `config.json`.
    """
    texts, labels = texts_and_labels(splits.train)
    whole = whole_text_indices(settings.dataset, texts)
    variants = make_variants(texts, whole, settings.teacher_variants)
    unlabelled = unlabelled_sentences(settings, known=set(texts) | set(variants))
    print(f"Teacher {teacher}: targets for {len(texts):,} training texts, {len(variants):,} variants of "
          f"{len(whole):,} whole texts and {len(unlabelled):,} unlabelled sentences", flush=True)
    caution = ngrams_fitted_on_these_texts(teacher, settings.dataset)
    if caution:
        print(caution, flush=True)
    fingerprint = teacher_fingerprint(teacher)
    logits = cached_teacher_logits(teacher, fingerprint, texts + variants + unlabelled)
    targets = sigmoid(logits).astype("float32")
    agreement = float(np.mean((targets[: len(texts)] > 0.5) == (labels == 1))) if texts else 0.0
    print(f"Teacher agrees with {agreement:.2%} of the training labels", flush=True)
    order = np.random.default_rng(settings.seed).permutation(len(targets))
    all_texts = np.array(texts + variants + unlabelled, dtype=object)[order]
    train = tf.data.Dataset.from_tensor_slices((tf.constant(list(all_texts), tf.string, shape=[len(order)]),
                                                tf.constant(targets[order], tf.float32, shape=[len(order)])))
    sizes = {**splits.sizes, "train": len(order)}
    facts = {"teacher_model": str(teacher), "teacher_fingerprint": fingerprint, "teacher_label_agreement": round(agreement, 6),
             "teacher_variants_made": len(variants), "teacher_text_sentences_used": len(unlabelled),
             "labelled_train_examples": len(texts)}
    return Splits(train, splits.valid, splits.test, sizes=sizes, source=splits.source), facts


def ngrams_fitted_on_these_texts(teacher, dataset):
    """A one-line caution when `teacher` is a run dir whose n-grams were fitted on `dataset`'s training texts, else None.

    Its n-gram part was fitted on the very texts it now labels, so there its targets lean toward the
    labels rather than its graded view of them; `--teacher auto` trains its teacher with `--ngrams 0`
    for that reason. (An export does not say how it was trained, so it gets no caution.)
    """
    if not is_run_dir(teacher):
        return None
    config = read_run_config(teacher)
    if not config.get("ngrams") or config.get("dataset") != dataset:
        return None
    return (f"Caution: the teacher's n-grams (--ngrams {config['ngrams']}) were fitted on {dataset}'s training texts, "
            "which it labels now, so its targets there lean toward the labels; a teacher trained with --ngrams 0 "
            "(as --teacher auto's) gives its own view of them")


def texts_and_labels(dataset):
    """A `(text, label)` dataset as a list of strings and an int array, in order."""
    texts, labels = [], []
    for batch_texts, batch_labels in dataset.batch(4096).as_numpy_iterator():
        texts.extend(t.decode("utf-8") for t in batch_texts)
        labels.append(batch_labels)
    return texts, np.concatenate(labels) if labels else np.zeros([0], "int32")


# === The automatic teacher ===


def train_or_reuse_auto_teacher(settings, splits, train):
    """`--teacher auto`: the run dir of the dataset's `best` bert_gru trained on this run's training split.

    `train` is `keras_sentiment.run.training.train`, passed in (training calls this module, not the
    other way round).

    The teacher trains once per (training split, teacher settings), into
    `<cache>/teachers/<dataset>_bert_gru_<key>/`: later students on the same split (a resumed run,
    another architecture) reuse it, and a teacher whose training was interrupted continues from
    its backup. It holds out the student's own valid split, so neither trains on a valid text.
    Returns None, after saying why, where the recipe asked for a teacher that cannot be trained
    here (no BERT extra, no checkpoint); asked for with the flag, that is an error.
    """

    try:
        teacher_settings = auto_teacher_settings(settings, splits)
    except KerasSentimentError as error:
        if settings.sources.get("teacher") == FLAG:
            raise
        print(f"--teacher: {settings.sources.get('teacher')} distils from a bert_gru, which cannot be trained here "
              f"({error}): training on the labels", flush=True)
        return None
    run_dir = RunDir(teacher_settings.run_dir)
    # Two students on one split at once (two architectures, say) would both train this teacher
    # into one folder; the second waits for the first and then reuses its teacher.
    with exclusive_lock(run_dir.path.with_name(f".{run_dir.path.name}.lock"), waiting=f"Teacher: another run is training it "
                        f"into {run_dir}; waiting for it to finish"):
        state = read_backup_state(run_dir) if run_dir.config.is_file() else None
        if state and state.get("exported"):
            print(f"Teacher: the bert_gru trained on this training split before, {run_dir}", flush=True)
        else:
            if state:
                print(f"Teacher: continuing the bert_gru that was training on this split, {run_dir}", flush=True)
                train(settings_of_run(run_dir), resume=True)
            else:
                print(f"Teacher: training the {settings.dataset} recipe's bert_gru on this run's training split into "
                      f"{run_dir} (once; later runs on this split reuse it)", flush=True)
                train(teacher_settings)
            keras.backend.clear_session()
            print(f"Teacher trained; back to the {settings.arch} student", flush=True)
    keras.utils.set_random_seed(settings.seed)  # the same student whether its teacher was trained now or found
    return run_dir.path


# Left out of the hash that names a teacher's folder: where things are (the same data elsewhere is
# the same teacher), settings bert_gru never reads, and --ngrams with its --ngram-max-length and --refit-ngrams,
# which a teacher never has (see auto_teacher_settings). A setting added later that bert_gru does not read belongs
# here too; otherwise every teacher trained before it is trained again (about 45 min).
# tests/test_distill.py pins the settings that are hashed, so a new one cannot slip in unnoticed.
# valid_fraction: the training split's texts are hashed, and they follow it.
NOT_IN_THE_TEACHERS_NAME = ("run_dir", "export_dir", "data_dir", "data_source", "ensemble", "ngrams",
                            "ngram_max_length", "refit_ngrams", "word2vec_epochs",
                            "valid_fraction") + OWN_DATA_ONLY  # refused on your own data (validate)
# Hashed only when set: teachers trained before these settings existed had them unset, and keep their names.
IN_THE_TEACHERS_NAME_WHEN_SET = ("init_from", "class_weight", "threshold", "target_precision", "target_recall",
                                 "lr_schedule")


def auto_teacher_settings(settings, splits):
    """The automatic teacher's settings: `bert_gru`, recipe best, this run's data, seed and subsets;
    its run dir is named by a hash of those settings and of the training split's texts and labels."""

    import_keras_hub()
    resolve_bert_preset(settings.bert_preset)  # a one-line error now, not after the student's set-up
    shared = ("dataset", "data_dir", "data_source", "seed", "max_train_samples", "max_eval_samples", "bert_preset")
    # No n-grams, whatever the recipe says: fitted on the very texts the teacher then labels, they
    # would hand the student back its own labels, not the teacher's graded view of them.
    # And no teacher of its own: SST-2's bert_gru recipe is itself a student of this very run.
    explicit = {"arch": "bert_gru", "recipe": "best", "ngrams": 0, "teacher": NO_TEACHER,
                **{name: settings.values[name] for name in shared if settings.values[name] is not None}}
    teacher = resolve_settings(explicit, stamp="teacher")
    digest = hashlib.sha256()
    kept = {k: v for k, v in teacher.values.items()
            if k not in NOT_IN_THE_TEACHERS_NAME and not (k in IN_THE_TEACHERS_NAME_WHEN_SET and v is None)}
    digest.update(json.dumps(kept, sort_keys=True).encode())
    texts, labels = texts_and_labels(splits.train)
    for text, label in zip(texts, labels.tolist()):
        digest.update(f"{label}\t{text}\n".encode("utf-8"))
    run_dir = default_cache_dir() / "teachers" / f"{settings.dataset}_bert_gru_{digest.hexdigest()[:16]}"
    return teacher.replace("--teacher auto", run_dir=str(run_dir), export_dir=str(run_dir / "export"))


# === Variants ===


def make_variants(texts, indices, copies):
    """Up to `copies` distinct variants of each `texts[i]`, `i` in `indices`; none equals any of `texts`."""
    if copies == 0:
        return []
    known, variants = set(texts), []
    for i in indices:
        for variant in variants_of(texts[i], copies):
            if variant not in known:
                known.add(variant)
                variants.append(variant)
    return variants


def variants_of(text, copies):
    """`copies` random variants of one text (with repeats), seeded by the text: words dropped at
    random, then, a quarter of the time, a random span of 1-5 of the remaining words kept."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little"))
    words, variants = text.split(), []
    for _ in range(copies):
        kept = [w for w in words if rng.random() >= DROP_PROBABILITY]
        if rng.random() < SPAN_PROBABILITY and kept:
            length = int(rng.integers(1, LONGEST_SPAN + 1))
            start = int(rng.integers(0, max(len(kept) - length, 0) + 1))
            kept = kept[start:start + length]
        if kept:
            variants.append(" ".join(kept))
    return variants


# === Unlabelled text ===


def unlabelled_sentences(settings, known=()):
    """The sentences of `--teacher-text` (`imdb`: IMDB's training reviews) in SST's tokenization,
    at most `--teacher-text-sentences` of them, chosen by hash (the same ones in every run), none in `known`."""
    if settings.teacher_text in (None, NO_EMBEDDINGS_TEXT):
        return []

    path = settings.teacher_text
    if path == IMDB_EMBEDDINGS_TEXT:
        path = imdb_training_reviews_file(settings.data_dir, settings.data_source)
    with open(path, encoding="utf-8") as lines:
        sentences = {s for line in lines for s in split_sentences(line) if s not in known}
    chosen = sorted(sentences, key=lambda s: hashlib.sha256(s.encode("utf-8")).digest())
    return chosen[: settings.teacher_text_sentences] if settings.teacher_text_sentences else chosen


def split_sentences(document):
    """A document's sentences of 3-60 tokens, lowercased and split as SST's are ("it 's", "do n't", "good .")."""
    sentences = []
    for sentence in SENTENCE_END.split(document.replace("<br />", "\n").lower()):
        sentence = re.sub(r"n't\b", " n't", sentence)
        sentence = re.sub(r"'(s|re|ve|ll|d|m)\b", r" '\1", sentence)
        words = re.sub(r"([^\w\s'])", r" \1 ", sentence).split()
        if 3 <= len(words) <= 60:
            sentences.append(" ".join(words))
    return sentences


SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


# === The teacher's logits ===


def teacher_fingerprint(path):
    """A hash of the teacher's weights and graph: its files (best.keras and config.json of a run
    dir; every file of a SavedModel), so a retrained teacher at the same path is a new teacher."""
    files = [RunDir(path).best, RunDir(path).config] if is_run_dir(path) else \
        sorted(p for p in resolve_saved_model(path).rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        hash_file_into(digest, file)
    return digest.hexdigest()[:16]


def cached_teacher_logits(path, fingerprint, texts):
    """The teacher's logits for `texts` (float32, in order); texts it scored before come from the cache."""
    cache_file = default_cache_dir() / "teacher_logits" / f"{fingerprint}.json"
    cached = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    missing = sorted({t for t in texts if t not in cached})
    if missing:
        print(f"Scoring {len(missing):,} texts with the teacher ({len(set(texts)) - len(missing):,} cached)", flush=True)
        cached.update(zip(missing, score_texts(load_scorer(path), missing, SCORING_BATCH, progress=True).tolist()))
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(cache_file, cached)
    return np.array([cached[t] for t in texts], "float32")
