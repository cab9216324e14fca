"""Text to token ids: a Keras `TextVectorization` with review-aware standardization.

Token id 0 is padding and id 1 is out-of-vocabulary, as `TextVectorization` lays them out.
The same `TextEncoder` runs in the `tf.data` pipeline and inside the exported SavedModel, so
training and serving can never disagree on how a text becomes ids.
"""

import json
from pathlib import Path

import keras
import tensorflow as tf

PAD_ID = 0
OOV_ID = 1
VOCABULARY_FILE = "vocabulary.txt"
VECTORIZER_CONFIG_FILE = "vectorizer.json"


@keras.saving.register_keras_serializable(package="keras_sentiment")
def standardize_review(text):
    """Lowercase, drop HTML line breaks (`<br />`, common in IMDB) and punctuation.

    Apostrophes are deleted so that "don't" stays one word ("dont"); every other punctuation
    mark or symbol becomes a space so that "great.Awful" splits into two words. The Unicode
    classes keep accented letters ("café") intact.
    """
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    text = tf.strings.regex_replace(text, r"['\x{2019}]", "")
    return tf.strings.regex_replace(text, r"[\p{P}\p{S}]", " ")


def build_vectorizer(vocab_size=25_000, vocabulary=None):
    """A `TextVectorization` layer; `vocab_size` counts PAD and OOV.

    Args:
        vocab_size: largest vocabulary, including the padding and OOV tokens.
        vocabulary: optional list of words (without PAD/OOV) to use instead of adapting.

    Example:
    >>> v = build_vectorizer(vocab_size=10, vocabulary=["good", "bad"])
    >>> v(["Good<br />GOOD, bad!"]).numpy().tolist()
    [[2, 2, 3]]
    """
    return keras.layers.TextVectorization(
        max_tokens=vocab_size,
        standardize=standardize_review,
        split="whitespace",
        output_mode="int",
        vocabulary=vocabulary,
        name="vectorizer",
    )


def adapt_vectorizer(vectorizer, texts):
    """Learn the vocabulary from a dataset of strings (the training split only)."""
    vectorizer.adapt(texts.batch(1024).prefetch(tf.data.AUTOTUNE))
    return vectorizer


def save_vectorizer(vectorizer, directory):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    words = vectorizer.get_vocabulary(include_special_tokens=False)
    (directory / VOCABULARY_FILE).write_text("\n".join(words) + "\n", encoding="utf-8")
    config = {"max_tokens": vectorizer.get_config()["max_tokens"], "vocabulary_size": vectorizer.vocabulary_size()}
    (directory / VECTORIZER_CONFIG_FILE).write_text(json.dumps(config, indent=2))


def load_vectorizer(directory):
    """Rebuild a vectorizer saved by `save_vectorizer`; it maps every text to the same ids."""
    directory = Path(directory)
    config = json.loads((directory / VECTORIZER_CONFIG_FILE).read_text())
    # Split at "\n" only: words can hold other line breaks (IMDB has "it\x85", with U+0085 NEL, which
    # the whitespace split keeps inside a word), and `splitlines` would cut them in two.
    words = (directory / VOCABULARY_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    return build_vectorizer(vocab_size=config["max_tokens"], vocabulary=words)


def encode_texts(vectorizer, texts, max_length):
    """Strings `[batch]` to right-padded int32 ids `[batch, <= max_length]`.

    A text with no tokens (empty, or only punctuation) gets a single OOV id: a fully masked
    row would make the recurrent layers fall off the cuDNN kernel and has no final state.
    """
    ids = tf.cast(vectorizer(texts), tf.int32)  # [batch, longest]
    ids = ids[:, :max_length]  # [batch, <= max_length]
    # A batch of only empty texts has zero columns: add one so every row can hold OOV.
    ids = tf.pad(ids, [[0, 0], [0, 1]])[:, : tf.maximum(tf.shape(ids)[1], 1)]
    first = tf.maximum(ids[:, :1], OOV_ID)  # right padding: only an empty row has PAD here
    return tf.concat([first, ids[:, 1:]], axis=1)


class TextEncoder:
    """Strings `[batch]` to right-padded token ids `[batch, <= max_length]` (0 = padding).

    The encoder interface shared with `keras_sentiment.core.bert.BertTextEncoder`: calling it
    encodes, and `layers` lists the Keras layers (vocabularies) an export must carry.

    Args:
        vectorizer: an adapted `TextVectorization` (see `build_vectorizer`).
        max_length: longest sequence kept; longer texts are truncated.

    Example:
    >>> encoder = TextEncoder(build_vectorizer(vocabulary=["good", "bad"]), max_length=2)
    >>> encoder(tf.constant(["good bad good", ""])).numpy().tolist()
    [[2, 3], [1, 0]]
    """

    def __init__(self, vectorizer, max_length):
        self.vectorizer = vectorizer
        self.max_length = max_length

    @property
    def layers(self):
        return [self.vectorizer]

    @property
    def vocabulary_size(self):
        """Ids it can produce, PAD and OOV included (can be fewer than `max_tokens` asked for)."""
        return self.vectorizer.vocabulary_size()

    end_token_id = None  # a truncated text ends where it was cut (see `models.FirstTokens`)

    def with_max_length(self, max_length):
        """The same vocabulary keeping up to `max_length` ids."""
        return TextEncoder(self.vectorizer, max_length)

    def __call__(self, texts):
        return encode_texts(self.vectorizer, texts, self.max_length)

    def tokens(self, texts, token_ids):
        """The word behind each id `[batch, seq_len]`, as the vectorizer saw it (lowercased, no
        punctuation), also for out-of-vocabulary words; "" at padding and for an empty text's OOV id."""
        words = tf.strings.split(standardize_review(texts))  # [batch, (words)]: the vectorizer's own split
        return words.to_tensor(default_value="", shape=tf.shape(token_ids, out_type=tf.int64))
