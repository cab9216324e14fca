"""The builder interface (`keras_sentiment.run.builder`) for the recurrent architectures.

Settings in, `keras_sentiment.core.recurrent` constructors with explicit arguments out: the
vectorizer adapted on the training text, the model sized to the vocabulary it gave, and word
vectors loaded into its embedding.
"""

from dataclasses import replace

import keras

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.recurrent import ModelConfig, build_model, load_embedding_matrix, recurrent_part
from keras_sentiment.core.vectorizer import TextEncoder, adapt_vectorizer, build_vectorizer, load_vectorizer, save_vectorizer
from keras_sentiment.run.builder import FitPlan, delivered_input_length
from keras_sentiment.run.rundir import RunDir, class_names_of, read_run_config


def build_encoder(settings, train_texts, run_dir):
    """A `TextVectorization` adapted on the training split's text (`--init-from`: that run's, whose
    embeddings index its words), saved into `run_dir`."""
    if settings.init_from:
        vectorizer = load_vectorizer(settings.init_from)
        print(f"Vocabulary: {settings.init_from}'s ({vectorizer.vocabulary_size():,} words)", flush=True)
    else:
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
    if settings.init_from:
        load_weights_of_run(model, settings.init_from, keep_head=class_names_of(settings.record) ==
                            class_names_of(read_run_config(settings.init_from)))
    if word_vectors:
        matrix, found = load_embedding_matrix(word_vectors, vocabulary, settings.embedding_dim, settings.seed)
        model.get_layer("embedding").set_weights([matrix])
        words = len(vocabulary) - 2
        print(f"Embeddings: {found:,} of {words:,} vocabulary words found in {word_vectors} "
              f"({found / max(words, 1):.1%})", flush=True)
    return model


def load_weights_of_run(model, run_dir, keep_head=False):
    """Set `model`'s embedding and recurrent layers (and with `keep_head` its output layer) to those of the
    recurrent model `run_dir` delivers (without its n-grams); layer by layer, by name, shapes checked."""
    source = recurrent_part(keras.models.load_model(RunDir(run_dir).best, compile=False))
    copied, names = [], {each.name for each in source.layers}
    for layer in model.layers:
        if not layer.weights or (layer.name == "logit" and not keep_head):
            continue
        theirs = source.get_layer(layer.name).get_weights() if layer.name in names else None
        if theirs is None or [w.shape for w in theirs] != [tuple(w.shape) for w in layer.weights]:
            raise KerasSentimentError(f"--init-from: {run_dir}'s model has no layer {layer.name!r} of this shape")
        layer.set_weights(theirs)
        copied.append(layer.name)
    head = "its output layer too (the same classes)" if keep_head else "a new output layer"
    print(f"Initial weights: {run_dir}'s {', '.join(copied)}; {head}", flush=True)


def load_encoder(run_dir, config):
    return TextEncoder(load_vectorizer(run_dir), delivered_input_length(config))


def fit_plan(model, train_batches, valid_batches, run_dir, settings):
    """Recurrent models train end to end on the batches as they are (`train_batches`: `EpochBatches`)."""
    return FitPlan(model, train_batches.epoch, valid_batches)


def make_optimizer(settings, model, total_steps):
    """Adam at `--learning-rate`, gradients clipped to norm 1.0; with `--lr-schedule linear` the rate falls
    linearly to 0 at step `total_steps` (else it is constant, and halved by a callback when valid stalls)."""
    if settings.decays_linearly:
        rate = keras.optimizers.schedules.PolynomialDecay(settings.learning_rate, max(total_steps, 1),
                                                          end_learning_rate=0.0)
        return keras.optimizers.Adam(rate, clipnorm=1.0)
    return keras.optimizers.Adam(settings.learning_rate, clipnorm=1.0)
