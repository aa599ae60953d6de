"""Evaluation protocols (stratified 5-fold CV, the official FER2013 split) and their metrics.

Every score is given twice: on the rows where a face was found (what the model sees), and on all
rows, where a row without a face counts as a prediction of the training majority class (what a
user of the device would see). The majority-class baseline and the face coverage come with it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, recall_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from trainer.errors import DatasetError, UsageError
from trainer.train import DEFAULT_SEED, fit_model

logger = logging.getLogger(__name__)

PROTOCOLS = ("cv5", "official")
CV_FOLDS = 5
TRAIN_USAGE = ("Training",)
TEST_USAGE = ("PrivateTest",)
METRIC_KEYS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")
SECTIONS = ("face_found", "all_rows", "majority_face_found", "majority_all_rows")


@dataclass(frozen=True)
class LabelledFeatures:
    """One row per image: features (NaN without a face), labels and the dataset's split."""

    values: npt.NDArray[np.float32]
    face_found: npt.NDArray[np.bool_]
    labels: npt.NDArray[np.int64]
    usage: npt.NDArray[np.str_]
    class_names: tuple[str, ...]


def classification_metrics(
    y_true: npt.NDArray[np.int64], y_pred: npt.NDArray[np.int64], class_names: tuple[str, ...]
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 and recall per class (zero where undefined)."""
    if len(y_true) == 0:
        return {"n": 0}
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    per_class = recall_score(
        y_true, y_pred, labels=list(range(len(class_names))), average=None, zero_division=0
    )
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "recall_per_class": dict(zip(class_names, map(float, per_class), strict=True)),
    }


def score_split(
    model_name: str,
    data: LabelledFeatures,
    train_rows: npt.NDArray[np.int64],
    test_rows: npt.NDArray[np.int64],
    seed: int = DEFAULT_SEED,
    **params: Any,
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on the training rows with a face, score the test rows; the model and its scores."""
    x, found, y = data.values, data.face_found, data.labels
    model = fit_model(model_name, x[train_rows], y[train_rows], found[train_rows], seed, **params)
    test_found = found[test_rows]
    majority = int(np.bincount(y[train_rows]).argmax())
    predicted = np.full(len(test_rows), majority, dtype=np.int64)
    if test_found.any():
        predicted[test_found] = model.predict(x[test_rows][test_found])
    baseline = np.full(len(test_rows), majority, dtype=np.int64)
    return model, {
        **_sections(y[test_rows], predicted, baseline, test_found, data.class_names),
        "majority_class": data.class_names[majority],
        "coverage_train": float(found[train_rows].mean()),
        "coverage_test": float(test_found.mean()),
        "n_train_faces": int(found[train_rows].sum()),
        "n_test": len(test_rows),
        "n_test_faces": int(test_found.sum()),
    }


def _sections(
    y_true: npt.NDArray[np.int64],
    predicted: npt.NDArray[np.int64],
    baseline: npt.NDArray[np.int64],
    found: npt.NDArray[np.bool_],
    names: tuple[str, ...],
) -> dict[str, dict[str, Any]]:
    return {
        "face_found": classification_metrics(y_true[found], predicted[found], names),
        "all_rows": classification_metrics(y_true, predicted, names),
        "majority_face_found": classification_metrics(y_true[found], baseline[found], names),
        "majority_all_rows": classification_metrics(y_true, baseline, names),
    }


def cross_validate(
    model_name: str, data: LabelledFeatures, seed: int = DEFAULT_SEED, **params: Any
) -> dict[str, Any]:
    """The paper's protocol: stratified 5-fold CV over all rows (shuffled with ``seed``)."""
    splitter = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    folds = []
    for fold, (train, test) in enumerate(splitter.split(data.values, data.labels)):
        logger.info("%s: fold %d of %d", model_name, fold + 1, CV_FOLDS)
        folds.append(score_split(model_name, data, train, test, seed, **params)[1])
    return {
        "protocol": "cv5",
        "model": model_name,
        "seed": seed,
        **summarise(folds),
        "folds": folds,
    }


def summarise(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and (population) standard deviation over folds of every headline metric."""
    summary: dict[str, Any] = {}
    for section in SECTIONS:
        summary[section] = {
            key: _mean_std([fold[section].get(key, np.nan) for fold in folds])
            for key in METRIC_KEYS
        }
    for key in ("coverage_train", "coverage_test"):
        summary[key] = _mean_std([fold[key] for fold in folds])
    return summary


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def official_split(
    model_name: str, data: LabelledFeatures, seed: int = DEFAULT_SEED, **params: Any
) -> tuple[Pipeline, dict[str, Any]]:
    """Train on ``Training``, test on ``PrivateTest``; the fitted model and its scores."""
    train = np.flatnonzero(np.isin(data.usage, TRAIN_USAGE))
    test = np.flatnonzero(np.isin(data.usage, TEST_USAGE))
    if len(train) == 0 or len(test) == 0:
        raise DatasetError(
            "the official split needs rows with Usage Training and PrivateTest; "
            f"this dataset has {sorted(set(data.usage.tolist()))}"
        )
    model, scores = score_split(model_name, data, train, test, seed, **params)
    split = {"train_usage": list(TRAIN_USAGE), "test_usage": list(TEST_USAGE)}
    return model, {"protocol": "official", "model": model_name, "seed": seed, **split, **scores}


def evaluate(
    model_name: str, data: LabelledFeatures, protocols: tuple[str, ...], seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """Scores of ``model_name`` under each protocol, keyed by protocol name."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise UsageError(f"unknown protocol {unknown[0]!r}; choose from {', '.join(PROTOCOLS)}")
    results: dict[str, Any] = {}
    if "cv5" in protocols:
        results["cv5"] = cross_validate(model_name, data, seed)
    if "official" in protocols:
        results["official"] = official_split(model_name, data, seed)[1]
    return results


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
