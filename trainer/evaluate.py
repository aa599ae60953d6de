"""The evaluation loop: any protocol of ``trainer.protocols``, any model, folds through joblib.

Every score is given twice: on the rows where a face was found (what the model sees), and on all
rows, where a row without a face counts as a prediction of the training majority class (what a
user of the device would see). The majority-class baseline and the face coverage come with it.

Folds run through ``joblib.Parallel`` without a fixed backend, so the caller chooses where they
run: ``with joblib.parallel_config(backend="loky", n_jobs=2): ...``, or Dask or Ray (see
``parallel_backend`` and docs/trainer.md, "Running evaluations on a cluster").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from joblib import Parallel, delayed, parallel_config
from sklearn.pipeline import Pipeline
from tqdm import tqdm

from trainer.errors import UsageError
from trainer.metrics import (
    HEADLINE,
    classification_metrics,
    majority_class,
    mean_std,
    per_group_metrics,
)
from trainer.protocols import OfficialSplit, Protocol, StratifiedKFoldProtocol
from trainer.train import DEFAULT_SEED, fit_model

logger = logging.getLogger(__name__)

__all__ = [
    "LabelledFeatures",
    "ProtocolRun",
    "classification_metrics",
    "cross_validate",
    "evaluate",
    "official_split",
    "parallel_backend",
    "run_protocol",
    "write_json",
]

PROTOCOLS = ("cv5", "official")
CV_FOLDS = 5
TRAIN_USAGE = ("Training",)
TEST_USAGE = ("PrivateTest",)
METRIC_KEYS = HEADLINE
SECTIONS = ("face_found", "all_rows", "majority_face_found", "majority_all_rows")
BACKENDS = ("loky", "threading", "multiprocessing", "sequential", "dask", "ray")
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LabelledFeatures:
    """One row per image or frame: features (NaN without a face), labels, split, subject."""

    values: npt.NDArray[np.float32]
    face_found: npt.NDArray[np.bool_]
    labels: npt.NDArray[np.int64]
    usage: npt.NDArray[np.str_]
    class_names: tuple[str, ...]
    subjects: npt.NDArray[Any] | None = None


def fit_predict(
    model_name: str,
    data: LabelledFeatures,
    train_rows: IntArray,
    test_rows: IntArray,
    seed: int = DEFAULT_SEED,
    **params: Any,
) -> tuple[Pipeline, IntArray, int]:
    """Fit on the training rows with a face; predictions for every test row (majority if none)."""
    x, found, y = data.values, data.face_found, data.labels
    model = fit_model(model_name, x[train_rows], y[train_rows], found[train_rows], seed, **params)
    majority = majority_class(y[train_rows])
    test_found = found[test_rows]
    predicted = np.full(len(test_rows), majority, dtype=np.int64)
    if test_found.any():
        predicted[test_found] = model.predict(x[test_rows][test_found])
    return model, predicted, majority


def split_scores(
    data: LabelledFeatures,
    train_rows: IntArray,
    test_rows: IntArray,
    predicted: IntArray,
    majority: int,
) -> dict[str, Any]:
    """Scores of one split's predictions, with the baseline and the face coverage."""
    found = data.face_found
    test_found = found[test_rows]
    baseline = np.full(len(test_rows), majority, dtype=np.int64)
    return {
        **_sections(data.labels[test_rows], predicted, baseline, test_found, data.class_names),
        "majority_class": data.class_names[majority],
        "coverage_train": float(found[train_rows].mean()),
        "coverage_test": float(test_found.mean()),
        "n_train_faces": int(found[train_rows].sum()),
        "n_test": len(test_rows),
        "n_test_faces": int(test_found.sum()),
    }


def score_split(
    model_name: str,
    data: LabelledFeatures,
    train_rows: IntArray,
    test_rows: IntArray,
    seed: int = DEFAULT_SEED,
    **params: Any,
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on the training rows with a face, score the test rows; the model and its scores."""
    fitted = fit_predict(model_name, data, train_rows, test_rows, seed, **params)
    model, predicted, majority = fitted
    return model, split_scores(data, train_rows, test_rows, predicted, majority)


def _sections(
    y_true: IntArray,
    predicted: IntArray,
    baseline: IntArray,
    found: npt.NDArray[np.bool_],
    names: tuple[str, ...],
) -> dict[str, dict[str, Any]]:
    return {
        "face_found": classification_metrics(y_true[found], predicted[found], names),
        "all_rows": classification_metrics(y_true, predicted, names),
        "majority_face_found": classification_metrics(y_true[found], baseline[found], names),
        "majority_all_rows": classification_metrics(y_true, baseline, names),
    }


@dataclass
class ProtocolRun:
    """Per-fold scores and the pooled out-of-fold predictions of one model under one protocol."""

    protocol: str
    model: str
    seed: int
    fold_names: list[str]
    folds: list[dict[str, Any]]
    test_rows: IntArray  # every fold's test rows, concatenated
    fold_index: IntArray  # the fold of each of those rows
    predicted: IntArray  # all-rows predictions (majority class where no face)
    baseline: IntArray  # the fold's training majority class
    params: dict[str, Any] = field(default_factory=dict)

    def fold_scores(self, section: str = "face_found", metric: str = "accuracy") -> list[float]:
        return [float(fold[section].get(metric, np.nan)) for fold in self.folds]

    def summary(self) -> dict[str, Any]:
        return summarise(self.folds)

    def pooled(self, data: LabelledFeatures) -> dict[str, dict[str, Any]]:
        """Metrics over all out-of-fold predictions at once (confusion matrices come from here)."""
        rows = self.test_rows
        return _sections(
            data.labels[rows],
            self.predicted,
            self.baseline,
            data.face_found[rows],
            data.class_names,
        )

    def per_subject(self, data: LabelledFeatures) -> dict[str, dict[str, Any]]:
        """Metrics of each subject's pooled test rows with a face; empty without subjects."""
        if data.subjects is None:
            return {}
        rows = self.test_rows[data.face_found[self.test_rows]]
        keep = data.face_found[self.test_rows]
        subjects = np.asarray(data.subjects)[rows]
        return per_group_metrics(
            data.labels[rows], self.predicted[keep], subjects, data.class_names
        )

    def to_dict(self) -> dict[str, Any]:
        named = [{"fold": n, **f} for n, f in zip(self.fold_names, self.folds, strict=True)]
        head = {"protocol": self.protocol, "model": self.model, "seed": self.seed}
        return {**head, **self.summary(), "folds": named}


def score_fold(
    model_name: str,
    data: LabelledFeatures,
    train: IntArray,
    test: IntArray,
    seed: int,
    *,
    params: dict[str, Any],
) -> tuple[dict[str, Any], IntArray, int]:
    _, predicted, majority = fit_predict(model_name, data, train, test, seed, **params)
    return split_scores(data, train, test, predicted, majority), predicted, majority


def protocol_splits(protocol: Protocol, data: LabelledFeatures) -> list[tuple[IntArray, IntArray]]:
    """The protocol's (train, test) row indices on ``data``; subjects serve as groups."""
    return list(protocol.split(data.values, data.labels, _split_groups(protocol, data)))


def _split_groups(protocol: Protocol, data: LabelledFeatures) -> npt.NDArray[Any] | None:
    from trainer.protocols import ClipGroupedKFold, LeaveOneSubjectOut

    if isinstance(protocol, LeaveOneSubjectOut) and protocol.subjects is None:
        return data.subjects
    if isinstance(protocol, ClipGroupedKFold) and protocol.clips is None:
        raise UsageError("clip-grouped K-fold needs the clip id of every row")
    return None


def run_protocol(
    model_name: str,
    data: LabelledFeatures,
    protocol: Protocol,
    seed: int = DEFAULT_SEED,
    *,
    n_jobs: int | None = None,
    params: dict[str, Any] | None = None,
    progress: bool = False,
) -> ProtocolRun:
    """Fit and score ``model_name`` on every split of ``protocol``, folds through joblib.

    ``progress``: a bar on stderr that moves as folds finish, whatever the backend.
    """
    params = dict(params or {})
    splits = protocol_splits(protocol, data)
    logger.info("%s: %s, %d splits", model_name, protocol.name, len(splits))
    jobs = (delayed(score_fold)(model_name, data, tr, te, seed, params=params) for tr, te in splits)
    desc = f"{model_name} {protocol.name}"
    with tqdm(total=len(splits), desc=desc, unit="fold", disable=not progress) as bar:
        outputs = ParallelWithBar(bar, n_jobs=n_jobs)(jobs)
    sizes = [len(test) for _, test in splits]
    majorities = np.repeat([majority for _, _, majority in outputs], sizes)
    return ProtocolRun(
        protocol=protocol.name,
        model=model_name,
        seed=seed,
        fold_names=protocol.fold_names(_split_groups(protocol, data)),
        folds=[scores for scores, _, _ in outputs],
        test_rows=_concat([test for _, test in splits]),
        fold_index=np.repeat(np.arange(len(splits)), sizes).astype(np.int64),
        predicted=_concat([predicted for _, predicted, _ in outputs]),
        baseline=majorities.astype(np.int64),
        params=params,
    )


class ParallelWithBar(Parallel):  # type: ignore[misc]  # joblib has no type hints
    """``joblib.Parallel`` that moves a tqdm bar as tasks finish, whatever the backend."""

    def __init__(self, bar: tqdm[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bar = bar

    def print_progress(self) -> None:  # joblib calls this each time tasks complete
        self.bar.update(self.n_completed_tasks - self.bar.n)


def _concat(parts: list[IntArray]) -> IntArray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def cross_validate(
    model_name: str, data: LabelledFeatures, seed: int = DEFAULT_SEED, **params: Any
) -> dict[str, Any]:
    """The paper's protocol: stratified 5-fold CV over all rows (shuffled with ``seed``)."""
    protocol = StratifiedKFoldProtocol(CV_FOLDS, seed)
    return run_protocol(model_name, data, protocol, seed, params=params).to_dict()


def summarise(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and (population) standard deviation over folds of every headline metric."""
    summary: dict[str, Any] = {}
    for section in SECTIONS:
        summary[section] = {
            key: mean_std([fold[section].get(key, np.nan) for fold in folds]) for key in METRIC_KEYS
        }
    for key in ("coverage_train", "coverage_test"):
        summary[key] = mean_std([fold[key] for fold in folds])
    return summary


def official_split(
    model_name: str, data: LabelledFeatures, seed: int = DEFAULT_SEED, **params: Any
) -> tuple[Pipeline, dict[str, Any]]:
    """Train on ``Training``, test on ``PrivateTest``; the fitted model and its scores."""
    protocol = OfficialSplit(data.usage, TRAIN_USAGE, TEST_USAGE)
    train, test = next(protocol.split(data.values))
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


@contextmanager
def parallel_backend(name: str = "loky", n_jobs: int | None = None) -> Iterator[None]:
    """Run every joblib loop inside on backend ``name`` (Dask and Ray registered on demand).

    Dask connects to ``$DASK_SCHEDULER_ADDRESS`` if set, else starts a local cluster; Ray joins
    ``$RAY_ADDRESS`` if set, else starts locally.
    """
    if name not in BACKENDS:
        raise UsageError(f"unknown joblib backend {name!r}; choose from {', '.join(BACKENDS)}")
    with _cluster(name), parallel_config(backend=name, n_jobs=n_jobs):
        yield


@contextmanager
def _cluster(name: str) -> Iterator[None]:
    if name == "dask":
        import os

        try:
            from dask.distributed import Client
        except ImportError:
            needs = "backend 'dask' needs dask.distributed: pip install distributed"
            raise UsageError(needs) from None
        with Client(os.environ.get("DASK_SCHEDULER_ADDRESS")):
            yield
        return
    if name == "ray":
        try:
            from ray.util.joblib import register_ray
        except ImportError:
            raise UsageError("backend 'ray' needs Ray: pip install 'ray[default]'") from None
        register_ray()
    yield


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
