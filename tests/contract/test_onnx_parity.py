"""An exported model gives the same probabilities in onnxruntime as in scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.features.schema import RGB_FEATURES
from device.inference.classifier import load_onnxruntime
from device.inference.manifest import check_manifest, read_manifest
from trainer.datasets.fer2013 import FerDataset
from trainer.errors import ModelBudgetError, ParityError
from trainer.export import check_parity, export_model, to_onnx
from trainer.extract import Features
from trainer.train import fit_model


@pytest.fixture(scope="module")
def split(fer_slice: FerDataset, fer_slice_features: Features) -> dict[str, np.ndarray]:
    found = fer_slice_features.face_found
    train = fer_slice.usage == "Training"
    return {
        "x": fer_slice_features.values,
        "y": fer_slice.labels,
        "train": train,
        "held_out": ~train & found,
        "found": found,
    }


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("hist_gradient_boosting", {"max_iter": 40}),
        ("random_forest", {}),
        ("extra_trees", {"n_estimators": 20}),
        ("logistic_regression", {}),
        ("mlp", {"hidden_layer_sizes": (16,), "early_stopping": False, "max_iter": 50}),
    ],
)
def test_exported_model_matches_sklearn(
    model: str,
    params: dict[str, object],
    split: dict[str, np.ndarray],
    fer_slice: FerDataset,
    tmp_path: Path,
) -> None:
    x, y, train = split["x"], split["y"], split["train"]
    pipeline = fit_model(model, x[train], y[train], split["found"][train], seed=0, **params)
    held_out = x[split["held_out"]]
    result = export_model(
        pipeline,
        tmp_path,
        "tiny",
        class_names=fer_slice.class_names,
        feature_names=RGB_FEATURES,
        parity_rows=held_out,
        metrics={"note": "test"},
    )
    session = load_onnxruntime().InferenceSession(
        str(result.onnx_path), providers=["CPUExecutionProvider"]
    )
    manifest = read_manifest(result.manifest_path)
    assert [i.name for i in session.get_inputs()] == [manifest.input_name] == ["features"]
    assert manifest.probabilities_output in [o.name for o in session.get_outputs()]
    onnx_p = session.run([manifest.probabilities_output], {"features": held_out})[0]
    sklearn_p = pipeline.predict_proba(held_out)
    np.testing.assert_allclose(onnx_p, sklearn_p, atol=1e-5)
    assert (onnx_p.argmax(1) == sklearn_p.argmax(1)).all()
    assert manifest.labels == list(fer_slice.class_names)
    assert manifest.feature_names == list(RGB_FEATURES)
    assert manifest.metrics["onnx_parity"]["argmax_agreement_ties_allowed"] == 1.0
    assert manifest.software["skl2onnx"] and manifest.created.endswith("+00:00")
    check_manifest(manifest, result.onnx_path)  # the device accepts it


def test_parity_check_rejects_a_different_model(split: dict[str, np.ndarray]) -> None:
    x, y, found = split["x"], split["y"], split["found"]
    train = split["train"]
    one = fit_model("hist_gradient_boosting", x[train], y[train], found[train], max_iter=5)
    other = fit_model("hist_gradient_boosting", x[train], y[train], found[train], max_iter=30)
    with pytest.raises(ParityError, match="ONNX and scikit-learn disagree"):
        check_parity(to_onnx(one, len(RGB_FEATURES)), other, x[split["held_out"]])


def test_size_budget_is_enforced(split: dict[str, np.ndarray], tmp_path: Path) -> None:
    x, y, found = split["x"], split["y"], split["found"]
    pipeline = fit_model("random_forest", x, y, found, n_estimators=5)
    with pytest.raises(ModelBudgetError, match=r"over the 0\.00 MB budget"):
        export_model(
            pipeline,
            tmp_path,
            "big",
            class_names=tuple("abcdefg"),
            feature_names=RGB_FEATURES,
            parity_rows=x[found],
            max_bytes=1000,
        )
    assert not (tmp_path / "big.onnx").exists()


def test_export_is_byte_reproducible(split: dict[str, np.ndarray]) -> None:
    x, y, found = split["x"], split["y"], split["found"]
    pipeline = fit_model("hist_gradient_boosting", x, y, found, max_iter=5)
    assert to_onnx(pipeline, len(RGB_FEATURES)) == to_onnx(pipeline, len(RGB_FEATURES))
