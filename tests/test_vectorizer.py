import tensorflow as tf

from keras_sentiment.core.vectorizer import OOV_ID, build_vectorizer, encode_texts, load_vectorizer, save_vectorizer, standardize_review


def test_standardize_lowercases_and_strips_html_breaks_and_punctuation():
    out = standardize_review(tf.constant(["Great film!<br /><br />I DON'T agree.", "Café, naïve—élan"])).numpy()
    assert out[0].decode().split() == ["great", "film", "i", "dont", "agree"]
    assert out[1].decode().split() == ["café", "naïve", "élan"]


def test_vocabulary_size_counts_pad_and_oov():
    vectorizer = build_vectorizer(vocab_size=5)
    vectorizer.adapt(tf.constant(["a a a b b c d e f"]))
    vocabulary = vectorizer.get_vocabulary()
    assert len(vocabulary) == 5 and vocabulary[:2] == ["", "[UNK]"]


def test_save_and_load_give_identical_ids(tmp_path):
    vectorizer = build_vectorizer(vocab_size=50)
    vectorizer.adapt(tf.constant(["the good movie was great", "the bad movie was awful <br /> truly"]))
    save_vectorizer(vectorizer, tmp_path)
    reloaded = load_vectorizer(tmp_path)
    texts = tf.constant(["The GOOD, the bad and the unseen-word!", "", "awful<br />great"])
    assert reloaded.get_vocabulary() == vectorizer.get_vocabulary()
    assert tf.reduce_all(reloaded(texts) == vectorizer(texts))
    assert reloaded.get_config()["max_tokens"] == 50


def test_words_holding_other_line_breaks_survive_save_and_load(tmp_path):
    # IMDB's vocabulary has "it\x85" (U+0085, NEL): the whitespace split keeps it in a word.
    vectorizer = build_vectorizer(vocab_size=50)
    vectorizer.adapt(tf.constant(["it\x85 was \x85 it\u2028s good \x0c"]))
    assert "it\x85" in vectorizer.get_vocabulary()
    save_vectorizer(vectorizer, tmp_path)
    assert load_vectorizer(tmp_path).get_vocabulary() == vectorizer.get_vocabulary()


def test_encode_truncates_pads_right_and_never_leaves_a_row_empty():
    vectorizer = build_vectorizer(vocabulary=["good", "bad"])
    ids = encode_texts(vectorizer, tf.constant(["good bad good bad good", "", "?!", "bad"]), max_length=3).numpy()
    assert ids.tolist() == [[2, 3, 2], [OOV_ID, 0, 0], [OOV_ID, 0, 0], [3, 0, 0]]
    # A batch of only empty texts still has one column, holding OOV.
    assert encode_texts(vectorizer, tf.constant(["", ""]), 3).numpy().tolist() == [[OOV_ID], [OOV_ID]]
