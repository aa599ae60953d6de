"""Thermal landmarks through dlib: training a 54-point predictor from labelme files and using it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device.errors import AssetError
from device.features.thermal_landmarks import (
    ThermalFaceDetector,
    ThermalLandmarker,
    mean_point_error,
    to_grey8,
)
from device.features.thermal_roi import Box, landmarks_from_box
from device.sources.thermal.synthetic import SyntheticThermalFace, ThermalFaceSpec
from trainer.thermal_landmarks import load_folder, main

RNG_SEED = 7


def _face(index: int) -> tuple[np.ndarray, Box, np.ndarray]:
    """A synthetic face of varying size and place, a loose annotated box, and true points."""
    rng = np.random.default_rng((RNG_SEED, index))
    spec = ThermalFaceSpec(
        face_size=(rng.uniform(0.24, 0.34), rng.uniform(0.42, 0.54)),
        face_centre=(rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.55)),
        jitter_px=0.0,
    )
    celsius = SyntheticThermalFace(spec, seed=index).render(0)
    truth = spec.face_box()
    points = landmarks_from_box(truth)
    dx, dy = rng.uniform(-4, 4, size=2)  # the annotator's box is a few pixels off
    loose = Box(truth.x0 + dx, truth.y0 + dy, truth.x1 + dx, truth.y1 + dy)
    return celsius, loose, points


def _write(folder: Path, index: int, as_npy: bool) -> None:
    celsius, box, points = _face(index)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"face_{index}.npy" if as_npy else f"face_{index}.png"
    if as_npy:
        np.save(folder / name, celsius)
    else:
        Image.fromarray(to_grey8(celsius)).save(folder / name)
    shapes = [
        {"label": "face", "shape_type": "rectangle", "points": [[box.x0, box.y0], [box.x1, box.y1]]}
    ]
    shapes += [
        {"label": str(i + 1), "shape_type": "point", "points": [list(p)]}
        for i, p in enumerate(points)
    ]
    (folder / f"face_{index}.json").write_text(json.dumps({"shapes": shapes, "imagePath": name}))


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sf-tl54")
    for i in range(40):
        _write(root / "train", i, as_npy=i % 2 == 0)
    for i in range(40, 50):
        _write(root / "val", i, as_npy=False)
    return root / "train", root / "val"


def test_trained_predictor_finds_points_better_than_the_box_alone(
    annotated: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, val = annotated
    model = tmp_path / "thermal_landmarks.dat"
    assert (
        main(["--train", str(train), "--val", str(val), "--out", str(model), "--oversampling", "5"])
        == 0
    )
    assert "held-out (10 faces)" in capsys.readouterr().out
    faces = load_folder(val)
    trained = mean_point_error(ThermalLandmarker(model), faces)
    mean_shape_in_box = float(
        np.mean(
            [
                np.linalg.norm(landmarks_from_box(f.box) - f.points, axis=1).mean()
                / np.hypot(f.box.width, f.box.height)
                for f in faces
            ]
        )
    )
    print(
        f"held-out point error / diagonal: trained {trained:.4f}, box only {mean_shape_in_box:.4f}"
    )
    assert trained < 0.7 * mean_shape_in_box


def test_annotation_problems_are_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"shapes": [], "imagePath": "a.png"}))
    assert main(["--train", str(folder), "--out", str(tmp_path / "m.dat")]) == 65
    assert (
        capsys.readouterr().err.strip()
        == f"emotion-trainer: {folder / 'a.json'} has 0 rectangles; SF-TL54 files have one face box"
    )
    assert main(["--train", str(tmp_path / "none"), "--out", str(tmp_path / "m.dat")]) == 65


def test_missing_or_wrong_model_files_are_asset_errors(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="does not exist"):
        ThermalLandmarker(tmp_path / "missing.dat")
    junk = tmp_path / "junk.svm"
    junk.write_bytes(b"not a model")
    with pytest.raises(AssetError, match="is not a dlib object detector"):
        ThermalFaceDetector(junk)
