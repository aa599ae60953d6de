"""Model builders, and both evaluation protocols on a small real FER2013 slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline

from device.features.schema import RGB_FEATURES
from trainer.datasets.fer2013 import FerDataset
from trainer.errors import DatasetError, UsageError
from trainer.evaluate import (
    LabelledFeatures,
    classification_metrics,
    cross_validate,
    evaluate,
    official_split,
    write_json,
)
from trainer.extract import Features
from trainer.train import build_model, fit_model

FAST_HGB = {"max_iter": 20}


@pytest.fixture(scope="module")
def data(fer_slice: FerDataset, fer_slice_features: Features) -> LabelledFeatures:
    return LabelledFeatures(
        values=fer_slice_features.values,
        face_found=fer_slice_features.face_found,
        labels=fer_slice.labels,
        usage=fer_slice.usage,
        class_names=fer_slice.class_names,
    )


def test_builders_use_the_documented_parameters() -> None:
    rf = build_model("random_forest", seed=7)
    hgb = build_model("hist_gradient_boosting", seed=7)
    assert isinstance(rf, Pipeline) and isinstance(rf[-1], RandomForestClassifier)
    assert rf[-1].get_params()["n_jobs"] == -1 and rf[-1].random_state == 7
    assert rf[-1].n_estimators == 100 and rf[-1].max_depth is None
    params = hgb[-1].get_params()
    assert isinstance(hgb[-1], HistGradientBoostingClassifier)
    assert (params["max_iter"], params["max_leaf_nodes"], params["early_stopping"]) == (
        150,
        31,
        False,
    )
    assert params["random_state"] == 7


def test_unknown_model_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown model 'svm'"):
        build_model("svm")


def test_fit_uses_only_rows_with_a_face(data: LabelledFeatures) -> None:
    model = fit_model(
        "hist_gradient_boosting", data.values, data.labels, data.face_found, **FAST_HGB
    )
    assert model[-1].n_features_in_ == len(RGB_FEATURES)
    assert model[-1].n_iter_ == 20
    with pytest.raises(DatasetError, match="no training row has a face"):
        fit_model("random_forest", data.values, data.labels, np.zeros(len(data.labels), bool))


def test_metrics_known_values() -> None:
    names = ("a", "b", "c")
    metrics = classification_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), names)
    assert metrics["accuracy"] == 0.75
    assert metrics["macro_recall"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert metrics["recall_per_class"] == {"a": 0.5, "b": 1.0, "c": 1.0}


def test_official_split_counts_no_face_rows_as_majority(data: LabelledFeatures) -> None:
    model, scores = official_split("hist_gradient_boosting", data, seed=0, **FAST_HGB)
    test = data.usage == "PrivateTest"
    assert scores["n_test"] == test.sum()
    assert scores["n_test_faces"] == (test & data.face_found).sum()
    assert scores["coverage_test"] == pytest.approx((test & data.face_found).sum() / test.sum())
    predicted = np.full(test.sum(), data.class_names.index(scores["majority_class"]))
    face = data.face_found[test]
    predicted[face] = model.predict(data.values[test][face])
    expected = (predicted == data.labels[test]).mean()
    assert scores["all_rows"]["accuracy"] == pytest.approx(expected)
    assert scores["face_found"]["n"] == face.sum()


def test_cross_validation_summarises_five_folds(data: LabelledFeatures) -> None:
    result = cross_validate("hist_gradient_boosting", data, seed=0, **FAST_HGB)
    assert len(result["folds"]) == 5
    assert sum(fold["n_test"] for fold in result["folds"]) == len(data.labels)
    accuracy = [fold["face_found"]["accuracy"] for fold in result["folds"]]
    assert result["face_found"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracy))
    assert 0 < result["majority_all_rows"]["accuracy"]["mean"] < 0.3


def test_evaluate_writes_json(data: LabelledFeatures, tmp_path: Path) -> None:
    results = evaluate("random_forest", data, ("official",), seed=0)
    write_json(results, tmp_path / "out" / "metrics.json")
    loaded = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert loaded["official"]["protocol"] == "official"
    assert set(loaded["official"]) >= {
        "face_found",
        "all_rows",
        "majority_all_rows",
        "coverage_test",
    }
    with pytest.raises(UsageError, match="unknown protocol"):
        evaluate("random_forest", data, ("loso",))


def test_official_split_needs_private_test(data: LabelledFeatures) -> None:
    only_training = LabelledFeatures(
        data.values,
        data.face_found,
        data.labels,
        np.full(len(data.labels), "Training"),
        data.class_names,
    )
    with pytest.raises(DatasetError, match="needs rows with Usage Training and PrivateTest"):
        official_split("random_forest", only_training)
