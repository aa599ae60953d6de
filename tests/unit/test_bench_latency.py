"""The latency benchmark on a FER2013 slice: real fit, real ONNX export, real onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.bench_latency import main
from trainer.datasets.fer2013 import FerDataset
from trainer.extract import Features


def test_bench_on_slice_features(
    fer_slice: FerDataset, fer_slice_features: Features, tmp_path: Path
) -> None:
    npz = tmp_path / "features.npz"
    np.savez(
        npz,
        features=fer_slice_features.values,
        face_found=fer_slice_features.face_found,
        labels=fer_slice.labels,
        usage=fer_slice.usage,
    )
    out = tmp_path / "latency.json"
    spec = "hist_gradient_boosting:max_iter=5,max_leaf_nodes=7"
    assert main([str(npz), spec, "--evict-mb", "4", "--json", str(out)]) == 0
    (result,) = json.loads(out.read_text())
    assert result["spec"] == spec and 0.0 <= result["accuracy"] <= 1.0
    assert result["onnx_bytes"] > 0 and result["warm_ms"] > 0 and result["cold_ms"] > 0


def test_missing_features_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "none.npz"), "random_forest"]) == 65
    err = capsys.readouterr().err
    assert err.startswith("error: features file") and err.count("\n") == 1
