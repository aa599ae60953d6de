"""The ONNX classifier and its manifest contract, on the real built-in model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.errors import ModelMismatch
from device.features.schema import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from device.inference.classifier import BUILTIN_MODEL, ModelHolder, OnnxClassifier
from device.inference.manifest import manifest_path_for, sha256_of


def copy_model(folder: Path) -> Path:
    target = folder / BUILTIN_MODEL.name
    shutil.copy(BUILTIN_MODEL, target)
    shutil.copy(manifest_path_for(BUILTIN_MODEL), manifest_path_for(target))
    return target


def edit_manifest(onnx: Path, **changes: object) -> None:
    path = manifest_path_for(onnx)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_builtin_model_fits_the_budget_and_predicts() -> None:
    assert BUILTIN_MODEL.stat().st_size <= 5 * 1024 * 1024
    model = OnnxClassifier(BUILTIN_MODEL)
    row = np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
    row[:52] = 0.1
    probs = model.predict_proba(row)
    assert probs.shape == (len(model.labels),)
    assert abs(float(probs.sum()) - 1.0) < 1e-4
    assert "happy" in model.labels


def test_wrong_sha256_is_refused(tmp_path: Path) -> None:
    onnx = copy_model(tmp_path)
    edit_manifest(onnx, sha256="0" * 64)
    with pytest.raises(ModelMismatch, match="corrupt or was replaced"):
        OnnxClassifier(onnx)


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    onnx = copy_model(tmp_path)
    edit_manifest(onnx, feature_schema_version=99)
    with pytest.raises(ModelMismatch, match="feature schema v99"):
        OnnxClassifier(onnx)


def test_unknown_feature_is_refused(tmp_path: Path) -> None:
    onnx = copy_model(tmp_path)
    names = json.loads(manifest_path_for(onnx).read_text())["feature_names"]
    edit_manifest(onnx, feature_names=["blendshape.thirdEyeOpen", *names[1:]])
    with pytest.raises(ModelMismatch, match="thirdEyeOpen"):
        OnnxClassifier(onnx)


def test_missing_manifest_and_missing_model(tmp_path: Path) -> None:
    onnx = copy_model(tmp_path)
    manifest_path_for(onnx).unlink()
    with pytest.raises(ModelMismatch, match=r"manifest .* is missing"):
        OnnxClassifier(onnx)
    with pytest.raises(ModelMismatch, match="missing"):
        OnnxClassifier(tmp_path / "nothing.onnx")


def test_corrupt_onnx_with_matching_hash_is_refused(tmp_path: Path) -> None:
    onnx = copy_model(tmp_path)
    onnx.write_bytes(b"this is not a protobuf" * 10)
    edit_manifest(onnx, sha256=sha256_of(onnx))
    with pytest.raises(ModelMismatch, match="cannot be loaded by onnxruntime"):
        OnnxClassifier(onnx)


def test_failed_reload_keeps_the_running_model(tmp_path: Path) -> None:
    onnx = copy_model(tmp_path)
    holder = ModelHolder(onnx)
    before = holder.current
    edit_manifest(onnx, feature_schema_version=99)
    assert holder.reload() is False
    assert holder.current is before
    edit_manifest(onnx, feature_schema_version=FEATURE_SCHEMA_VERSION)
    assert holder.reload() is True
    assert holder.current is not before


def test_bad_model_in_config_exits_78_with_one_line(tmp_path: Path) -> None:
    onnx = copy_model(tmp_path)
    edit_manifest(onnx, sha256="0" * 64)
    config = tmp_path / "device.toml"
    config.write_text(
        f'device_id = "t"\n[rgb]\ntype = "synthetic"\n[model]\npath = "{onnx}"\n'
        '[mqtt]\nhost = "127.0.0.1"\nport = 9\n'
    )
    cmd = [sys.executable, "-m", "device.cli", "run", "--config", str(config)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("emotion-device: model file")


def test_builtin_choice_fused_by_default_and_blendshapes_on_request(tmp_path: Path) -> None:
    from device.inference.bundle import FusedModel
    from device.inference.classifier import load_rgb_model

    assert isinstance(ModelHolder(None).current, FusedModel)
    only = ModelHolder(None, "blendshapes").current
    assert isinstance(only, OnnxClassifier) and only.name.startswith("fer2013_blendshapes_hgb@")
    not_a_bundle = tmp_path / "notes.json"
    not_a_bundle.write_text('{"format": "something else"}')
    with pytest.raises(ModelMismatch, match="not a model bundle"):
        load_rgb_model(not_a_bundle)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "does not exist"),
        ("{not json", "is not readable JSON"),
        ('["a list"]', "is not a model bundle"),
        ('{"format": "emotion-edge-model"}', "is not a model bundle"),
        ('{"format": "emotion-edge-bundle", "name": "x"}', "wrong or missing keys"),
    ],
)
def test_broken_bundle_manifests_are_one_sentence(
    content: str | None, fragment: str, tmp_path: Path
) -> None:
    from device.inference.classifier import load_rgb_model

    path = tmp_path / "bundle.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ModelMismatch, match=fragment) as error:
        load_rgb_model(path)
    assert "\n" not in str(error.value)


def test_bundle_without_a_component_is_refused(tmp_path: Path) -> None:
    from device.inference.bundle import read_bundle
    from device.inference.classifier import MODELS_DIR

    raw = json.loads((MODELS_DIR / "fer2013_fused.json").read_text())
    del raw["files"]["stacker"]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelMismatch, match="lacks its stacker"):
        read_bundle(path)


def test_bundle_trained_on_another_crop_version_is_refused(tmp_path: Path) -> None:
    from device.features.crop import CROP_VERSION
    from device.inference.bundle import read_bundle
    from device.inference.classifier import MODELS_DIR

    raw = json.loads((MODELS_DIR / "fer2013_fused.json").read_text())
    raw["crop"]["version"] = CROP_VERSION - 1
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelMismatch, match=f"crop version {CROP_VERSION - 1}.*rebuild it"):
        read_bundle(path)


def test_bundle_whose_stacker_takes_other_inputs_is_refused(tmp_path: Path) -> None:
    import shutil

    from device.inference.bundle import FusedModel
    from device.inference.classifier import MODELS_DIR
    from device.inference.manifest import sha256_of

    for file in MODELS_DIR.iterdir():
        shutil.copy(file, tmp_path / file.name)
    raw = json.loads((tmp_path / "fer2013_fused.json").read_text())
    wrong = tmp_path / "fer2013_blendshapes_hgb.onnx"  # takes 70 features, not 14 logits
    raw["files"]["stacker"] = {"file": wrong.name, "sha256": sha256_of(wrong)}
    (tmp_path / "fer2013_fused.json").write_text(json.dumps(raw))
    with pytest.raises(ModelMismatch, match="its stacker 14 logits") as error:
        FusedModel(tmp_path / "fer2013_fused.json")
    assert "\n" not in str(error.value)
