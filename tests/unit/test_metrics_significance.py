"""Metrics and significance tests on hand-checked examples, and on the real FER2013 slice."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from trainer.datasets.fer2013 import FerDataset
from trainer.errors import UsageError
from trainer.evaluate import LabelledFeatures, run_protocol
from trainer.extract import Features
from trainer.metrics import (
    aggregate,
    classification_metrics,
    format_mean_std,
    majority_baseline,
    mean_std,
    normalised_confusion,
    per_group_metrics,
)
from trainer.protocols import StratifiedKFoldProtocol
from trainer.significance import (
    bootstrap_difference,
    compare_runs,
    compare_to_majority,
    mcnemar,
    paired_test,
    permutation_test,
    shuffle_labels,
)


@pytest.fixture(autouse=True, scope="module")
def one_openmp_thread() -> Iterator[None]:
    """HistGradientBoosting's OpenMP threads crawl on a busy shared machine; one is plenty here."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


NAMES = ("a", "b", "c")
SMALL_RF = {"n_estimators": 10, "n_jobs": 1}


def test_metrics_of_a_small_example() -> None:
    m = classification_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), NAMES)
    # precision a 1/1, b 1/2, c 1/1; recall a 1/2, b 1, c 1; F1 a 2/3, b 2/3, c 1
    assert m["accuracy"] == 0.75
    assert m["macro_precision"] == pytest.approx(2.5 / 3)
    assert m["macro_recall"] == pytest.approx(2.5 / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["balanced_accuracy"] == pytest.approx(2.5 / 3)
    assert m["recall_per_class"] == {"a": 0.5, "b": 1.0, "c": 1.0}
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert classification_metrics(np.array([], int), np.array([], int), NAMES) == {"n": 0}


def test_balanced_accuracy_counts_only_true_classes() -> None:
    m = classification_metrics(np.array([0, 0, 1]), np.array([0, 2, 1]), NAMES)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["macro_recall"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)  # c was predicted
    assert m["recall_per_class"]["c"] == 0.0


def test_majority_mean_std_and_groups() -> None:
    assert majority_baseline(np.array([2, 1, 1, 2, 0]), 3).tolist() == [1, 1, 1]  # tie: lowest
    summary = mean_std([0.5, 0.7, float("nan")])
    assert summary["mean"] == pytest.approx(0.6) and summary["std"] == pytest.approx(0.1)
    assert summary["n"] == 2 and format_mean_std(summary) == "0.600 ± 0.100"
    assert aggregate([{"accuracy": 0.5}, {"accuracy": 1.0}], ("accuracy",))["accuracy"]["max"] == 1
    norm = normalised_confusion([[1, 3], [0, 0]])
    assert norm.tolist() == [[0.25, 0.75], [0.0, 0.0]]
    groups = np.array(["s1", "s1", "s2", "s2"])
    per = per_group_metrics(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]), groups, NAMES)
    assert per["s1"]["accuracy"] == 0.5 and per["s2"]["accuracy"] == 1.0


def test_paired_tests_by_hand() -> None:
    result = paired_test([0.6, 0.7, 0.9], [0.5, 0.5, 0.6], test_train_ratio=0.25)
    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1
    assert result["mean_difference"] == pytest.approx(0.2)
    assert result["t_test"]["statistic"] == pytest.approx(0.2 / (0.1 / math.sqrt(3)))
    assert result["t_test"]["p_value"] == pytest.approx(0.0742, abs=1e-4)
    assert result["corrected_t_test"]["statistic"] == pytest.approx(
        0.2 / math.sqrt((1 / 3 + 0.25) * 0.01)
    )
    assert result["wilcoxon"]["p_value"] == pytest.approx(0.25)  # 2 of 8 sign patterns
    same = paired_test([0.6] * 5, [0.5] * 5)
    assert same["wilcoxon"]["p_value"] == pytest.approx(0.0625) and same["t_test"]["p_value"] == 0
    assert paired_test([0.5] * 5, [0.5] * 5)["wilcoxon"]["p_value"] == 1.0
    assert "note" in paired_test([0.6], [0.5])
    with pytest.raises(UsageError, match="same folds"):
        paired_test([0.6, 0.7], [0.5])


def test_bootstrap_and_mcnemar_by_hand() -> None:
    y = np.zeros(10, dtype=np.int64)
    right, wrong = np.zeros(10, dtype=np.int64), np.ones(10, dtype=np.int64)
    all_vs_none = bootstrap_difference(y, right, wrong, n_boot=200)
    assert (all_vs_none["difference"], all_vs_none["ci_low"], all_vs_none["ci_high"]) == (1, 1, 1)
    assert all_vs_none["p_value"] == 0.0
    assert bootstrap_difference(y, right, right, n_boot=200)["p_value"] == 1.0
    groups = np.repeat(["c1", "c2", "c3", "c4", "c5"], 2)
    grouped = bootstrap_difference(y, right, wrong, n_boot=50, groups=groups)
    assert grouped["n_units"] == 5 and grouped["resampled"] == "groups"
    y = np.zeros(15, dtype=np.int64)
    a = np.array([0] * 8 + [1] * 2 + [0] * 5)  # only a right on rows 0-7, only b on 8-9
    b = np.array([1] * 8 + [0] * 2 + [0] * 5)  # both right on rows 10-14
    test = mcnemar(y, a, b)
    assert (test["only_a_right"], test["only_b_right"]) == (8, 2)
    assert test["p_value"] == pytest.approx(2 * (1 + 10 + 45) / 1024)


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(0)
    y, a, b = rng.integers(0, 3, (3, 200))
    first = bootstrap_difference(y, a, b, n_boot=300, seed=5)
    assert first == bootstrap_difference(y, a, b, n_boot=300, seed=5)
    assert first["ci_low"] < first["difference"] < first["ci_high"]


def test_shuffle_within_groups_keeps_each_groups_labels() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    groups = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    shuffled = shuffle_labels(labels, np.random.default_rng(0), groups)
    for g in (1, 2):
        assert sorted(shuffled[groups == g]) == sorted(labels[groups == g])
    clips = np.array(["a", "a", "b", "b", "c", "c", "c", "d"])  # one label per clip
    seen = set()
    for seed in range(20):
        moved = shuffle_labels(labels, np.random.default_rng(seed), groups, units=clips)
        for clip in np.unique(clips):
            assert len(set(moved[clips == clip])) == 1  # clips move whole
        assert sorted(moved[clips == "d"].tolist() + moved[clips == "c"][:1].tolist()) == [0, 2]
        seen.add(tuple(moved))
    assert len(seen) == 4  # each subject has two clips: 2 x 2 orders, labels never mixed
    with pytest.raises(UsageError, match="constant within each clip"):
        shuffle_labels(labels, np.random.default_rng(0), units=np.zeros(8))


@pytest.fixture(scope="module")
def happy_vs_surprise(fer_slice: FerDataset, fer_slice_features: Features) -> LabelledFeatures:
    """Two classes the smile blendshapes tell apart: a nearly separable real problem."""
    rows = np.flatnonzero(np.isin(fer_slice.labels, (3, 5)) & fer_slice_features.face_found)
    return LabelledFeatures(
        values=fer_slice_features.values[rows],
        face_found=fer_slice_features.face_found[rows],
        labels=(fer_slice.labels[rows] == 5).astype(np.int64),
        usage=fer_slice.usage[rows],
        class_names=("happy", "surprise"),
    )


def test_permutation_test_separable_and_shuffled(happy_vs_surprise: LabelledFeatures) -> None:
    data = happy_vs_surprise
    protocol = StratifiedKFoldProtocol(3, seed=0)
    real = permutation_test("random_forest", data, protocol, n_permutations=19, params=SMALL_RF)
    assert real["score"] > 0.75 and real["p_value"] == pytest.approx(1 / 20)
    assert real["null_max"] < real["score"] and len(real["permutation_scores"]) == 19
    noise = np.random.default_rng(7).permutation(data.labels)
    shuffled = LabelledFeatures(data.values, data.face_found, noise, data.usage, data.class_names)
    null = permutation_test("random_forest", shuffled, protocol, n_permutations=9, params=SMALL_RF)
    assert null["p_value"] > 0.2


def test_compare_runs_on_the_same_folds(happy_vs_surprise: LabelledFeatures) -> None:
    protocol = StratifiedKFoldProtocol(5, seed=0)
    rf = run_protocol("random_forest", happy_vs_surprise, protocol, params=SMALL_RF)
    params = {"max_iter": 10}
    hgb = run_protocol("hist_gradient_boosting", happy_vs_surprise, protocol, params=params)
    versus = compare_to_majority(rf, happy_vs_surprise, n_boot=300)
    assert versus["bootstrap"]["ci_low"] > 0.1 and versus["bootstrap"]["p_value"] == 0.0
    assert versus["paired"]["corrected_t_test"]["p_value"] < 0.01
    pair = compare_runs(rf, hgb, happy_vs_surprise, n_boot=300)
    assert pair["a"] == "random_forest" and -0.2 < pair["bootstrap"]["difference"] < 0.2
    other = run_protocol("random_forest", happy_vs_surprise, StratifiedKFoldProtocol(5, seed=1))
    with pytest.raises(UsageError, match="same folds"):
        compare_runs(rf, other, happy_vs_surprise)


def test_fold_progress_bar_counts_finished_folds(
    happy_vs_surprise: LabelledFeatures, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer.evaluate import parallel_backend

    protocol = StratifiedKFoldProtocol(5, seed=0)
    quiet = run_protocol("random_forest", happy_vs_surprise, protocol, params=SMALL_RF)
    assert "5/5" not in capsys.readouterr().err
    with parallel_backend("threading", n_jobs=2):
        shown = run_protocol(
            "random_forest", happy_vs_surprise, protocol, params=SMALL_RF, progress=True
        )
    bar = capsys.readouterr().err
    assert "random_forest cv5" in bar and "5/5" in bar and "fold" in bar
    assert shown.fold_scores() == quiet.fold_scores()  # the bar changes nothing else


def test_folds_run_on_the_chosen_joblib_backend(happy_vs_surprise: LabelledFeatures) -> None:
    import importlib.util

    from trainer.evaluate import parallel_backend

    protocol = StratifiedKFoldProtocol(5, seed=0)
    sequential = run_protocol("random_forest", happy_vs_surprise, protocol, params=SMALL_RF)
    with parallel_backend("threading", n_jobs=2):
        threaded = run_protocol("random_forest", happy_vs_surprise, protocol, params=SMALL_RF)
    assert np.array_equal(sequential.predicted, threaded.predicted)
    assert sequential.fold_scores() == threaded.fold_scores()
    with (
        pytest.raises(UsageError, match="unknown joblib backend 'spark'"),
        parallel_backend("spark"),
    ):
        pass
    if importlib.util.find_spec("distributed") is None:
        with pytest.raises(UsageError, match=r"needs dask\.distributed"), parallel_backend("dask"):
            pass


def test_format_interval_signed_and_plain() -> None:
    from trainer.significance import format_interval

    boot = {"difference": 0.0123, "ci_low": -0.0041, "ci_high": 0.02}
    assert format_interval(boot) == "+0.012 [-0.004, +0.020]"
    assert format_interval(boot, 4, signed=False) == "0.0123 [-0.0041, 0.0200]"
