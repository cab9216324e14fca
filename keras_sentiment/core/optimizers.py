"""An Adam whose encoder weights train at their own, smaller and scheduled, learning rate.

Fine-tuning a pretrained encoder under a freshly initialised head wants two rates: the head
learns at `--learning-rate` (halved on plateaus, as for every model here), while the unfrozen
encoder weights move at `--encoder-learning-rate` with a linear warm-up over the first 10% of
the steps and a linear decay to 0 at the last, plus decoupled weight decay (AdamW's) on its
kernels and embeddings, as keras-hub's classifiers fine-tune BERT. Keras 3 compiles one optimizer
per model, so the encoder's rate is a per-variable scale inside `update_step`:

    encoder rate = current head rate x (encoder_learning_rate / initial head rate) x schedule(step)

A plateau halving of the head's rate therefore halves the encoder's too.
"""

import keras
from keras import ops

WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.01
NO_DECAY_SUFFIXES = ("/bias", "/gamma", "/beta")  # biases and LayerNorm scales, as keras-hub excludes them


@keras.saving.register_keras_serializable(package="keras_sentiment")
class EncoderAwareAdam(keras.optimizers.Adam):
    """Adam for the head; scheduled, decayed Adam (AdamW) for the variables under `encoder_prefixes`.

    Args:
        learning_rate: the head's rate (a float; `ReduceLROnPlateau` may lower it).
        encoder_prefixes: variable-path prefixes of the encoder's layers (`"transformer_layer_5/"`).
        encoder_learning_rate: the encoder's peak rate.
        total_steps: training steps the schedule spans (warm-up, then decay to 0 at this step).
        weight_decay_rate: decoupled weight decay of the encoder's kernels and embeddings.
        **kwargs: `keras.optimizers.Adam`'s (e.g. `clipnorm`).

    Example:
    >>> optimizer = EncoderAwareAdam(1e-3, ["transformer_layer_5/"], 5e-5, total_steps=1000, clipnorm=1.0)
    >>> round(float(optimizer.encoder_scale(100)), 4)  # end of warm-up: 5e-5 / 1e-3
    0.05
    """

    def __init__(self, learning_rate=1e-3, encoder_prefixes=(), encoder_learning_rate=5e-5, total_steps=1000,
                 weight_decay_rate=WEIGHT_DECAY, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.encoder_prefixes = tuple(encoder_prefixes)
        self.encoder_learning_rate = float(encoder_learning_rate)
        self.total_steps = max(int(total_steps), 1)
        self.weight_decay_rate = float(weight_decay_rate)
        self._ratio = self.encoder_learning_rate / float(learning_rate)

    def build(self, var_list):
        super().build(var_list)
        encoder = [v for v in var_list if v.path.startswith(self.encoder_prefixes)]
        self._encoder_keys = {self._var_key(v) for v in encoder}
        self._decay_keys = {self._var_key(v) for v in encoder if not v.path.endswith(NO_DECAY_SUFFIXES)}

    def encoder_scale(self, step):
        """Encoder rate / head rate at `step`: the rate ratio times warm-up and linear decay."""
        step = ops.cast(step, "float32")
        warmup = max(int(self.total_steps * WARMUP_FRACTION), 1)
        rise = ops.minimum(step / warmup, 1.0)
        fall = ops.clip((self.total_steps - step) / max(self.total_steps - warmup, 1), 0.0, 1.0)
        return self._ratio * rise * fall

    def update_step(self, gradient, variable, learning_rate):
        key = self._var_key(variable)
        if key in self._encoder_keys:
            learning_rate = ops.cast(learning_rate, variable.dtype) * ops.cast(
                self.encoder_scale(self.iterations + 1), variable.dtype)
            if key in self._decay_keys:
                self.assign_sub(variable, variable * ops.cast(self.weight_decay_rate, variable.dtype) * learning_rate)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(encoder_prefixes=list(self.encoder_prefixes), encoder_learning_rate=self.encoder_learning_rate,
                      total_steps=self.total_steps, weight_decay_rate=self.weight_decay_rate)
        return config
