"""Plain-NumPy forward passes of the recurrent cells our models use, to read beside the equations.

Nothing here is used for training or serving: it is the arithmetic of Keras' `SimpleRNN`, `LSTM`
and `GRU` written out step by step, so a reader can check docs/REFERENCE.md's equations against
running code, and the tests can check both against Keras (to 1e-5, same weights, masked inputs).

Contract:
- Weights come in Keras 3's layout, exactly as `layer.get_weights()` returns them:
  `kernel [input_dim, G * units]`, `recurrent_kernel [units, G * units]` and `bias`, with the
  G gate blocks side by side in Keras' order: LSTM `i, f, c, o` (G = 4, bias `[4 * units]`);
  GRU `z, r, h` (G = 3, `reset_after=True`, bias `[2, 3 * units]`: input bias, recurrent bias);
  SimpleRNN one block (G = 1, bias `[units]`).
- Sequences are right-padded `[batch, time, input_dim]` with a boolean mask `[batch, time]`
  (True = real token). A padded step leaves the state unchanged and outputs zeros, as Keras
  does with `zero_output_for_mask=True` (what `Bidirectional` forces when returning sequences).
- Activations are Keras' defaults: `tanh` for the state, the exact logistic `sigmoid` for gates.

Example:
>>> rng = np.random.default_rng(0)
>>> weights = (rng.normal(size=(3, 8)), rng.normal(size=(2, 8)), np.zeros(8))  # LSTM, 2 units
>>> outputs, (h, c) = run_sequence(lstm_cell, weights, rng.normal(size=(1, 4, 3)),
...                                mask=np.array([[True, True, True, False]]))
>>> outputs.shape, h.shape, bool(np.all(outputs[0, 3] == 0))
((1, 4, 2), (1, 2), True)
"""

import numpy as np

# === Activations and their derivatives ===


def sigmoid(x):
    """The logistic function 1 / (1 + e^-x), computed without overflow for large |x|."""
    x = np.asarray(x, dtype="float64")
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_derivative(x):
    """d sigmoid / dx = sigmoid(x) * (1 - sigmoid(x))."""
    s = sigmoid(x)
    return s * (1.0 - s)


def tanh(x):
    return np.tanh(np.asarray(x, dtype="float64"))


def tanh_derivative(x):
    """d tanh / dx = 1 - tanh(x)^2."""
    return 1.0 - tanh(x) ** 2


# === Cells: one time step, [batch, input_dim] -> new state ===


def simple_rnn_cell(x, state, kernel, recurrent_kernel, bias):
    """Elman RNN: h_t = tanh(x_t W + h_{t-1} U + b). `state` is h; returns (output, new state)."""
    h = tanh(x @ kernel + state @ recurrent_kernel + bias)  # [batch, units]
    return h, h


def lstm_cell(x, state, kernel, recurrent_kernel, bias):
    """LSTM with gates in Keras' order i, f, c, o. `state` is (h, c); returns (h_t, (h_t, c_t)).

    i = sig(x W_i + h U_i + b_i)      input gate
    f = sig(x W_f + h U_f + b_f)      forget gate
    g = tanh(x W_c + h U_c + b_c)     candidate cell
    o = sig(x W_o + h U_o + b_o)      output gate
    c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
    """
    h_prev, c_prev = state
    z = x @ kernel + h_prev @ recurrent_kernel + bias  # [batch, 4 * units]
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    c = sigmoid(z_f) * c_prev + sigmoid(z_i) * tanh(z_c)
    h = sigmoid(z_o) * tanh(c)
    return h, (h, c)


def gru_cell(x, state, kernel, recurrent_kernel, bias):
    """GRU with Keras' defaults (gate order z, r, h; `reset_after=True`). `state` is h.

    z = sig(x W_z + b_z + h U_z + b'_z)           update gate
    r = sig(x W_r + b_r + h U_r + b'_r)           reset gate
    n = tanh(x W_h + b_h + r * (h U_h + b'_h))    candidate (reset applied after U: cuDNN's form)
    h_t = z * h_{t-1} + (1 - z) * n
    """
    input_bias, recurrent_bias = bias
    x_z, x_r, x_h = np.split(x @ kernel + input_bias, 3, axis=-1)  # each [batch, units]
    u_z, u_r, u_h = np.split(state @ recurrent_kernel + recurrent_bias, 3, axis=-1)
    z = sigmoid(x_z + u_z)
    r = sigmoid(x_r + u_r)
    n = tanh(x_h + r * u_h)
    h = z * state + (1.0 - z) * n
    return h, h


CELLS = {"SimpleRNN": simple_rnn_cell, "LSTM": lstm_cell, "GRU": gru_cell}


def zero_state(cell, batch, units):
    zeros = np.zeros((batch, units))
    return (zeros, zeros) if cell is lstm_cell else zeros


# === Sequences: masked, right-padded, one direction or both ===


def run_sequence(cell, weights, inputs, mask=None, go_backwards=False):
    """Run `cell` over `inputs [batch, time, dim]`; returns (outputs [batch, time, units], final state).

    At a padded step (mask False) the state is carried over unchanged and the output is zero, so
    the final state is the state after each text's last real token. `go_backwards` reads the
    steps from last to first and returns the outputs in that reading order, as Keras does;
    with right padding the padded steps then come first and change nothing.
    """
    kernel, recurrent_kernel, bias = (np.asarray(w, dtype="float64") for w in weights)
    inputs = np.asarray(inputs, dtype="float64")
    batch, steps, _ = inputs.shape
    mask = np.ones((batch, steps), bool) if mask is None else np.asarray(mask, bool)
    if go_backwards:
        inputs, mask = inputs[:, ::-1], mask[:, ::-1]
    units = recurrent_kernel.shape[0]
    state = zero_state(cell, batch, units)
    outputs = np.zeros((batch, steps, units))
    for t in range(steps):
        output, new_state = cell(inputs[:, t], state, kernel, recurrent_kernel, bias)
        real = mask[:, t, None]  # [batch, 1]
        outputs[:, t] = np.where(real, output, 0.0)
        state = keep_real(real, new_state, state)
    return outputs, state


def keep_real(real, new_state, old_state):
    """The new state where the step is real, the old one where it is padding (LSTM: both h and c)."""
    if isinstance(new_state, tuple):
        return tuple(np.where(real, new, old) for new, old in zip(new_state, old_state))
    return np.where(real, new_state, old_state)


def run_bidirectional(cell, forward_weights, backward_weights, inputs, mask=None):
    """Keras' `Bidirectional(merge_mode="concat")`: forward and backward outputs concatenated.

    Returns (outputs [batch, time, 2 * units], final_h [batch, 2 * units]). The backward pass's
    outputs are turned back to time order, so position t holds both directions' view of token t;
    its final state is the one after reading the first token.
    """
    forward, forward_state = run_sequence(cell, forward_weights, inputs, mask)
    backward, backward_state = run_sequence(cell, backward_weights, inputs, mask, go_backwards=True)
    outputs = np.concatenate([forward, backward[:, ::-1]], axis=-1)
    final_h = np.concatenate([hidden_of(forward_state), hidden_of(backward_state)], axis=-1)
    return outputs, final_h


def hidden_of(state):
    """h of a state: the state itself, or the first of LSTM's (h, c)."""
    return state[0] if isinstance(state, tuple) else state
