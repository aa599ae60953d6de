"""The mid-grey margin around faces that fill their image (FER2013's), for the landmarker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from device.features.framing import MARGIN_GREY, framed, framed_stack
from trainer.datasets.fer2013 import FerDataset
from trainer.extract import ExtractionConfig, Features, extract_features, extraction_provenance


def test_framed_puts_the_image_inside_a_grey_margin() -> None:
    grey = np.arange(48 * 40, dtype=np.uint16).reshape(48, 40).astype(np.uint8)
    out = framed(grey, 0.25)
    assert out.shape == (72, 60)
    assert np.array_equal(out[12:60, 10:50], grey)
    inside = np.zeros(out.shape, bool)
    inside[12:60, 10:50] = True
    assert np.all(out[~inside] == MARGIN_GREY)
    rgb = np.stack([grey] * 3, axis=2)
    assert np.array_equal(framed(rgb, 0.25), np.stack([out] * 3, axis=2))
    assert framed(grey, 0.0) is grey


def test_a_stack_is_framed_like_each_image() -> None:
    stack = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    out = framed_stack(stack, 0.25)
    for image, one in zip(stack, out, strict=True):
        assert np.array_equal(one, framed(image, 0.25))
    assert framed_stack(stack, 0.0) is stack


@pytest.fixture(scope="module")
def config(landmarker_path: Path, tmp_path_factory: pytest.TempPathFactory) -> ExtractionConfig:
    return ExtractionConfig(
        landmarker_path=landmarker_path,
        cache_dir=tmp_path_factory.mktemp("cache"),
        jobs=1,
        timing_sample=0,
        progress=False,
    )


@pytest.fixture(scope="module")
def framed_features(fer_slice: FerDataset, config: ExtractionConfig) -> Features:
    return extract_features(fer_slice.images, replace(config, face_margin=0.25))


def test_the_margin_keys_the_cache_only_when_set(
    fer_slice: FerDataset, config: ExtractionConfig
) -> None:
    plain = extraction_provenance(fer_slice.images, config)
    assert "face_margin" not in plain  # caches made before margins existed still match
    with_margin = extraction_provenance(fer_slice.images, replace(config, face_margin=0.25))
    assert with_margin["face_margin"] == 0.25
    assert "mid-grey margin" in with_margin["input"]
    assert with_margin["cache_key"] != plain["cache_key"]


def test_the_landmarker_finds_more_fer_faces_inside_a_margin(
    fer_slice_features: Features, framed_features: Features
) -> None:
    plain_found, framed_found = fer_slice_features.face_found, framed_features.face_found
    # 227 of these 266 faces found as they are, 249 inside the margin
    assert framed_found.sum() >= plain_found.sum() + 0.4 * (~plain_found).sum()
    assert np.all(np.isnan(framed_features.values[~framed_found]))
    assert not np.isnan(framed_features.values[framed_found]).any()


def margin_model(folder: Path, margin: float) -> Path:
    """The device's blendshape model, its manifest saying it was trained inside ``margin``."""
    import json
    import shutil

    from device.inference.classifier import BUILTIN_BLENDSHAPES

    folder.mkdir(parents=True, exist_ok=True)
    onnx = folder / BUILTIN_BLENDSHAPES.name
    shutil.copyfile(BUILTIN_BLENDSHAPES, onnx)
    manifest = json.loads(BUILTIN_BLENDSHAPES.with_suffix(".json").read_text())
    manifest["feature_extraction"]["face_margin"] = margin
    onnx.with_suffix(".json").write_text(json.dumps(manifest))
    return onnx


def test_classify_pre_cropped_frames_faces_as_the_model_was_trained(
    fer_slice: FerDataset,
    fer_slice_features: Features,
    framed_features: Features,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Faces the landmarker misses as they are but finds framed: classify frames as training did."""
    import json

    import cv2

    from device.classify import ClassifyOptions, run_classify

    missed = np.flatnonzero(~fer_slice_features.face_found & framed_features.face_found)[:6]
    paths = []
    for row in missed:
        paths.append(tmp_path / f"fer_{row}.png")
        cv2.imwrite(str(paths[-1]), fer_slice.images[row])
    framed_model = margin_model(tmp_path / "framed", 0.25)
    for model in (margin_model(tmp_path / "plain", 0.0), framed_model):
        options = ClassifyOptions(paths=paths, model=model, as_json=True, pre_cropped=True)
        assert run_classify(options) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    plain, framed_rows = rows[: len(paths)], rows[len(paths) :]
    assert not any(r["face"] for r in plain)  # as in extraction: no face without the margin
    assert len(paths) == 6 and all(r["face"] for r in framed_rows)
    assert all(r["label"] in r["probabilities"] for r in framed_rows)


def test_build_fused_refuses_a_blendshape_model_framed_otherwise(tmp_path: Path) -> None:
    from trainer.errors import UsageError
    from trainer.fused import check_face_margin, open_blendshape_model

    framed_model = margin_model(tmp_path, 0.25)
    check_face_margin(open_blendshape_model(framed_model), framed_model, 0.25)
    with pytest.raises(UsageError, match=r"trained with --face-margin 0\.25, not 0:") as error:
        check_face_margin(open_blendshape_model(framed_model), framed_model, 0.0)
    assert "\n" not in str(error.value)


def test_run_facts_name_the_margin_only_when_set() -> None:
    from trainer.cnn import CnnConfig
    from trainer.fused import default_work_dir, run_facts

    assert "face_margin" not in run_facts(CnnConfig(), "ab")
    assert run_facts(CnnConfig(), "ab", face_margin=0.25)["face_margin"] == 0.25
    assert default_work_dir(CnnConfig(), 0.25) != default_work_dir(CnnConfig())
