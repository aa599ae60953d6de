"""The shipped-model workflow and the bench table, on the small FER2013 slice."""

from __future__ import annotations

import json
from pathlib import Path

from device.inference.manifest import check_manifest, read_manifest
from trainer.bench_fer import format_table
from trainer.datasets.fer2013 import FerDataset
from trainer.extract import Features
from trainer.workflows import DEFAULT_MODEL_NAME, Prepared, build_default, default_models_dir


def test_build_default_writes_an_honest_manifest(
    fer_slice: FerDataset, fer_slice_features: Features, tmp_path: Path
) -> None:
    result = build_default(Prepared(fer_slice, fer_slice_features), out_dir=tmp_path, seed=0)
    assert result.onnx_path == tmp_path / f"{DEFAULT_MODEL_NAME}.onnx"
    manifest = read_manifest(result.manifest_path)
    check_manifest(manifest, result.onnx_path)
    assert manifest.model_kind == "sklearn.HistGradientBoostingClassifier"
    assert manifest.metrics["protocol"] == "official"
    assert manifest.metrics["test_usage"] == ["PrivateTest"]
    assert manifest.training_data["fitted_on_usage"] == ["Training"]
    assert manifest.training_data["fitted_rows_with_face"] == int(
        fer_slice_features.face_found[fer_slice.usage == "Training"].sum()
    )
    extraction = manifest.feature_extraction
    assert extraction["running_mode"] == "image" and extraction["mediapipe_version"]
    assert extraction["coverage"] == round(fer_slice_features.coverage, 6)
    raw = json.loads(result.manifest_path.read_text())
    assert "ids" not in json.dumps(raw["training_data"])  # no per-image data in a manifest


def test_default_models_dir_is_inside_the_device_package() -> None:
    assert default_models_dir().parts[-2:] == ("device", "models")


def test_bench_table_lists_both_protocols_and_sizes() -> None:
    def scores(acc: float) -> dict[str, dict[str, float]]:
        metrics = {"accuracy": acc, "macro_f1": acc - 0.05}
        return {
            s: metrics
            for s in ("face_found", "all_rows", "majority_face_found", "majority_all_rows")
        }

    def cv(acc: float) -> dict[str, dict[str, dict[str, float]]]:
        return {
            s: {k: {"mean": v, "std": 0.01} for k, v in m.items()} for s, m in scores(acc).items()
        }

    parity = {
        "max_abs_diff": 1e-7,
        "argmax_agreement": 0.998,
        "argmax_agreement_ties_allowed": 1.0,
        "n_rows": 10,
    }
    bench = {
        "n_images": 100,
        "n_faces": 90,
        "coverage": 0.9,
        "seed": 0,
        "timings": {"images_per_s": 200.0, "jobs": 2, "single_core_images_per_s": 110.0},
        "models": {
            "random_forest": {
                "cv5": cv(0.6),
                "official": scores(0.61),
                "onnx_bytes": 2e8,
                "parity": parity,
            },
            "hist_gradient_boosting": {
                "cv5": cv(0.6),
                "official": scores(0.6),
                "onnx_bytes": 4.6e6,
                "parity": parity,
            },
        },
    }
    table = format_table(bench)
    assert "face found in 90.0%" in table and "200.0 images/s with 2 workers" in table
    assert "0.6000 ± 0.0100" in table and "200.00" in table and "4.60" in table
    assert table.count("majority class") == 2 and table.count("parity ") == 2
