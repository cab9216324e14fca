"""Training that survives `kill -9`: backups in `RUN_DIR/backup/`, atomic checkpoints, and what `--resume` restores.

A backup is two files. `weights-<epoch>-<batch>.weights.h5` holds the model and the optimizer
(weights, Adam moments, step count, learning rate). `state.json` names that file and holds what
Keras does not save: the epochs done, the batches done in the current epoch, and the state of the
callbacks that decide things (`ReduceLROnPlateau`, `EarlyStopping`, `BestCheckpoint`: best value,
wait and cooldown counters), so a resumed run makes the decisions an uninterrupted one would.
`state.json` is replaced in one `os.replace` after its weights file is complete: a kill at any
moment leaves the previous backup or the new one whole, never a mix.

Keras' own `BackupAndRestore` writes its files in place (a kill mid-write corrupts the only
copy), restarts an interrupted epoch from its first batch, and restores no callback state;
hence this module. What a resume does not reproduce bit for bit: dropout's random stream
restarts from the seed, and the metrics of the epoch that was cut average its resumed part only.
"""

import json
from pathlib import Path

import keras

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.run.atomic import disk_errors_explained, save_model_atomically, write_json_atomically, write_text_atomically
from keras_sentiment.run.rundir import RunDir

STATE_FILE = "state.json"  # in the run's backup/ folder, beside the weights file it names

# The attributes of each deciding callback that its `on_train_begin` resets and a resume restores.
DECIDER_STATE = {
    "reduce_lr": ("best", "wait", "cooldown_counter"),
    "early_stopping": ("best", "wait", "best_epoch", "stopped_epoch"),
    "checkpoint": ("best",),
}


def higher_is_better(monitor):
    """Whether a larger value of `monitor` is better: accuracy and F1 yes, loss no (the checkpoint and `best_epoch_of` agree)."""
    return monitor.endswith(("accuracy", "f1"))


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the whole model when `monitor` improves (strictly: the first of equal epochs stays).

    The file is written beside its target and renamed into place, so a kill mid-write leaves the
    previous best whole (Keras' `ModelCheckpoint` writes in place).

    Example:
    >>> model.fit(data, callbacks=[BestCheckpoint("run/best.keras", "val_loss")])  # doctest: +SKIP
    """

    def __init__(self, path, monitor):
        super().__init__()
        self.path, self.monitor, self.best = Path(path), monitor, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        value = float(value)
        better = self.best is None or (value > self.best if higher_is_better(self.monitor) else value < self.best)
        if better:
            self.best = value
            save_model_atomically(self.model, self.path)


class TrainingBackup(keras.callbacks.Callback):
    """Backs up the training state every `every` steps and at each epoch end; restores the deciders' state.

    Put it last in the callback list: its `on_train_begin` must run after the deciders' own,
    which reset them, and its `on_epoch_end` after theirs, so a backup holds their decisions.

    Args:
        backup_dir: where the backup lives (`RUN_DIR/backup`).
        every: steps between mid-epoch backups; 0 = at epoch ends only.
        steps_per_epoch: training batches per epoch (the last step's backup is the epoch end's).
        deciders: `DECIDER_STATE` key -> callback.
        state: a backup's `state.json` content to restore at the start of `fit`, or None.
    """

    def __init__(self, backup_dir, every, steps_per_epoch, deciders, state=None):
        super().__init__()
        self.backup_dir, self.every, self.steps_per_epoch = Path(backup_dir), every, steps_per_epoch
        self.deciders = deciders
        self.pending = state["callbacks"] if state else None
        self.epoch = 0
        self.first_step = 0  # batches of the current epoch done before this `fit` started it

    def on_train_begin(self, logs=None):
        if self.pending:
            for key, callback in self.deciders.items():
                for name, value in self.pending.get(key, {}).items():
                    setattr(callback, name, value)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = self.first_step + batch + 1
        if self.every and done % self.every == 0 and done < self.steps_per_epoch:
            self.save(self.epoch, done)

    def on_epoch_end(self, epoch, logs=None):
        self.first_step = 0
        self.save(epoch + 1, 0)

    def on_train_end(self, logs=None):
        self.pending = self.decider_state()  # a second `fit` (after a mid-epoch resume) continues from here

    def decider_state(self):
        return {key: {name: _plain(getattr(callback, name)) for name in DECIDER_STATE[key]}
                for key, callback in self.deciders.items()}

    def save(self, epoch, batch):
        """Weights file first, then `state.json` naming it (the commit), then older weights files go."""
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        weights = f"weights-{epoch:04d}-{batch:06d}.weights.h5"
        with disk_errors_explained(self.backup_dir / weights):
            self.model.save_weights(self.backup_dir / weights)
        write_json_atomically(self.backup_dir / STATE_FILE, {
            "epoch": epoch, "batch": batch, "weights": weights, "finished": False,
            "stopped_early": bool(getattr(self.model, "stop_training", False)),
            "callbacks": self.decider_state()})
        for old in self.backup_dir.glob("weights-*.weights.h5"):
            if old.name != weights:
                old.unlink()

    def mark_finished(self):
        """Training is over: the backup's weights are only disk space now; `state.json` says so."""
        state = read_backup_state(self.backup_dir.parent) or {}
        write_json_atomically(self.backup_dir / STATE_FILE, {**state, "finished": True, "weights": None})
        for old in self.backup_dir.glob("weights-*.weights.h5"):
            old.unlink()


def mark_run_complete(run_dir, export_path):
    """The run exported its model: `state.json` says so, and `--resume` refuses to run it again."""
    path = RunDir(run_dir).backup / STATE_FILE
    state = read_backup_state(run_dir) or {"finished": True}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(path, {**state, "exported": str(export_path)})


# === Reading a backup ===


def read_backup_state(run_dir):
    """The run's `backup/state.json`, or None when no backup was written yet."""
    path = RunDir(run_dir).backup / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:  # written atomically, so only a hand edit or a disk fault gets here
        raise KerasSentimentError(f"{path}: not a readable backup ({error}); remove {path.parent} to restart the run") from None


def restore_training_state(model, run_dir, state):
    """Load a backup's model and optimizer weights into `model` (compiled, not yet trained)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its variables must exist before loading
    model.load_weights(RunDir(run_dir).backup / state["weights"])


def training_is_over(state, epochs):
    """True when the backed-up run had finished, stopped early or done all `epochs`."""
    return state["finished"] or state.get("stopped_early", False) or (state["epoch"] >= epochs and state["batch"] == 0)


def truncate_history(history_csv, epochs):
    """Keep the header and the first `epochs` rows: rows a killed run logged after its last backup go."""
    path = Path(history_csv)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    write_text_atomically(path, "".join(lines[: 1 + epochs]))


def remove_partial_writes(run_dir):
    """Delete what a killed process was writing when it died (`.<name>.partial-<pid><suffix>` files)."""
    for partial in [*Path(run_dir).glob(".*.partial-*"), *(RunDir(run_dir).backup).glob(".*.partial-*")]:
        partial.unlink(missing_ok=True)


def _plain(value):
    """A JSON-ready copy of a callback's attribute (numpy numbers become Python ones)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return float(value)
