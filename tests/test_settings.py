"""The settings table: precedence of flag > recipe > arch > dataset > default, validation, help and README."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_run_dir_stub
from keras_sentiment.run import settings as S
from keras_sentiment.core.errors import KerasSentimentError

ROOT = Path(__file__).resolve().parents[1]


def resolve(**flags):
    return S.resolve_settings(flags, stamp="t")


def test_best_is_the_default_recipe_and_picks_the_measured_architecture_and_settings():
    s = resolve()
    assert (s.recipe, s.arch, s.dataset, s.sources["arch"]) == ("best", "bigru", "imdb", "recipe best")
    for name, value in S.BEST[("imdb", "bigru")].items():
        assert s.values[name] == value and s.sources[name] == "recipe best", name
    assert (s.dropout, s.sources["dropout"]) == (0.5, "default")
    bilstm = resolve(arch="bilstm")
    assert (bilstm.sources["arch"], bilstm.num_layers, bilstm.pooling) == ("flag", 1, "max")
    assert resolve(recipe="seed").arch == "bilstm"  # the seed tutorials' model
    sst2 = resolve(dataset="sst2")
    assert (sst2.arch, sst2.sources["arch"]) == ("bilstm", "default")
    assert (sst2.num_layers, sst2.sources["num_layers"]) == (2, "arch bilstm")
    assert (sst2.monitor, sst2.sources["monitor"]) == ("val_loss", "default")


def test_best_carries_the_imdb_recipe_to_the_other_recurrent_architectures():
    gru = resolve(arch="gru")
    assert (gru.hidden_dim, gru.pooling, gru.embeddings, gru.max_length, gru.monitor) == (128, "max", "auto", 800, "val_accuracy")
    assert gru.sources["pooling"] == "recipe best" and gru.num_layers == 1
    assert resolve(arch="rnn").pooling == resolve(arch="lstm").pooling == "max"
    assert resolve(arch="gru", recipe="seed").pooling == "last"


def test_fast_is_best_with_the_faster_recipe_where_one_was_measured():
    fast, best = resolve(recipe="fast"), resolve()
    assert (fast.arch, fast.sources["arch"]) == ("bigru", "recipe best")
    for name, value in S.FAST[("imdb", "bigru")].items():
        assert fast.values[name] == value and fast.sources[name] == "recipe fast", name
    unchanged = set(S.BEST[("imdb", "bigru")]) - set(S.FAST[("imdb", "bigru")])
    assert unchanged >= {"ngrams", "hidden_dim", "max_length"}
    assert all(fast.values[name] == best.values[name] and fast.sources[name] == "recipe best" for name in unchanged)
    assert (fast.refit, fast.refit_ngrams, fast.valid_fraction) == (False, True, 0.1)  # one run, all labels for n-grams
    for flags in ({"dataset": "sst2"}, {"arch": "gru"}):  # no faster recipe measured: best's
        assert resolve(recipe="fast", **flags).values == {**resolve(**flags).values, "recipe": "fast"}
    assert resolve(recipe="fast", epochs=6).epochs == 6  # a flag still beats it
    assert "recipe fast: 4 for imdb bigru" in S.describe_default(S.BY_NAME["epochs"])


def test_seed_recipe_is_the_seed_tutorials_design():
    s = resolve(recipe="seed")
    assert (s.hidden_dim, s.pooling, s.embeddings, s.max_length, s.dropout, s.refit) == (256, "last", "none", 400, 0.5, False)
    assert all(source != "recipe seed" for source in s.sources.values())
    assert resolve(recipe="seed", dataset="sst2").max_length == 64


def test_an_explicit_flag_beats_the_recipe_the_arch_and_the_dataset():
    s = resolve(hidden_dim=64, max_length=100, num_layers=3, pooling="mean")
    assert [s.sources[n] for n in ("hidden_dim", "max_length", "num_layers", "pooling")] == ["flag"] * 4
    assert (s.hidden_dim, s.max_length, s.num_layers, s.pooling) == (64, 100, 3, "mean")
    assert s.embeddings == "auto" and s.sources["embeddings"] == "recipe best"  # what was not given stays


def test_the_sst2_bert_gru_recipe_self_trains_unless_its_frozen_encoder_is_cached():
    student = resolve(arch="bert_gru", dataset="sst2")
    assert (student.teacher, student.teacher_text, student.teacher_text_sentences) == ("auto", "imdb", 100_000)
    cached = resolve(arch="bert_gru", dataset="sst2", trainable_layers="0", cache_encoder=True)  # the cache stores labels
    assert (cached.teacher, cached.teacher_text, cached.sources["teacher"]) == (None, None, "flag --cache-encoder")
    with pytest.raises(KerasSentimentError, match=re.escape("--cache-encoder with --teacher (flag)")):
        resolve(arch="bert_gru", dataset="sst2", trainable_layers="0", cache_encoder=True, teacher="auto")


def test_architecture_defaults_sit_between_the_dataset_and_the_recipe():
    bert = resolve(arch="bert_gru", dataset="sst2")
    assert (bert.max_length, bert.sources["max_length"]) == (512, "arch bert_gru")
    assert (bert.dropout, bert.num_layers, bert.embeddings) == (0.25, 2, "none")
    gru = resolve(arch="gru", dataset="sst2", recipe="seed")  # the recipe sets nothing
    assert (gru.max_length, gru.sources["max_length"], gru.num_layers, gru.hidden_dim) == (64, "dataset sst2", 1, 256)


def test_turning_the_recipes_word_vectors_off_drops_their_extra_text_too():
    plain = resolve(dataset="sst2", embeddings="none")
    assert (plain.embeddings, plain.embeddings_text, plain.sources["embeddings_text"]) == ("none", None, "flag")
    assert resolve(dataset="sst2").embeddings_text == S.IMDB_EMBEDDINGS_TEXT  # the recipe's, with its auto vectors


def test_the_sst2_bilstm_recipe_distils_from_an_automatic_teacher_and_teacher_none_drops_all_of_it():
    s = resolve(dataset="sst2")
    assert (s.teacher, s.teacher_variants, s.teacher_text, s.teacher_text_sentences) == ("auto", 8, "imdb", 100_000)
    assert s.sources["teacher"] == "recipe best"
    plain = resolve(dataset="sst2", teacher="none")
    assert (plain.teacher, plain.teacher_variants, plain.teacher_text, plain.teacher_text_sentences) == (None, 0, None, None)
    assert plain.sources["teacher_variants"] == "flag"
    no_text = resolve(dataset="sst2", teacher_text="none")  # the teacher stays, the IMDB sentences go
    assert (no_text.teacher, no_text.teacher_variants, no_text.teacher_text) == ("auto", 8, "none")
    assert resolve(dataset="sst2", bert_preset="/some/checkpoint").bert_preset == "/some/checkpoint"  # the teacher's
    assert resolve(dataset="sst2", recipe="seed").teacher is None and resolve(dataset="imdb").teacher is None


@pytest.mark.parametrize("flags, message", [
    ({"dataset": "sst2", "teacher": "none", "bert_preset": "/x"}, "--bert-preset applies to --arch bert_gru, not bilstm"),
    ({"dataset": "sst2", "teacher": "none", "teacher_variants": 3}, "--teacher-variants: the teacher labels these"),
    ({"epochs": 0}, "--epochs must be >= 1, got 0"),
    ({"dropout": 1.0}, "--dropout must be < 1.0"),
    ({"vocab_size": 2}, "--vocab-size must be >= 3"),
    ({"arch": "bert_gru", "pooling": "max"}, "always uses its final GRU state"),
    ({"arch": "bilstm", "cache_encoder": True}, "--cache-encoder applies to --arch bert_gru, not bilstm"),
    ({"arch": "bert_gru", "embeddings": "auto"}, "--embeddings applies to --arch"),
    ({"embeddings": "missing.txt"}, "no such file missing.txt"),
    ({"arch": "gru", "embeddings": "auto", "embeddings_text": "missing.txt"}, "--embeddings-text: no such file missing.txt"),
    ({"recipe": "seed", "embeddings_text": "x.txt"}, "feeds the word vectors that --embeddings auto trains"),
    ({"arch": "transformer"}, "--arch transformer: choose one of"),
    ({"arch": "lstm", "trainable_layers": "2"}, "--trainable-layers applies to --arch bert_gru, not lstm"),
    ({"arch": "bert_gru", "trainable_layers": "top"}, "--trainable-layers top: give 0, a number of layers, or all"),
    ({"arch": "bert_gru", "trainable_layers": "all", "cache_encoder": True}, "--trainable-layers all (flag) nothing is frozen"),
    ({"arch": "bert_gru", "dataset": "sst2", "cache_encoder": True}, "--trainable-layers all (recipe best) nothing is frozen"),
    ({"arch": "bert_gru", "dataset": "sst2", "learning_rate": 0}, "--learning-rate 0 with --trainable-layers all: the "
                                                                    "encoder's rate is a fraction of the head's"),
    ({"arch": "bert_gru", "dataset": "sst2", "ngram_max_length": 1024}, "--ngram-max-length: the n-gram part reads these "
                                                                          "tokens; give --ngrams N too"),
    ({"arch": "gru", "ngrams": 2, "max_length": 400, "ngram_max_length": 300}, "--ngram-max-length 300 is below --max-length 400"),
    ({"valid_fraction": 1.0}, "--valid-fraction must be < 1.0"),
    ({"valid_fraction": 0}, "--valid-fraction must be >= 0.001"),
    ({"arch": "bert_gru", "lr_schedule": "linear"}, "--lr-schedule applies to --arch"),  # BERT's own schedule
    ({"lr_schedule": "cosine"}, "--lr-schedule"),
    ({"arch": "bert_gru", "word2vec_epochs": 2}, "--word2vec-epochs applies to --arch"),
    ({"arch": "gru", "recipe": "seed", "word2vec_epochs": 2}, "--word2vec-epochs: word2vec trains only for --embeddings auto"),
    ({"arch": "gru", "embeddings": "auto", "word2vec_epochs": 0}, "--word2vec-epochs must be >= 1"),
])
def test_bad_values_are_one_line_errors_naming_the_flag(flags, message):
    with pytest.raises(KerasSentimentError, match=re.escape(message)):
        resolve(**flags)


def test_init_from_is_refused_unless_it_names_a_run_dir_of_the_arch_whose_weights_fit(tmp_path):
    def run_dir_with_a_model(name, **values):
        return str(write_run_dir_stub(tmp_path / name, {**resolve(**values).values}))

    fitting = run_dir_with_a_model("fits", arch="bert_gru", dataset="imdb")
    assert resolve(arch="bert_gru", dataset="sst2", init_from=fitting).init_from == fitting
    wider = run_dir_with_a_model("wider", arch="bert_gru", dataset="imdb", hidden_dim=128, encoder_states=7)
    refusals = [
        ({"arch": "gru", "init_from": fitting}, "trained a bert_gru, not a gru"),  # recurrent runs start from their own arch
        ({"arch": "bert_gru", "init_from": str(tmp_path)}, f"--init-from: {tmp_path} is not a run directory with a model"),
        ({"arch": "bert_gru", "init_from": run_dir_with_a_model("gru", arch="gru")}, "trained a gru, not a bert_gru"),
        ({"arch": "bert_gru", "init_from": wider}, "do not fit this model: --hidden-dim 128 there, 256 here; "
                                                   "--encoder-states 7 there, 1 here"),
    ]
    for flags, message in refusals:
        with pytest.raises(KerasSentimentError, match=re.escape(message)):
            resolve(**flags)


def test_teacher_auto_is_refused_where_no_bert_gru_recipe_was_measured(monkeypatch):
    monkeypatch.delitem(S.BEST, ("imdb", "bert_gru"))
    with pytest.raises(KerasSentimentError, match="--teacher auto: no bert_gru recipe has been measured on imdb"):
        resolve(dataset="imdb", teacher="auto")


def test_the_imdb_bert_gru_recipe_fine_tunes_every_layer_over_256_word_pieces_with_bigrams():
    imdb = resolve(arch="bert_gru", dataset="imdb")
    assert (imdb.trainable_layers, imdb.max_length, imdb.epochs, imdb.ngrams) == ("all", 256, 2, 2)
    assert imdb.sources["max_length"] == "recipe best" and resolve(arch="bert_gru", dataset="sst2").ngrams == 0
    # its n-grams read the whole review (BERT cannot read past 512 word pieces); a recurrent model's, what it reads
    assert (imdb.ngram_max_length, imdb.sources["ngram_max_length"]) == (4096, "arch bert_gru")
    assert resolve(arch="bigru", dataset="imdb").ngram_max_length is None


def test_config_json_records_values_sources_and_measured_facts():
    s = resolve(dataset="sst2").replace("training text (asked 25,000)", vocab_size=812).with_record(word_vectors="v.txt")
    record = s.to_json()
    assert record["vocab_size"] == 812 and record["sources"]["vocab_size"] == "training text (asked 25,000)"
    assert record["word_vectors"] == "v.txt" and record["recipe"] == "best" and record["max_length"] == 64
    assert set(S.BY_NAME) <= set(record)


def test_the_training_guides_flag_table_is_the_one_derived_from_the_settings():
    guide = (ROOT / "docs" / "TRAINING.md").read_text()
    begin, end = guide.index(S.FLAG_TABLE_BEGIN), guide.index(S.FLAG_TABLE_END) + len(S.FLAG_TABLE_END)
    assert guide[begin:end] == S.flag_table(), "docs/TRAINING.md out of date: python -m keras_sentiment.run.settings"


def help_text(*args):
    result = subprocess.run([sys.executable, "-m", "keras_sentiment.apps.cli", "train", *args, "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120, env=dict(os.environ, COLUMNS="1000"))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_lists_every_setting_with_the_default_in_force():
    best = help_text()
    for setting in S.SETTINGS:
        assert setting.flag in best, setting.flag
        assert S.describe_default(setting) in best, setting.flag  # the general rule, every layer
    assert "--max-length MAX_LENGTH" in best and "here 800, from recipe best" in best
    seed_sst2_gru = help_text("--recipe", "seed", "--dataset", "sst2", "--arch", "gru")
    assert "here 64, from dataset sst2" in seed_sst2_gru and "here 800" not in seed_sst2_gru
    assert "for --recipe seed --arch gru --dataset sst2" in seed_sst2_gru


def test_the_training_log_marks_the_settings_a_run_does_not_read():
    def unused_names(**flags):
        return {line.split()[0] for line in resolve(**flags).describe().splitlines() if "not used:" in line}

    frozen = resolve(arch="bert_gru", dataset="imdb", trainable_layers="0")
    assert not frozen.cache_encoder
    assert unused_names(arch="bert_gru", dataset="imdb", trainable_layers="0") == {
        "vocab_size", "embedding_dim", "embeddings", "embeddings_text", "encoder_learning_rate", "cache_dtype", "lr_schedule",
        "word2vec_epochs"}
    assert unused_names(arch="bert_gru", dataset="imdb", trainable_layers="2", cache_encoder=True) == {
        "vocab_size", "embedding_dim", "embeddings", "embeddings_text", "lr_schedule", "word2vec_epochs"}
    assert unused_names(arch="bilstm", dataset="sst2") == {  # its recipe's teacher is a bert_gru: --bert-preset is read
        "trainable_layers", "encoder_learning_rate", "encoder_states", "cache_encoder", "cache_dtype"}
    assert "bert_preset" in unused_names(arch="bilstm", dataset="sst2", teacher="none")
    line = next(l for l in resolve(arch="bert_gru").describe().splitlines() if l.split()[0] == "cache_dtype")
    assert line.endswith("(arch bert_gru; not used: no --cache-encoder)")
    lines = {l.split()[0]: l for l in resolve(arch="bigru", dataset="imdb").describe().splitlines()}
    assert lines["lr_schedule"].endswith("; None = plateau)")  # a None says what it means for this run
    assert "None = " not in lines["trainable_layers"]  # a setting this run does not read only says so
    assert lines["valid_file"].endswith("(default)")  # IMDB's valid split is not what --valid-file's None means


# === Your data: the rules choose the architecture once the data is read ===


def test_the_rules_choose_bert_gru_for_few_examples_and_the_bigru_for_many():
    few, many = S.DataProfile(S.FEW_EXAMPLES, 19.0, 2), S.DataProfile(S.FEW_EXAMPLES + 1, 19.0, 8)
    assert S.own_data_rule(few).arch == "bert_gru" and S.own_data_rule(many).arch == "bigru"
    assert "at most 5,000" in S.own_data_rule(few).why
    long = S.DataProfile(S.FEW_EXAMPLES, S.SHORT_TEXT_WORDS + 1, 3)  # few, but long: the fine-tune would take hours
    assert (S.own_data_rule(long).arch, S.own_data_rule(long).values) == ("bigru", {"ngrams": 2})  # more classes
    two = S.own_data_rule(S.DataProfile(S.FEW_EXAMPLES + 1, 230.0, 2))  # IMDB's BiGRU recipe, n-grams and refit
    assert (two.arch, two.values) == ("bigru", {"ngrams": 2, "refit": True})
    no_bert = S.DataProfile(S.FEW_EXAMPLES, 19.0, 2, bert_checkpoint=False)  # MiniLM not installed, no --bert-preset
    assert S.own_data_rule(no_bert).name == "two classes"


def test_the_rules_architecture_comes_with_its_layers_and_the_flags_given_stay(tmp_path):
    train = tmp_path / "reviews.csv"
    train.write_text("text,label\na fine film,pos\na dull film,neg\n")
    before = S.resolve_settings({"train_file": str(train), "hidden_dim": 8, "bert_preset": "local",
                                 "encoder_learning_rate": 1e-3}, stamp="s")
    assert S.follows_data_rules(before) and before.arch == "bigru"  # the stand-in until the data is read
    after = S.settings_for_the_data(before, S.DataProfile(900, 12.0, 3), stamp="s")
    assert (after.arch, after.sources["arch"]) == ("bert_gru", "recipe best, rule 'few short texts'")
    assert (after.hidden_dim, after.sources["hidden_dim"]) == (8, S.FLAG) and after.bert_preset == "local"
    assert after.encoder_learning_rate == 1e-3  # BERT's flags given without --arch apply where the rules choose it
    assert after.trainable_layers == "all" and after.sources["trainable_layers"] == "recipe best"
    assert after.run_dir == "runs/reviews_bert_gru_s" and not S.follows_data_rules(after)  # decided, once
    many = S.settings_for_the_data(before, S.DataProfile(50_000, 12.0, 3), stamp="s")
    assert many.arch == "bigru" and many.embeddings == S.AUTO_EMBEDDINGS and not many.refit
    assert (many.ngrams, many.sources["ngrams"]) == (2, "recipe best, rule 'more classes'")
    two = S.settings_for_the_data(before, S.DataProfile(50_000, 12.0, 2), stamp="s")
    assert (two.ngrams, two.refit, two.sources["ngrams"]) == (2, True, "recipe best, rule 'two classes'")
    assert many.unused()["bert_preset"] == "for --arch bert_gru"  # given for the rules' bert_gru, not read by a BiGRU
    chosen = S.resolve_settings({"train_file": str(train), "arch": "gru"}, stamp="s")
    assert not S.follows_data_rules(chosen)  # --arch given: no rule
    with pytest.raises(KerasSentimentError, match="--bert-preset applies to --arch bert_gru, not bigru"):
        S.resolve_settings({"dataset": "imdb", "bert_preset": "local"})  # IMDB's architecture is not the rules'


def test_each_datasets_valid_fraction_is_its_loaders_and_a_given_valid_split_refuses_one(tmp_path):
    import inspect

    from keras_sentiment.run import labelled, sources

    def loader_default(function):
        return inspect.signature(function).parameters["valid_fraction"].default

    assert resolve(dataset="imdb").valid_fraction == loader_default(sources.load_imdb) == sources.IMDB_VALID_FRACTION
    assert resolve(dataset="sst2").valid_fraction == loader_default(sources.load_sst2) == sources.SST2_VALID_FRACTION
    train, valid = (tmp_path / "train.csv", tmp_path / "valid.csv")
    for path in (train, valid):
        path.write_text("text,label\ngood,positive\n")
    assert resolve(train_file=str(train)).valid_fraction == loader_default(sources.load_own_data) == labelled.VALID_FRACTION
    assert resolve(dataset="imdb", valid_fraction=0.1).sources["valid_fraction"] == S.FLAG
    with pytest.raises(KerasSentimentError, match=re.escape("--valid-fraction with --valid-file: the valid split is given")):
        resolve(train_file=str(train), valid_file=str(valid), valid_fraction=0.2)
