"""Is a score better than chance, and is one model better than another on the same folds?

- ``permutation_test``: refits the model on label-permuted data over the very same splits
  (labels shuffled within groups, e.g. subjects, when given); p = (1 + #{perm >= observed}) /
  (1 + n_permutations), so n permutations cannot show p below 1 / (n + 1).
- ``paired_test``: fold scores of two models (or a model and the majority baseline) on the same
  folds: paired t, the Nadeau-Bengio corrected t (folds share training rows), and Wilcoxon's
  signed-rank test (exact for few folds: with 5 folds its two-sided p is never below 0.0625).
- ``bootstrap_difference``: a percentile CI of the accuracy difference on pooled out-of-fold
  predictions, resampling rows, or whole groups (clips, subjects) when frames are correlated.
- ``mcnemar``: exact test on the rows where exactly one of two models is right.
Every random draw comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from joblib import Parallel, delayed
from scipy import stats

from trainer.errors import UsageError
from trainer.evaluate import LabelledFeatures, ProtocolRun, protocol_splits, score_fold
from trainer.protocols import Protocol
from trainer.train import DEFAULT_SEED

logger = logging.getLogger(__name__)

DEFAULT_PERMUTATIONS = 100
DEFAULT_BOOTSTRAP = 2000
IntArray = npt.NDArray[np.int64]


def shuffle_labels(
    labels: IntArray,
    rng: np.random.Generator,
    groups: npt.NDArray[Any] | None = None,
    units: npt.NDArray[Any] | None = None,
) -> IntArray:
    """A permutation of ``labels``, only within ``groups`` (e.g. subjects) when given.

    With ``units`` (e.g. clips, one label each) whole units exchange their labels, so frames of
    one clip keep sharing a label, as they do in the data.
    """
    if units is not None:
        return _shuffle_units(labels, rng, groups, units)
    if groups is None:
        return rng.permutation(labels)
    shuffled = labels.copy()
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        shuffled[rows] = labels[rng.permutation(rows)]
    return shuffled


def _shuffle_units(
    labels: IntArray,
    rng: np.random.Generator,
    groups: npt.NDArray[Any] | None,
    units: npt.NDArray[Any],
) -> IntArray:
    _, first, index = np.unique(units, return_index=True, return_inverse=True)
    unit_labels = labels[first]
    if not np.array_equal(unit_labels[index], labels):
        raise UsageError("labels must be constant within each clip to permute clips whole")
    unit_groups = None if groups is None else np.asarray(groups)[first]
    return shuffle_labels(unit_labels, rng, unit_groups)[index]


def _mean_fold_score(folds: list[dict[str, Any]], section: str, metric: str) -> float:
    return float(np.nanmean([fold[section].get(metric, np.nan) for fold in folds]))


def permutation_test(
    model_name: str,
    data: LabelledFeatures,
    protocol: Protocol,
    *,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
    groups: npt.NDArray[Any] | None = None,
    units: npt.NDArray[Any] | None = None,
    section: str = "face_found",
    metric: str = "accuracy",
    n_jobs: int | None = None,
    observed: float | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mean fold ``metric`` with true labels (or ``observed``) against permuted labels.

    ``groups`` and ``units`` restrict the permutation as in ``shuffle_labels``.
    """
    if n_permutations < 1:
        raise UsageError("a permutation test needs at least 1 permutation")
    params = dict(params or {})
    splits = protocol_splits(protocol, data)
    rng = np.random.default_rng(seed)
    permuted = [shuffle_labels(data.labels, rng, groups, units) for _ in range(n_permutations)]
    labelings = permuted if observed is not None else [data.labels, *permuted]
    jobs = (
        delayed(score_fold)(
            model_name, dataclasses.replace(data, labels=y), tr, te, seed, params=params
        )
        for y in labelings
        for tr, te in splits
    )
    outputs = Parallel(n_jobs=n_jobs)(jobs)
    folds = [scores for scores, _, _ in outputs]
    k = len(splits)
    scores = [_mean_fold_score(folds[i : i + k], section, metric) for i in range(0, len(folds), k)]
    if observed is None:
        observed, scores = scores[0], scores[1:]
    return permutation_summary(observed, scores, section, metric)


def permutation_summary(
    observed: float, permuted: list[float], section: str = "face_found", metric: str = "accuracy"
) -> dict[str, Any]:
    """The permutation p-value and the null distribution's summary."""
    null = np.asarray(permuted, dtype=float)
    exceed = int(np.sum(null >= observed))
    return {
        "test": "permutation",
        "section": section,
        "metric": metric,
        "score": float(observed),
        "n_permutations": len(null),
        "null_mean": float(null.mean()),
        "null_std": float(null.std()),
        "null_max": float(null.max()),
        "p_value": (exceed + 1) / (len(null) + 1),
        "permutation_scores": null.tolist(),
    }


def paired_test(
    scores_a: list[float], scores_b: list[float], test_train_ratio: float | None = None
) -> dict[str, Any]:
    """Paired t, corrected t (if ``test_train_ratio`` is known) and Wilcoxon on fold scores."""
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape:
        raise UsageError("a paired test needs the scores of both models on the same folds")
    diff = a - b
    result: dict[str, Any] = {"n_folds": len(diff), "mean_difference": float(diff.mean())}
    if len(diff) < 2:
        return {**result, "note": "a paired test needs at least 2 folds"}
    result["t_test"] = _t_test(diff, 1.0 / len(diff))
    if test_train_ratio is not None:
        result["corrected_t_test"] = _t_test(diff, 1.0 / len(diff) + test_train_ratio)
    result["wilcoxon"] = _wilcoxon(diff)
    return result


def _t_test(diff: npt.NDArray[np.float64], variance_factor: float) -> dict[str, float]:
    """t = mean / sqrt(factor * var); factor 1/k is the ordinary paired t-test."""
    spread = float(diff.var(ddof=1))
    if spread == 0.0:
        p = 1.0 if float(diff.mean()) == 0.0 else 0.0
        return {
            "statistic": math.copysign(math.inf, diff.mean()) if p == 0.0 else 0.0,
            "p_value": p,
        }
    t = float(diff.mean()) / math.sqrt(variance_factor * spread)
    return {"statistic": t, "p_value": float(2 * stats.t.sf(abs(t), len(diff) - 1))}


def _wilcoxon(diff: npt.NDArray[np.float64]) -> dict[str, float]:
    if not np.any(diff != 0):
        return {"statistic": 0.0, "p_value": 1.0}
    with warnings.catch_warnings():  # scipy warns about exact p-values with few samples
        warnings.simplefilter("ignore")
        res = stats.wilcoxon(diff)
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue)}


def bootstrap_difference(
    y_true: IntArray,
    pred_a: IntArray,
    pred_b: IntArray,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    groups: npt.NDArray[Any] | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Accuracy of A minus B with a percentile bootstrap CI (rows or whole groups resampled)."""
    if not len(y_true) == len(pred_a) == len(pred_b) or len(y_true) == 0:
        raise UsageError("a bootstrap needs the same non-empty rows predicted by both models")
    diff = (pred_a == y_true).astype(float) - (pred_b == y_true).astype(float)
    sums, counts = _group_totals(diff, groups)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(sums), len(sums))
        draws[b] = sums[pick].sum() / counts[pick].sum()
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    p = min(1.0, 2 * min(float(np.mean(draws <= 0)), float(np.mean(draws >= 0))))
    return {
        "test": "bootstrap",
        "difference": float(diff.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "n_boot": n_boot,
        "resampled": "rows" if groups is None else "groups",
        "n_units": len(sums),
        "p_value": p,
    }


def format_interval(boot: dict[str, Any], digits: int = 3, signed: bool = True) -> str:
    """A ``bootstrap_difference`` result as "+0.012 [+0.004, +0.021]"."""
    spec = f"{'+' if signed else ''}.{digits}f"
    return f"{boot['difference']:{spec}} [{boot['ci_low']:{spec}}, {boot['ci_high']:{spec}}]"


def _group_totals(
    values: npt.NDArray[np.float64], groups: npt.NDArray[Any] | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if groups is None:
        return values, np.ones_like(values)
    _, index = np.unique(groups, return_inverse=True)
    sums = np.bincount(index, weights=values).astype(np.float64)
    return sums, np.bincount(index).astype(np.float64)


def mcnemar(y_true: IntArray, pred_a: IntArray, pred_b: IntArray) -> dict[str, Any]:
    """Exact McNemar test: of the rows only one model gets right, are they split 50/50?"""
    right_a, right_b = pred_a == y_true, pred_b == y_true
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(stats.binomtest(min(only_a, only_b), n, 0.5).pvalue)
    return {"test": "mcnemar", "only_a_right": only_a, "only_b_right": only_b, "p_value": p}


def compare_runs(
    run_a: ProtocolRun,
    run_b: ProtocolRun,
    data: LabelledFeatures,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    groups: npt.NDArray[Any] | None = None,
) -> dict[str, Any]:
    """Model A against model B on the same folds: paired tests, bootstrap CI, McNemar.

    ``groups`` (one per row of ``data``, e.g. clips) makes the bootstrap resample whole groups.
    """
    if not np.array_equal(run_a.test_rows, run_b.test_rows):
        raise UsageError("two models can only be compared on the same folds and rows")
    found = data.face_found[run_a.test_rows]
    return _comparison(
        (run_a.model, run_b.model),
        (run_a.fold_scores(), run_b.fold_scores()),
        (run_a.predicted[found], run_b.predicted[found]),
        data.labels[run_a.test_rows][found],
        run=run_a,
        boot={"n_boot": n_boot, "seed": seed, "groups": _test_groups(groups, run_a, found)},
    )


def compare_to_majority(
    run: ProtocolRun,
    data: LabelledFeatures,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    groups: npt.NDArray[Any] | None = None,
) -> dict[str, Any]:
    """The model against the majority-class baseline of the same folds (rows with a face)."""
    found = data.face_found[run.test_rows]
    return _comparison(
        (run.model, "majority class"),
        (run.fold_scores(), run.fold_scores("majority_face_found")),
        (run.predicted[found], run.baseline[found]),
        data.labels[run.test_rows][found],
        run=run,
        boot={"n_boot": n_boot, "seed": seed, "groups": _test_groups(groups, run, found)},
    )


def _comparison(
    names: tuple[str, str],
    fold_scores: tuple[list[float], list[float]],
    predictions: tuple[IntArray, IntArray],
    y: IntArray,
    *,
    run: ProtocolRun,
    boot: dict[str, Any],
) -> dict[str, Any]:
    """Paired fold test, bootstrap CI and McNemar of A against B, as one result."""
    return {
        "a": names[0],
        "b": names[1],
        "paired": paired_test(*fold_scores, _ratio(run)),
        "bootstrap": bootstrap_difference(y, *predictions, **boot),
        "mcnemar": mcnemar(y, *predictions),
    }


def _test_groups(
    groups: npt.NDArray[Any] | None, run: ProtocolRun, found: npt.NDArray[np.bool_]
) -> npt.NDArray[Any] | None:
    """The groups of a run's pooled test rows with a face, in the order of its predictions."""
    return None if groups is None else np.asarray(groups)[run.test_rows][found]


def _ratio(run: ProtocolRun) -> float | None:
    """Test rows over training rows of a fold, for the corrected t-test (K-fold only)."""
    if len(run.folds) < 2:
        return None
    fold = run.folds[0]
    n_train = fold["n_train_faces"] / max(fold["coverage_train"], 1e-12)
    return float(fold["n_test"] / n_train)
