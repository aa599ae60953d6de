"""Classification metrics per fold and per subject, the majority baseline, mean ± std.

Macro averages run over the classes present in the true or predicted labels (scikit-learn's
default); recall per class and the confusion matrix list every class of ``class_names``.
Standard deviations are population ones (``ddof=0``) over folds or subjects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

IntArray = npt.NDArray[np.int64]
HEADLINE = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "balanced_accuracy")


def classification_metrics(
    y_true: IntArray, y_pred: IntArray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, balanced accuracy, recall per class, confusion."""
    if len(y_true) == 0:
        return {"n": 0}
    labels = list(range(len(class_names)))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    _, per_class, _, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "balanced_accuracy": _balanced(y_true, y_pred),
        "recall_per_class": dict(zip(class_names, map(float, per_class), strict=True)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def _balanced(y_true: IntArray, y_pred: IntArray) -> float:
    """Mean recall over the classes present in ``y_true``."""
    import warnings

    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(y_true, y_pred))


def majority_class(y_train: IntArray) -> int:
    """The most frequent training label (the lowest index on a tie)."""
    if len(y_train) == 0:
        raise ValueError("no training labels to take a majority from")
    return int(np.bincount(y_train).argmax())


def majority_baseline(y_train: IntArray, n_test: int) -> IntArray:
    """Predictions of the majority-class baseline for ``n_test`` rows."""
    return np.full(n_test, majority_class(y_train), dtype=np.int64)


def per_group_metrics(
    y_true: IntArray, y_pred: IntArray, groups: npt.NDArray[Any], class_names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``classification_metrics`` for the rows of each group (e.g. each subject)."""
    return {
        str(group): classification_metrics(
            y_true[groups == group], y_pred[groups == group], class_names
        )
        for group in np.unique(groups)
    }


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """Mean, population std, min, max and count, ignoring NaN; NaN everywhere if empty."""
    array = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    if array.size == 0:
        return {
            "mean": float("nan"),
            "std": float("nan"),
            "min": float("nan"),
            "max": float("nan"),
            "n": 0,
        }
    return {
        "mean": float(array.mean()),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
        "n": int(array.size),
    }


def aggregate(
    scores: Iterable[dict[str, Any]], keys: Sequence[str] = HEADLINE
) -> dict[str, dict[str, float]]:
    """Mean ± std over a list of metric dicts (folds or subjects), per headline metric."""
    listed = list(scores)
    return {key: mean_std(s.get(key, np.nan) for s in listed) for key in keys}


def normalised_confusion(matrix: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
    """Each row (true class) divided by its total; rows without samples stay zero."""
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    out: npt.NDArray[np.float64] = np.zeros_like(counts)
    np.divide(counts, totals, out=out, where=totals > 0)
    return out


def format_mean_std(summary: dict[str, float], digits: int = 3) -> str:
    """``0.601 ± 0.005`` (or just the mean when there is one value)."""
    if summary.get("n", 0) <= 1:
        return f"{summary['mean']:.{digits}f}"
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"
