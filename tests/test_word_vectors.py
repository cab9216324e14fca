"""word2vec's vectors are a function of the text and the seed: the same in every process."""

import os
import subprocess
import sys

import tensorflow as tf

from conftest import ROOT, make_examples
from keras_sentiment.run.settings import resolve_settings
from keras_sentiment.run.word_vectors import WORD2VEC, cache_key, tokenized_documents, word_vectors_for

TRAIN_AND_WRITE = """
import sys
from keras_sentiment.run.word_vectors import train_word2vec, write_glove_atomically
documents = [line.split() for line in open(sys.argv[1], encoding="utf-8")]
write_glove_atomically(train_word2vec(documents, 8, 1234), sys.argv[2])
"""


def test_word2vec_gives_the_same_vectors_in_two_processes_with_different_hash_seeds(tmp_path):
    # 6,000 reviews are about 65,000 words a pass: several of gensim's 10,000-word jobs, which
    # threads would take in an order that differs between processes.
    text = tmp_path / "text.txt"
    text.write_text("".join(review.lower() + "\n" for review, _ in make_examples(6000)), encoding="utf-8")
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"vectors{hash_seed}.txt"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", TRAIN_AND_WRITE, str(text), str(out)], env=env, check=True,
                       capture_output=True)
        outputs.append(out.read_text(encoding="utf-8"))
    assert len(outputs[0].splitlines()) > 20 and outputs[0] == outputs[1]


def test_word2vec_epochs_reaches_word2vec_and_its_default_keeps_the_cached_vectors_names(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SENTIMENT_CACHE", str(tmp_path / "cache"))
    reviews = [review for review, _ in make_examples(400)]
    texts = tf.data.Dataset.from_tensor_slices((reviews, [0] * len(reviews)))
    documents = list(tokenized_documents(texts.map(lambda text, label: text), None))

    def vectors(**flags):
        settings = resolve_settings({"recipe": "seed", "arch": "gru", "dataset": "sst2", "embeddings": "auto", "embedding_dim": 8,
                                     "seed": 1234, **flags})
        return word_vectors_for(settings, texts)

    default, two = vectors(), vectors(word2vec_epochs=2)
    assert default.name == f"{cache_key(documents, 8, 1234)}.txt"  # the name it had before the setting existed
    assert vectors(word2vec_epochs=WORD2VEC["epochs"]) == default
    assert two.name == f"{cache_key(documents, 8, 1234, {**WORD2VEC, 'epochs': 2})}.txt" and two != default
    assert two.read_text(encoding="utf-8") != default.read_text(encoding="utf-8")
