"""Word vectors for the embedding layer: `--embeddings none | auto | PATH`.

`auto` trains skip-gram word2vec (gensim) on the **training split's text only** (never the valid
or test text, never a label), plus the lines of `--embeddings-text` when given (`imdb`: IMDB's
25,000 training reviews, text only, from the data dir: SST-2's recipe uses them), and writes the
vectors in GloVe format to a cache: `<cache dir>/word_vectors/<key>.txt`, where the key hashes
the standardized texts and every word2vec parameter. A second run on the same text reuses the
file. Words are standardized and split exactly as the run's `TextVectorization` does
(`standardize_review`, whitespace), so they match its vocabulary.

Example:
>>> path = word_vectors_for(settings, splits.train)  # doctest: +SKIP
"""

import hashlib
import json
import os
from pathlib import Path

import keras
import tensorflow as tf
from gensim.models import Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

from keras_sentiment.core.errors import DataNotFoundError, KerasSentimentError
from keras_sentiment.core.vectorizer import standardize_review
from keras_sentiment.run.atomic import write_text_atomically
from keras_sentiment.run.settings import (AUTO_EMBEDDINGS, BY_NAME, FLAG, IMDB_EMBEDDINGS_TEXT, NO_EMBEDDINGS,
                                          NO_EMBEDDINGS_TEXT, WORD2VEC_EPOCHS)
from keras_sentiment.run.sources import default_cache_dir, load_imdb

# Skip-gram as measured in docs/RESULTS.md (+2.2 points of IMDB valid accuracy over random
# embeddings); 5 passes suffice for 4 M words, min_count 5 keeps 25k IMDB words. One worker
# thread: with two, the order in which threads draw from the model's random state changes from
# one process to the next, so a fresh machine's `make train` scored 91.99% where the measured
# run scored 92.04%; one worker makes the vectors a function of the text and the seed, for about
# twice word2vec's time (about a minute on IMDB's training reviews). `workers` is hashed into the
# cache key with the rest, so vectors written by the threaded version are not reused.
WORD2VEC = {"sg": 1, "window": 5, "min_count": 5, "epochs": WORD2VEC_EPOCHS, "workers": 1}


def word_vectors_for(settings, train_texts):
    """The GloVe-format file `settings.embeddings` names (training it for `auto`), or None for `none`.

    Args:
        settings: resolved settings (`embeddings`, `embeddings_text`, `embedding_dim`, `seed`).
        train_texts: the training split, a dataset of `(text, label)`; labels are never read.
    """
    if settings.embeddings == NO_EMBEDDINGS:
        return None
    if settings.embeddings != AUTO_EMBEDDINGS:
        return settings.embeddings
    documents = list(tokenized_documents(train_texts.map(lambda text, label: text), embeddings_text_file(settings)))
    parameters = {**WORD2VEC, "epochs": settings.word2vec_epochs or WORD2VEC["epochs"]}
    return train_word2vec_cached(documents, settings.embedding_dim, settings.seed, parameters=parameters)


def resolve_embeddings_text(settings):
    """Settings whose `--embeddings-text imdb` can be read (see `resolve_imdb_text`)."""
    if settings.embeddings != AUTO_EMBEDDINGS:
        return settings
    return resolve_imdb_text(settings, "embeddings_text", "word2vec's text", "the recipe's measured vectors")


def resolve_imdb_text(settings, name, use, result):
    """Settings whose `name` (`embeddings_text` or `teacher_text`), if `imdb`, can be read: IMDB's
    reviews are found (or fetched).

    Asked for with the flag, a missing IMDB is an error. Set by a recipe, it falls back to no
    extra text, says so, and records the change, so SST-2 still trains where IMDB is absent.
    """

    if settings.values.get(name) != IMDB_EMBEDDINGS_TEXT:
        return settings
    try:
        imdb_training_reviews_file(settings.data_dir, settings.data_source)
    except KerasSentimentError:
        if settings.sources.get(name) == FLAG:
            raise
        print(f"{BY_NAME[name].flag}: {settings.sources.get(name)} adds IMDB's training reviews to {use}, but IMDB is "
              f"not in the data dir (nor in TFDS, nor downloadable): going without. Put aclImdb_v1.tar.gz in the data dir "
              f"for {result}.", flush=True)
        return settings.replace(f"{settings.sources.get(name)}; IMDB not available", **{name: NO_EMBEDDINGS_TEXT})
    return settings


def embeddings_text_file(settings):
    """The file of extra word2vec text: `--embeddings-text` itself, IMDB's reviews for `imdb`, or None."""
    if settings.embeddings_text in (None, NO_EMBEDDINGS_TEXT):
        return None
    if settings.embeddings_text == IMDB_EMBEDDINGS_TEXT:
        return imdb_training_reviews_file(settings.data_dir, settings.data_source)
    return settings.embeddings_text


def imdb_training_reviews_file(data_dir=None, data_source="auto"):
    """IMDB's 25,000 training reviews, one per line (text only, never a label), written once to the cache.

    Sorted, so the file is the same whoever writes it: the train/valid split's shuffle order
    depends on TensorFlow's global seed, which a training run sets to its own `--seed`, and
    word2vec's cache key hashes the documents in order.
    """

    path = default_cache_dir() / "embeddings_text" / "imdb_train_reviews.txt"
    if path.is_file():
        return path
    try:
        splits = load_imdb(data_dir, source=data_source)
    except DataNotFoundError as error:
        raise KerasSentimentError(f"--embeddings-text imdb (the word-vector text of SST-2's best recipe) needs IMDB: "
                                  f"{error}; or pass --embeddings-text none") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    reviews = sorted(" ".join(text.decode("utf-8").split()) for split in (splits.train, splits.valid)
                     for text, _ in split.as_numpy_iterator())
    write_text_atomically(path, "".join(review + "\n" for review in reviews))
    return path


def tokenized_documents(texts, extra_text_file=None, batch_size=1024):
    """Lists of words: each text of the `texts` dataset, then each non-empty line of `extra_text_file`."""
    sources = [texts]
    if extra_text_file:
        sources.append(tf.data.TextLineDataset(str(extra_text_file)))
    for source in sources:
        for batch in source.batch(batch_size).map(standardize_review).as_numpy_iterator():
            for text in batch:
                words = text.decode("utf-8", errors="replace").split()
                if words:
                    yield words


def cache_key(documents, dim, seed, parameters=None):
    """Hash of the documents' words and every parameter: same text and settings -> same vectors file."""
    digest = hashlib.sha256(json.dumps({"dim": dim, "seed": seed, **(parameters or WORD2VEC)}, sort_keys=True).encode())
    for words in documents:
        digest.update(" ".join(words).encode("utf-8") + b"\n")
    return digest.hexdigest()[:24]


def train_word2vec_cached(documents, dim, seed, cache_dir=None, parameters=None):
    """Path of the GloVe-format vectors for `documents`: read from the cache, else trained and written there."""
    parameters = parameters or WORD2VEC
    folder = Path(cache_dir or default_cache_dir()) / "word_vectors"
    path = folder / f"{cache_key(documents, dim, seed, parameters)}.txt"
    if path.is_file():
        print(f"Word vectors: reusing {path} (trained earlier on the same text and parameters)", flush=True)
        return path
    words = sum(map(len, documents))
    print(f"Word vectors: skip-gram word2vec, {dim}-d, on {len(documents):,} texts ({words:,} words) -> {path}", flush=True)
    vectors = train_word2vec(documents, dim, seed, parameters)
    folder.mkdir(parents=True, exist_ok=True)
    write_glove_atomically(vectors, path)
    print(f"Word vectors: {len(vectors):,} words", flush=True)
    return path


def train_word2vec(documents, dim, seed, parameters=None):
    """gensim `KeyedVectors` from lists of words, with a progress bar over the passes."""
    parameters = parameters or WORD2VEC

    class Progress(CallbackAny2Vec):
        def __init__(self):
            self.bar = keras.utils.Progbar(parameters["epochs"], unit_name="pass")

        def on_epoch_end(self, model):
            self.bar.add(1)

    model = Word2Vec(documents, vector_size=dim, seed=seed, callbacks=[Progress()], **parameters)
    return model.wv


def write_glove_atomically(vectors, path):
    """`word v1 ... vN` per line, written beside `path` and renamed into place (never half a file)."""
    tmp = Path(f"{path}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            for word in vectors.index_to_key:
                out.write(word + " " + " ".join(f"{v:.5f}" for v in vectors[word]) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
