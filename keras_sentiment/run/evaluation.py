"""Metrics and plots: score a split end to end from raw text, then report and draw."""

import csv
import time

import keras
import numpy as np
import tensorflow as tf


def text_batches(dataset, batch_size=256, max_chars=4000):
    """Raw `(text, label)` examples batched by character length.

    Character length is a cheap stand-in for token length: batches hold similar lengths, so a
    recurrent model wastes little work on padding, without tokenizing twice.
    """
    boundaries = [int(b) for b in np.unique(np.geomspace(32, max_chars, 12).astype(int))]
    return dataset.bucket_by_sequence_length(
        element_length_func=lambda text, label: tf.strings.length(text),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=([], []),
    ).prefetch(tf.data.AUTOTUNE)


def score_dataset(scorer, dataset, num_examples=None, batch_size=256, verbose=True):
    """Run `scorer` (strings -> logits) over `(text, label)` examples.

    Returns `(labels, logits, seconds)`; seconds covers vectorizing and the model only.
    """
    progress = keras.utils.Progbar(num_examples, unit_name="review") if verbose else None
    labels, logits, seconds = [], [], 0.0
    for texts, batch_labels in text_batches(dataset, batch_size):
        start = time.perf_counter()
        batch_logits = scorer(texts).numpy()
        seconds += time.perf_counter() - start
        labels.append(batch_labels.numpy())
        logits.append(batch_logits)
        if progress:
            progress.add(len(batch_logits))
    if not labels:
        return np.zeros([0], "int32"), np.zeros([0], "float32"), seconds
    return np.concatenate(labels), np.concatenate(logits), seconds


def classification_metrics(labels, logits, seconds=None):
    """Accuracy, loss, precision, recall, F1 and `[[tn, fp], [fn, tp]]` for binary logits."""
    labels = np.asarray(labels).astype("int64")
    logits = np.asarray(logits, dtype="float64")
    predicted = (logits > 0).astype("int64")
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    # Binary cross-entropy from logits, written so that large |logit| cannot overflow.
    loss = float(np.mean(np.logaddexp(0.0, logits) - labels * logits)) if len(labels) else 0.0
    metrics = {
        "accuracy": (tp + tn) / len(labels) if len(labels) else 0.0,
        "loss": loss,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "num_examples": int(len(labels)),
    }
    if seconds:
        metrics["examples_per_second"] = len(labels) / seconds
    return metrics


def plot_confusion_matrix(confusion, path, title="Confusion matrix"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(confusion, cmap="Blues")
    names = ["negative", "positive"]
    ax.set_xticks([0, 1], names)
    ax.set_yticks([0, 1], names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    total = max(int(confusion.sum()), 1)
    for (row, col), count in np.ndenumerate(confusion):
        color = "white" if count > confusion.max() / 2 else "black"
        ax.text(col, row, f"{count}\n{count / total:.1%}", ha="center", va="center", color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(history_csv, path):
    """Loss and accuracy per epoch, train vs valid, from a `CSVLogger` file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "valid")):
            if rows and prefix + key in rows[0]:
                ax.plot(epochs, [float(r[prefix + key]) for r in rows], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
