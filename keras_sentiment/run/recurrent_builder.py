"""The builder interface (`keras_sentiment.run.builder`) for the recurrent architectures.

Settings in, `keras_sentiment.core.recurrent` constructors with explicit arguments out: the
vectorizer adapted on the training text, the model sized to the vocabulary it gave, and word
vectors loaded into its embedding.
"""

from dataclasses import replace

import keras

from keras_sentiment.core.recurrent import ModelConfig, build_model, load_embedding_matrix
from keras_sentiment.core.vectorizer import TextEncoder, adapt_vectorizer, build_vectorizer, load_vectorizer, save_vectorizer
from keras_sentiment.run.builder import FitPlan, delivered_input_length
from keras_sentiment.run.rundir import class_names_of


def build_encoder(settings, train_texts, run_dir):
    """A `TextVectorization` adapted on the training split's text, saved into `run_dir`."""
    vectorizer = adapt_vectorizer(build_vectorizer(settings.vocab_size), train_texts.map(lambda text, label: text))
    save_vectorizer(vectorizer, run_dir)
    return TextEncoder(vectorizer, settings.max_length)


def build_classifier(settings, encoder, word_vectors=None):
    """The model for `settings.arch`, its embedding sized to the encoder's real vocabulary.

    Args:
        word_vectors: a GloVe-format file to initialise the embedding from, or None.
    """
    vocabulary = encoder.vectorizer.get_vocabulary()
    config = replace(ModelConfig.from_dict(settings.values), vocab_size=len(vocabulary),
                     num_classes=len(class_names_of(settings.record)))
    model = build_model(settings.arch, config)
    if word_vectors:
        matrix, found = load_embedding_matrix(word_vectors, vocabulary, settings.embedding_dim, settings.seed)
        model.get_layer("embedding").set_weights([matrix])
        words = len(vocabulary) - 2
        print(f"Embeddings: {found:,} of {words:,} vocabulary words found in {word_vectors} "
              f"({found / max(words, 1):.1%})", flush=True)
    return model


def load_encoder(run_dir, config):
    return TextEncoder(load_vectorizer(run_dir), delivered_input_length(config))


def fit_plan(model, train_batches, valid_batches, run_dir, settings):
    """Recurrent models train end to end on the batches as they are (`train_batches`: `EpochBatches`)."""
    return FitPlan(model, train_batches.epoch, valid_batches)


def make_optimizer(settings, model, total_steps):
    """Adam at `--learning-rate`, gradients clipped to norm 1.0 (`total_steps`: unused, no schedule)."""
    return keras.optimizers.Adam(settings.learning_rate, clipnorm=1.0)
