"""Metrics and plots: score a split end to end from raw text, then report and draw."""

import csv
import time

import keras
import numpy as np

from keras_sentiment.core.scorer import class_probabilities, predicted_classes, score_texts, sigmoid
from keras_sentiment.run.labelled import is_number_label
from keras_sentiment.run.rundir import SENTIMENT_CLASSES


def score_dataset(scorer, dataset, num_examples=None, batch_size=256, verbose=True, window_batches=8):
    """Run `scorer` (strings -> logits) over `(text, label)` examples, in input order.

    The examples are read in windows of `window_batches` batches (memory stays bounded however long
    the split), and each window is scored by `score_texts`: sorted by length, so a batch pads little,
    with two batches in flight, as `score` does (docs/PERFORMANCE.md, "Evaluating in `train`").

    Returns `(labels, logits, seconds)`; seconds covers vectorizing and the model only.
    """
    progress = keras.utils.Progbar(num_examples, unit_name="review") if verbose else None
    labels, logits, seconds = [], [], 0.0
    for texts, window_labels in dataset.batch(batch_size * window_batches).prefetch(1):
        start = time.perf_counter()
        window_logits = score_texts(scorer, list(texts.numpy()), batch_size)
        seconds += time.perf_counter() - start
        labels.append(window_labels.numpy())
        logits.append(window_logits)
        if progress:
            progress.add(len(window_logits))
    if not labels:
        return np.zeros([0], "int32"), np.zeros([0], "float32"), seconds
    return np.concatenate(labels), np.concatenate(logits), seconds


CALIBRATION_BINS = 15  # equal-width confidence bins of the expected calibration error (Guo et al., 2017)


def classification_metrics(labels, logits, seconds=None, class_names=SENTIMENT_CLASSES, threshold=0.5):
    """Accuracy, loss, macro-F1, per-class precision/recall/F1 and the confusion matrix (rows: true class),
    ROC AUC and the expected calibration error with its reliability bins (`calibration`).

    `logits`: `[n]` for two classes (then also `precision`, `recall` and `f1` of the second class, as
    before classes had names) or `[n, k]`. With class names that are all numbers (stars), also the
    mean absolute error between the predicted and the true number. ROC AUC: of P(second class) for two
    classes; for k, each class's one-vs-rest AUC (in `per_class`) and their mean (`roc_auc`). Two
    classes are told apart at the decision `threshold` (P(second class) above it: the second).
    """
    labels = np.asarray(labels).astype("int64")
    logits = np.asarray(logits, dtype="float64")
    k = len(class_names)
    predicted = predicted_classes(logits, threshold)
    confusion = np.zeros([k, k], "int64")
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for index, name in enumerate(class_names):
        tp, support, chosen = int(confusion[index, index]), int(confusion[index].sum()), int(confusion[:, index].sum())
        precision = tp / chosen if chosen else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    n = len(labels)
    metrics = {
        "accuracy": float(np.trace(confusion)) / n if n else 0.0,
        "loss": cross_entropy(labels, logits) if n else 0.0,
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "num_examples": int(n),
    }
    if logits.ndim == 1:
        metrics.update({key: per_class[class_names[1]][key] for key in ("precision", "recall", "f1")})
        metrics["threshold"] = threshold
    if n:
        probabilities = class_probabilities(logits)  # [n, k]
        metrics.update(roc_auc_metrics(labels, probabilities, class_names, per_class))
        metrics.update(calibration_metrics(labels, probabilities))
    if n and all(map(is_number_label, class_names)):
        values = np.array([float(name) for name in class_names])
        metrics["mean_absolute_error"] = float(np.mean(np.abs(values[predicted] - values[labels])))
    if seconds:
        metrics["examples_per_second"] = n / seconds
    return metrics


def metrics_report(metrics, class_names, title):
    """`classification_metrics` as lines a person reads: the headline figures, then `class_table`.

    Example:
    >>> metrics = classification_metrics(np.array([0, 1, 1]), np.array([-2.0, 3.0, -1.0]))
    >>> print("\\n".join(metrics_report(metrics, ["negative", "positive"], "test")))
    test: 3 examples
      accuracy 66.67%  macro-F1 0.6667  loss 0.4963  ROC AUC 1.0000  ECE 0.2992
    <BLANKLINE>
      class     precision  recall      F1  support
      negative     0.5000  1.0000  0.6667        1
      positive     1.0000  0.5000  0.6667        2
    <BLANKLINE>
      confusion matrix (rows: true class, columns: predicted)
                negative  positive
      negative         1         0
      positive         1         1
    """
    figures = [f"accuracy {metrics['accuracy']:.2%}", f"macro-F1 {metrics['macro_f1']:.4f}", f"loss {metrics['loss']:.4f}",
               *optional_figures(metrics)]
    if "threshold" in metrics and metrics["threshold"] != 0.5:
        figures.append(f"threshold {metrics['threshold']:.3f}")
    return [f"{title}: {metrics['num_examples']:,} examples", "  " + "  ".join(figures), "", *class_table(metrics, class_names)]


def optional_figures(metrics):
    """The figures a split may lack, as printed where it has them: ROC AUC (not with one class alone), the
    expected calibration error (not without examples), the mean absolute error (classes that are numbers)."""
    figures = []
    if metrics.get("roc_auc") is not None:
        figures.append(f"ROC AUC {metrics['roc_auc']:.4f}")
    if "expected_calibration_error" in metrics:
        figures.append(f"ECE {metrics['expected_calibration_error']:.4f}")
    if "mean_absolute_error" in metrics:
        figures.append(f"MAE {metrics['mean_absolute_error']:.3f}")
    return figures


# More classes than this make a confusion matrix too wide for a terminal: it is left to the JSON and the PNG.
MATRIX_LINES_UP_TO = 12


def class_table(metrics, class_names):
    """Lines of each class's precision, recall, F1 and support, then the confusion matrix (rows: the true
    class), up to `MATRIX_LINES_UP_TO` classes."""
    width = max(len("class"), *(len(str(name)) for name in class_names))
    lines = [f"  {'class':<{width}}  precision  recall      F1  support"]
    for name in class_names:
        row = metrics["per_class"][name]
        lines.append(f"  {name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}  {row['support']:7,}")
    if len(class_names) > MATRIX_LINES_UP_TO:
        return lines + ["", f"  the {len(class_names)} x {len(class_names)} confusion matrix: in the metrics JSON and "
                        "its PNG (confusion_matrix.png of a run, evaluate --confusion-matrix)"]
    counts = [[f"{count:,}" for count in row] for row in metrics["confusion_matrix"]]
    cell = max(*(len(str(name)) for name in class_names), *(len(count) for row in counts for count in row))
    lines += ["", "  confusion matrix (rows: true class, columns: predicted)",
              f"  {'':<{width}}  " + "  ".join(f"{name:>{cell}}" for name in class_names)]
    return lines + [f"  {name:<{width}}  " + "  ".join(f"{count:>{cell}}" for count in row)
                    for name, row in zip(class_names, counts)]


def roc_auc(positive, scores):
    """The area under the ROC curve: the chance that a random positive scores above a random negative
    (ties count half), by ranks (Mann-Whitney U); None when only one kind is present.

    Example:
    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    positive = np.asarray(positive, bool)
    n_positive, n_negative = int(positive.sum()), int((~positive).sum())
    if not n_positive or not n_negative:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(order), "float64")
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for start, end in zip(starts, ends):  # tied scores share their mean rank
        ranks[order[start:end]] = (start + end + 1) / 2
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def roc_auc_metrics(labels, probabilities, class_names, per_class):
    """`{"roc_auc": ...}`: two classes, of P(second class); more, the mean of the classes' one-vs-rest AUCs,
    each also written into `per_class` (None where a class is missing or is every example)."""
    if len(class_names) == 2:
        return {"roc_auc": roc_auc(labels == 1, probabilities[:, 1])}
    for index, name in enumerate(class_names):
        per_class[name]["roc_auc"] = roc_auc(labels == index, probabilities[:, index])
    known = [c["roc_auc"] for c in per_class.values() if c["roc_auc"] is not None]
    return {"roc_auc": float(np.mean(known)) if known else None}


def calibration_metrics(labels, probabilities, bins=CALIBRATION_BINS):
    """The expected calibration error of the predicted class's probability (its confidence): over
    `bins` equal-width confidence bins, the example-weighted mean |accuracy - mean confidence|.

    Returns `{"expected_calibration_error": float, "calibration": [{"low", "high", "count",
    "confidence", "accuracy"}, ...]}` (bins holding examples only), what the reliability plot draws.
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    table, error = [], 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            row = {"low": b / bins, "high": (b + 1) / bins, "count": int(inside.sum()),
                   "confidence": float(confidence[inside].mean()), "accuracy": float(correct[inside].mean())}
            error += row["count"] / len(labels) * abs(row["accuracy"] - row["confidence"])
            table.append(row)
    return {"expected_calibration_error": float(error), "calibration": table}


def choose_threshold(labels, logits, target_precision=None, target_recall=None):
    """The decision threshold of two classes chosen on (valid) `labels` and `logits` `[n]`: the probability
    of the second class above which it is the label. Returns `(threshold, choice)`, `choice` saying the
    rule and the precision, recall and F1 it gives on these examples.

    The rule: the best F1 of the second class; with `target_precision`, the most recall whose precision
    is at least it; with `target_recall`, the best precision whose recall is at least it. A target no
    threshold reaches gives the threshold closest to it, said in `choice["rule"]`. Thresholds lie halfway
    between two neighbouring probabilities, so each cut is what these examples show.

    Example:
    >>> threshold, choice = choose_threshold(np.array([0, 0, 1, 1, 1]), np.array([-2.0, 0.5, 0.2, 1.0, 3.0]))
    >>> round(threshold, 3), round(choice["f1"], 3)
    (0.335, 0.857)
    """
    labels = np.asarray(labels).astype(bool)
    probabilities = sigmoid(logits)
    order = np.argsort(-probabilities, kind="stable")
    sorted_p, sorted_y = probabilities[order], labels[order]
    cuts = np.flatnonzero(np.r_[sorted_p[1:] != sorted_p[:-1], True])  # the second class: the first cut + 1
    true_positives = np.cumsum(sorted_y)[cuts]
    chosen = cuts + 1
    positives = max(int(labels.sum()), 1)
    precision, recall = true_positives / chosen, true_positives / positives
    f1 = 2 * true_positives / (chosen + positives)
    below = np.r_[sorted_p, 0.0][cuts + 1]  # the next lower probability (0 after the last)
    thresholds = (sorted_p[cuts] + below) / 2
    if target_precision is not None:
        reached = np.flatnonzero(precision >= target_precision)
        best = reached[np.argmax(recall[reached])] if len(reached) else int(np.argmax(precision))
        rule = (f"the most recall at precision >= {target_precision}" if len(reached) else
                f"no threshold reaches precision {target_precision} on valid: the highest precision")
    elif target_recall is not None:
        reached = np.flatnonzero(recall >= target_recall)
        best = reached[np.argmax(precision[reached])]  # recall 1 is always reached
        rule = f"the best precision at recall >= {target_recall}"
    else:
        best, rule = int(np.argmax(f1)), "the best F1"
    threshold = float(np.clip(thresholds[best], 1e-6, 1 - 1e-6))
    return threshold, {"rule": rule, "precision": float(precision[best]), "recall": float(recall[best]),
                       "f1": float(f1[best])}


def cross_entropy(labels, logits):
    """Mean cross-entropy from logits (`[n]`: binary, `[n, k]`: softmax), written so large |logit| cannot overflow."""
    if logits.ndim == 1:
        return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))
    top = logits.max(axis=1)
    log_sum = top + np.log(np.sum(np.exp(logits - top[:, None]), axis=1))
    return float(np.mean(log_sum - logits[np.arange(len(labels)), labels]))


def plot_confusion_matrix(confusion, path, title="Confusion matrix", class_names=SENTIMENT_CLASSES):
    """The confusion matrix as a PNG: counts and shares of all examples, rows the true class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion)
    k = len(class_names)
    side = max(4.2, 0.6 * k + 2)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(k), class_names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    total = max(int(confusion.sum()), 1)
    for (row, col), count in np.ndenumerate(confusion):
        color = "white" if count > confusion.max() / 2 else "black"
        text = f"{count}\n{count / total:.1%}" if k <= 6 else f"{count}"
        ax.text(col, row, text, ha="center", va="center", color=color, fontsize=10 if k <= 6 else 7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_reliability(calibration, path, title="Reliability"):
    """The reliability diagram as a PNG: per confidence bin, the accuracy against the mean confidence
    (a calibrated model lies on the diagonal), and below it how many examples each bin holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = calibration["calibration"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="calibrated")
    widths = [row["high"] - row["low"] for row in rows]
    top.bar([row["low"] for row in rows], [row["accuracy"] for row in rows], width=widths, align="edge",
            edgecolor="black", alpha=0.7, label="accuracy")
    top.plot([row["confidence"] for row in rows], [row["accuracy"] for row in rows], "o", color="black",
             markersize=3, label="mean confidence")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(f"{title}: ECE {calibration['expected_calibration_error']:.3f}")
    top.legend(loc="upper left")
    bottom.bar([row["low"] for row in rows], [row["count"] for row in rows], width=widths, align="edge",
               edgecolor="black", color="grey")
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.set_ylabel("examples")
    bottom.set_xlim(0, 1)
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
