"""Word vectors from IMDB text without its labels, for `train --embeddings`.

GloVe cannot be downloaded on an offline machine. This script trains skip-gram word2vec
(gensim, in the `bench` extra) on the reviews of IMDB's *train split as the package splits it*
(17,500 reviews with the default seed; the valid split and the test set are never read) plus,
when the archive has them (the official `aclImdb_v1.tar.gz` does, ../shared/data's copy does
not), the 50,000 unlabelled reviews of `train/unsup/`. Labels are never used. It writes a
GloVe-format text file (`word v1 ... vN` per line).

Words are standardized exactly as the package's `TextVectorization` does (`standardize_review`,
whitespace split), so they match the vocabulary a run builds.

    python benchmarks/imdb_word_vectors.py --data-dir ../shared/data --output imdb_w2v_100d.txt
    python scripts/train.py --embeddings imdb_w2v_100d.txt --embedding-dim 100 ...
"""

import argparse
import tarfile
import time
from pathlib import Path

UNSUP = "aclImdb/train/unsup/"


def train_split_reviews(data_dir, seed):
    """The texts of the train split (`load_imdb(...).train`, labels dropped)."""
    from keras_sentiment.data import load_imdb

    return [text.decode("utf-8", errors="replace") for text, _ in load_imdb(data_dir, "local", seed).train.as_numpy_iterator()]


def unlabelled_reviews(data_dir):
    """The texts of `aclImdb/train/unsup/*.txt`, from an extracted folder or the archive; [] if absent."""
    folder = Path(data_dir) / UNSUP
    if folder.is_dir():
        return [path.read_text(encoding="utf-8", errors="replace") for path in sorted(folder.glob("*.txt"))]
    archive = Path(data_dir) / "aclImdb_v1.tar.gz"
    texts = []
    if not archive.is_file():
        return texts
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.startswith(UNSUP) and member.name.endswith(".txt"):
                texts.append(tar.extractfile(member).read().decode("utf-8", errors="replace"))
    return texts


def tokenize(texts, batch_size=2048):
    """Lists of words, standardized like the package's vectorizer."""
    import tensorflow as tf

    from keras_sentiment.vectorizer import standardize_review

    for start in range(0, len(texts), batch_size):
        standardized = standardize_review(tf.constant(texts[start : start + batch_size])).numpy()
        for text in standardized:
            yield text.decode("utf-8").split()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding aclImdb/ or aclImdb_v1.tar.gz")
    parser.add_argument("--output", required=True, help="GloVe-format text file to write")
    parser.add_argument("--dim", type=int, default=100, help="vector width (pass the same --embedding-dim to train)")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the reviews")
    parser.add_argument("--window", type=int, default=5, help="context words on each side")
    parser.add_argument("--min-count", type=int, default=5, help="ignore words seen fewer times")
    parser.add_argument("--workers", type=int, default=2, help="training threads")
    parser.add_argument("--seed", type=int, default=1234,
                        help="seed of the train/valid split (use the run's --seed) and of word2vec")
    args = parser.parse_args()

    from gensim.models import Word2Vec

    start = time.perf_counter()
    train_texts, unsup_texts = train_split_reviews(args.data_dir, args.seed), unlabelled_reviews(args.data_dir)
    sentences = list(tokenize(train_texts + unsup_texts))
    tokens = sum(map(len, sentences))
    print(f"{len(train_texts):,} train-split and {len(unsup_texts):,} unlabelled reviews, {tokens:,} words "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    start = time.perf_counter()
    model = Word2Vec(sentences, vector_size=args.dim, window=args.window, min_count=args.min_count, sg=1,
                     workers=args.workers, epochs=args.epochs, seed=args.seed)
    print(f"skip-gram: {len(model.wv):,} words x {args.dim} in {time.perf_counter() - start:.0f} s", flush=True)
    with open(args.output, "w", encoding="utf-8") as out:
        for word in model.wv.index_to_key:
            out.write(word + " " + " ".join(f"{v:.5f}" for v in model.wv[word]) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
