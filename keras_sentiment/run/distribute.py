"""Which `tf.distribute` strategy trains, and which process of a cluster writes the run.

`--strategy`:

- `auto` (default): `multi_worker` when `TF_CONFIG` names more than one worker, `mirrored`
  with several GPUs (or `--logical-cpus`), else TensorFlow's default strategy (no wrapper).
- `one_device`: `tf.distribute.OneDeviceStrategy` on the first GPU, else the CPU.
- `mirrored`: `tf.distribute.MirroredStrategy` over this machine's GPUs, or over the logical
  CPUs `--logical-cpus N` splits the CPU into (to exercise it without a GPU).
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy` over the cluster in `TF_CONFIG`.

`--batch-size` is the global batch: `tf.distribute` splits each batch across the replicas in sync.
In a cluster only the chief (the `chief` task, else worker 0) writes the run directory, backups
and export; every other worker runs the same steps into a temporary directory it removes at the
end, as TensorFlow's multi-worker guide prescribes (saving involves every worker).
"""

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass

import tensorflow as tf
from keras.src.backend.tensorflow import trainer

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.run.settings import BY_NAME

STRATEGIES = BY_NAME["strategy"].choices


@dataclass
class Distribution:
    """The strategy in use and this process's place in it.

    Args:
        strategy: the `tf.distribute.Strategy`.
        name: the `--strategy` it resolved to (`default` when `auto` found one device).
        is_chief: whether this process writes the run directory and the export.
        worker: `TF_CONFIG`'s task (type, index), or None outside a cluster.
    """

    strategy: object
    name: str
    is_chief: bool = True
    worker: tuple = None

    def describe(self):
        where = f", task {self.worker[0]} {self.worker[1]}" if self.worker else ""
        role = "" if self.is_chief else " (not the chief: writes to a temporary directory)"
        return f"{self.name} with {self.strategy.num_replicas_in_sync} replica(s) in sync{where}{role}"


def cluster_spec():
    """`TF_CONFIG` as a dict (empty when unset); a malformed one is a one-line error."""
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        spec = json.loads(text)
        workers = spec["cluster"]["worker"]
        task = spec["task"]
        task["type"], task["index"]  # noqa: B018 (both must exist)
    except (ValueError, KeyError, TypeError) as error:
        raise KerasSentimentError(f"TF_CONFIG is not a cluster spec ({error!r}); expected "
                                  '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') from None
    if not isinstance(workers, list) or not workers:
        raise KerasSentimentError("TF_CONFIG: cluster.worker must be a non-empty list of host:port")
    return spec


def split_cpu(count):
    """Make `count` logical CPU devices (before TensorFlow starts its runtime)."""

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # the runtime already started: only a matching split is acceptable
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise KerasSentimentError(f"--logical-cpus {count}: TensorFlow already started with "
                                      f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s)") from None


def make_distribution(strategy="auto", logical_cpus=None):
    """The strategy `--strategy` / `--logical-cpus` ask for; call it before TensorFlow runs any op.

    Example:
    >>> distribution = make_distribution("mirrored", logical_cpus=2)  # doctest: +SKIP
    >>> with distribution.strategy.scope():  # doctest: +SKIP
    ...     model = build_model(...)
    """

    if strategy not in STRATEGIES:
        raise KerasSentimentError(f"--strategy {strategy}: choose one of {', '.join(STRATEGIES)}")
    spec = cluster_spec()
    if logical_cpus:
        split_cpu(logical_cpus)
    gpus = tf.config.list_physical_devices("GPU")
    if strategy == "auto":
        if len(spec.get("cluster", {}).get("worker", [])) + len(spec.get("cluster", {}).get("chief", [])) > 1:
            strategy = "multi_worker"
        elif len(gpus) > 1 or logical_cpus:
            strategy = "mirrored"
        else:
            return Distribution(tf.distribute.get_strategy(), "default")
    if strategy == "one_device":
        return Distribution(tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0"), strategy)
    if strategy == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU" if gpus else "CPU")]
        return Distribution(tf.distribute.MirroredStrategy(devices), strategy)
    if not spec:
        raise KerasSentimentError("--strategy multi_worker needs TF_CONFIG (the cluster and this task); see docs/SCALE.md")
    task = spec["task"]
    has_chief = bool(spec["cluster"].get("chief"))
    is_chief = task["type"] == "chief" or (task["type"] == "worker" and task["index"] == 0 and not has_chief)
    return Distribution(tf.distribute.MultiWorkerMirroredStrategy(), strategy, is_chief, (task["type"], task["index"]))


def worker_directories(settings, distribution):
    """Settings whose run and export dirs are temporary when this process is not the chief."""
    if distribution.is_chief:
        return settings, None
    scratch = tempfile.mkdtemp(prefix=f"keras_sentiment_{distribution.worker[0]}{distribution.worker[1]}_")
    source = f"{distribution.worker[0]} {distribution.worker[1]}: not the chief"
    return settings.replace(run_dir=os.path.join(scratch, "run"), export_dir=os.path.join(scratch, "export"),
                            source=source), scratch


@contextlib.contextmanager
def fitting_under(model, strategy):
    """`model.fit` inside this runs under `strategy` (no-op unless it is `MultiWorkerMirroredStrategy`).

    Keras 3.15 builds a model made under a strategy from its first batch, first averaging that
    batch over the replicas with `strategy.reduce`; `MultiWorkerMirroredStrategy` cannot reduce an
    `(ids, labels)` tuple and fit fails before its first step. Our models are built, so the step
    is not needed: fit runs with the strategy taken from the scope instead, the optimizer built
    here first.
    """

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    reduce_scalar_logs_over_workers()
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        own, model._distribute_strategy = model._distribute_strategy, None
        try:
            yield
        finally:
            model._distribute_strategy = own


def reduce_scalar_logs_over_workers():
    """Let Keras 3.15 average a step's scalar logs (loss, accuracy) over `MultiWorkerMirroredStrategy` workers.

    Its `reduce_per_replica` asks that strategy for a mean over axis 0, which a scalar does not
    have, and `fit` fails at its first step (tensorflow/tensorflow#72388). A scalar is averaged
    over the replicas instead (axis None): the same number on every worker, so early stopping and
    the checkpoint decide alike everywhere. Anything else goes to Keras unchanged.
    """

    original = trainer.reduce_per_replica
    if getattr(original, "averages_scalars_over_workers", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if not (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and reduction in ("auto", "mean")):
            return original(values, strategy, reduction)

        def reduce(value):
            if value.shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return tf.nest.map_structure(reduce, values)

    reduce_per_replica.averages_scalars_over_workers = True
    trainer.reduce_per_replica = reduce_per_replica
