"""ROI placement and robust ROI means: synthetic faces with planted temperatures, real images.

Real images (``shared/assets/thermal``, 8-bit renderings, not temperatures): the ROI boxes are
placed by the thermal-only detector-box method and drawn into PNGs under pytest's tmp_path.
The face boxes come from honest, documented sources, not from a detector we run here:
- Lepton 3.5 frames (160x120): the dataset's own YOLO face labels (``labels_yolo/``);
- the TFW close-up (464x348): the box the IS2AI dlib detector returned on it when the assets
  were verified, recorded in the assets README (150, 47, 190 x 207).
The IS2AI detector itself needs dlib; that test runs only when dlib is importable.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.features.schema import FEATURE_NAMES, THERMAL_FEATURES, THERMAL_ROIS
from device.features.thermal_landmarks import ThermalFaceDetector
from device.features.thermal_roi import (
    MEAN_SHAPE,
    Box,
    extract_thermal_rois,
    landmarks_from_box,
    measure_rois,
    place_rois_from_box,
    place_rois_from_landmarks,
    robust_mean,
    roi_pixels,
)
from device.sources.thermal.synthetic import SyntheticThermalFace, ThermalFaceSpec

ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets"
THERMAL = ASSETS / "thermal"
LEPTON = THERMAL / "lepton_chips_NONCOMMERCIAL"
TFW_CLOSE_UP = THERMAL / "tfw" / "103_1_1_4_450_1.png"
TFW_DLIB_BOX_XYWH = (150, 47, 190, 207)  # assets README, section 6 (dlib, full size, upsample 1)
TOLERANCE_C = 0.05
COLOURS_BGR = {
    "nose": (0, 200, 255),
    "forehead": (255, 160, 0),
    "left_eye": (0, 0, 255),
    "right_eye": (0, 255, 0),
}


# ---------------------------------------------------------------- geometry


def test_mean_shape_is_54_normalised_points_mirror_symmetric() -> None:
    shape = np.asarray(MEAN_SHAPE)
    assert shape.shape == (54, 2)
    assert np.all((shape >= 0) & (shape <= 1))
    mirror = {**{i: 16 - i for i in range(17)}, **{17 + i: 26 - i for i in range(5)}}
    mirror.update({36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 31: 35, 32: 34, 48: 50})
    for a, b in mirror.items():
        assert shape[a][0] == pytest.approx(1 - shape[b][0], abs=1e-9), (a, b)
        assert shape[a][1] == pytest.approx(shape[b][1], abs=1e-9), (a, b)


def test_box_pixels_are_those_whose_centres_are_inside() -> None:
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    assert roi_pixels(image, Box(1.5, 0.0, 3.0, 1.0)).tolist() == [[2.0]]
    assert roi_pixels(image, Box(-5, -5, 1.0, 1.0)).tolist() == [[0.0]]
    assert roi_pixels(image, Box(9.5, 9.5, 20, 20)).size == 0


def test_detector_box_placement_records_its_method_and_stays_in_the_face() -> None:
    face = Box.from_xywh(40, 20, 48, 60)
    placement = place_rois_from_box(face)
    assert placement.method == "detector_box"
    assert tuple(placement.boxes) == THERMAL_ROIS
    for roi, box in placement.boxes.items():
        assert face.contains(box), roi
        assert box.width > 0 and box.height > 0, roi
    boxes = placement.boxes
    # the subject's left eye is on the image right; the forehead is above the eyes, nose below
    assert boxes["left_eye"].x0 > boxes["right_eye"].x1
    assert boxes["forehead"].y1 < boxes["left_eye"].y0 < boxes["nose"].y0


def test_landmark_placement_records_its_method_and_checks_its_input() -> None:
    landmarks = landmarks_from_box(Box.from_xywh(0, 0, 100, 100))
    assert place_rois_from_landmarks(landmarks).method == "landmarks"
    with pytest.raises(ValueError, match="54"):
        place_rois_from_landmarks(landmarks[:50])
    with pytest.raises(ValueError, match="positive size"):
        place_rois_from_box(Box(5, 5, 5, 9))
    with pytest.raises(ValueError, match="landmarks or a face box"):
        extract_thermal_rois(np.zeros((4, 4), np.float32))


def test_thermal_feature_names_come_from_the_schema() -> None:
    assert set(THERMAL_FEATURES) <= set(FEATURE_NAMES)
    assert "thermal.left_eye.delta_c" in THERMAL_FEATURES


# ---------------------------------------------------------------- robust mean


def test_robust_mean_ignores_cold_glasses_and_hair_even_when_they_dominate() -> None:
    rng = np.random.default_rng(0)
    skin = 35.0 + rng.normal(0, 0.04, 40)
    for cold in (26.0, 28.5):
        pixels = np.concatenate([skin, np.full(60, cold) + rng.normal(0, 0.04, 60)])
        value = robust_mean(pixels)
        assert abs(value.mean_c - 35.0) < 0.02
        assert value.pixels == 100 and 35 <= value.kept <= 40


def test_robust_mean_drops_implausible_and_non_finite_pixels() -> None:
    pixels = np.array([34.0, 34.1, 33.9, np.nan, np.inf, -273.0, 150.0])
    assert robust_mean(pixels).mean_c == pytest.approx(34.0)
    assert math.isnan(robust_mean(np.array([5.0, 6.0, np.nan])).mean_c)
    assert math.isnan(robust_mean(np.array([])).mean_c)


def test_robust_mean_is_unbiased_for_a_broad_skin_distribution() -> None:
    pixels = np.random.default_rng(1).normal(34.0, 0.6, 4000)
    assert abs(robust_mean(pixels).mean_c - 34.0) < 0.03


# ---------------------------------------------------------------- planted temperatures


def _worst_error(spec: ThermalFaceSpec, place: str, frames: int = 30) -> float:
    """Largest |measured - planted| over ``frames`` frames and the four ROIs."""
    face = SyntheticThermalFace(spec, seed=11)
    rng = np.random.default_rng(5)
    worst = 0.0
    for index in range(frames):
        image, box = face.render(index), face.truth(index)
        if place == "landmarks":  # a shape predictor's landmarks, off by ~0.3 px
            landmarks = landmarks_from_box(box) + rng.normal(0, 0.3, (54, 2))
            rois = extract_thermal_rois(image, landmarks=landmarks)
        else:  # a detector box 1 px off and 3 % too big or small
            dx, dy, scale = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.97, 1.03)
            w, h = box.width * scale, box.height * scale
            rois = extract_thermal_rois(
                image, face_box=Box.from_xywh(box.x0 + dx, box.y0 + dy, w, h)
            )
        assert rois.method == ("landmarks" if place == "landmarks" else "detector_box")
        errors = [abs(rois.values[roi].mean_c - spec.roi_c[roi]) for roi in THERMAL_ROIS]
        worst = max(worst, *errors)
    return worst


@pytest.mark.parametrize(
    ("width", "height", "outliers"), [(160, 120, 0.2), (160, 120, 0.4), (80, 60, 0.2)]
)
@pytest.mark.parametrize("place", ["detector_box", "landmarks"])
def test_roi_means_match_planted_temperatures_within_50_mk(
    width: int, height: int, outliers: float, place: str
) -> None:
    spec = ThermalFaceSpec(
        width_px=width,
        height_px=height,
        roi_c={"nose": 32.6, "forehead": 34.9, "left_eye": 35.4, "right_eye": 35.2},
        glasses_fraction=outliers,
        hair_fraction=outliers,
        noise_c=0.045,
    )
    worst = _worst_error(spec, place)
    print(f"{width}x{height} outliers {outliers:.0%} {place}: worst ROI error {worst:.4f} °C")
    assert worst <= TOLERANCE_C


@pytest.mark.parametrize(("width", "height"), [(160, 120), (80, 60)])
def test_roi_boxes_fall_inside_the_planted_regions(width: int, height: int) -> None:
    spec = ThermalFaceSpec(width_px=width, height_px=height)
    face = spec.face_box()
    placement = place_rois_from_box(face)
    for roi in THERMAL_ROIS:
        assert spec.region_box(roi, face).contains(placement.boxes[roi]), roi


# ---------------------------------------------------------------- real thermal images


def _yolo_box(label: Path, width: int, height: int) -> Box:
    """A YOLO ``class cx cy w h`` label (fractions of the image) in pixel-centre coordinates."""
    _, cx, cy, w, h = (float(v) for v in label.read_text().split())
    return Box.from_xywh(
        (cx - w / 2) * width - 0.5, (cy - h / 2) * height - 0.5, w * width, h * height
    )


def _real_faces() -> list[tuple[str, Path, Box]]:
    if not THERMAL.is_dir():
        pytest.skip(f"thermal assets not found at {THERMAL}")
    faces = []
    for image in sorted(LEPTON.glob("*.jpeg")):
        label = LEPTON / "labels_yolo" / f"{image.stem}.txt"
        faces.append((f"lepton_{image.stem}", image, _yolo_box(label, 160, 120)))
    x, y, w, h = TFW_DLIB_BOX_XYWH
    faces.append(("tfw_close_up", TFW_CLOSE_UP, Box.from_xywh(x - 0.5, y - 0.5, w, h)))
    return faces


def _draw(grey: np.ndarray, face: Box, rois: dict[str, Box], scale: int) -> np.ndarray:
    canvas = cv2.cvtColor(
        cv2.resize(grey, None, fx=scale, fy=scale, interpolation=0), cv2.COLOR_GRAY2BGR
    )

    def corners(box: Box) -> tuple[tuple[int, int], tuple[int, int]]:
        top_left = (round((box.x0 + 0.5) * scale), round((box.y0 + 0.5) * scale))
        return top_left, (round((box.x1 + 0.5) * scale) - 1, round((box.y1 + 0.5) * scale) - 1)

    cv2.rectangle(canvas, *corners(face), (255, 255, 255), 1)
    for roi, box in rois.items():
        cv2.rectangle(canvas, *corners(box), COLOURS_BGR[roi], 1)
    for x, y in landmarks_from_box(face):
        cv2.circle(
            canvas, (round((x + 0.5) * scale), round((y + 0.5) * scale)), 1, (255, 0, 255), -1
        )
    return canvas


def test_roi_boxes_on_real_thermal_faces_are_drawn_for_a_person(tmp_path: Path) -> None:
    out = tmp_path / "thermal_rois"
    out.mkdir()
    for name, path, face in _real_faces():
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        assert grey is not None, path
        rois = measure_rois(grey.astype(np.float32), place_rois_from_box(face))
        assert rois.method == "detector_box"
        levels = {roi: float(roi_pixels(grey, box).mean()) for roi, box in rois.boxes.items()}
        # faces are the warm (bright) part of these AGC renderings: every ROI is on the face
        assert min(levels.values()) > float(np.median(grey)), (name, levels)
        scale = 4 if grey.shape[1] <= 160 else 1
        assert cv2.imwrite(str(out / f"{name}.png"), _draw(grey, face, dict(rois.boxes), scale))
        print(name, {roi: round(v) for roi, v in levels.items()})
    assert len(list(out.glob("*.png"))) == 6
    print(f"ROI drawings (white = face box, magenta = mean shape): {out}")


def test_is2ai_dlib_detector_box_places_rois(tmp_path: Path) -> None:
    """The IS2AI HOG detector through the device's adapter (small Lepton frames enlarged),
    compared with the dataset labels, ROIs drawn from its boxes."""
    detector = ThermalFaceDetector(ASSETS / "models" / "thermal" / "is2ai_dlib_face_detector.svm")
    for name, path, reference in _real_faces():
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        boxes = detector.detect(np.ascontiguousarray(grey))
        assert len(boxes) == 1, name
        face = boxes[0]
        overlap = _iou(face, reference)
        placement = place_rois_from_box(face)
        png = tmp_path / f"{name}_dlib.png"
        scale = 4 if grey.shape[1] <= 160 else 1
        assert cv2.imwrite(str(png), _draw(grey, face, dict(placement.boxes), scale))
        print(f"{name}: dlib box IoU with the reference box {overlap:.2f}")
        assert overlap > 0.5, name
    print(f"ROI drawings from the IS2AI dlib boxes: {tmp_path}")


def _iou(a: Box, b: Box) -> float:
    inter = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(
        0.0, min(a.y1, b.y1) - max(a.y0, b.y0)
    )
    return inter / (a.width * a.height + b.width * b.height - inter)
