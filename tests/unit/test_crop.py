"""The aligned face crop: geometry, and the same pixels in the trainer and on the device."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.features.blendshapes import BlendshapeExtractor, FaceFeatures, grey_to_rgb
from device.features.crop import (
    CROP_POINTS,
    DEFAULT_CROP,
    CropSpec,
    area_averaged_crop,
    crop_inverse,
    face_crop,
    whole_image_crop,
)
from trainer.crops import extract_crops
from trainer.extract import ExtractionConfig

FACES = Path(__file__).resolve().parents[3] / "shared" / "assets" / "faces_rgb"
PINNED_CROP_SHA256 = "fd9b2b01e9fc9e08518f593c573d1accaa4037cb2ed6827c3956c01470ed0e5c"


def corner_points(left: tuple[float, float], right: tuple[float, float], size: tuple[int, int]):
    """Normalised CROP_POINTS whose eye centres are ``left`` and ``right`` (pixels)."""
    w, h = size
    pts = [(left[0] - 3, left[1]), (left[0] + 3, left[1]), (right[0] - 3, right[1])]
    pts.append((right[0] + 3, right[1]))
    return np.array([(x / w, y / h) for x, y in pts], dtype=np.float32)


def forward_map(points: np.ndarray, size: tuple[int, int], spec: CropSpec) -> np.ndarray:
    """Image pixels → crop pixels: the inverse of the crop's own map, as a 2 x 3 matrix."""
    inverse = np.vstack([crop_inverse(points, size[0], size[1], spec), [0, 0, 1]])
    return np.linalg.inv(inverse)[:2]


@pytest.mark.parametrize("angle_deg", [0.0, 17.0, -30.0, 150.0])
def test_eye_centres_land_where_the_spec_says(angle_deg: float) -> None:
    spec = CropSpec(size=64, eye_distance=0.4, eye_line=0.35)
    centre, half = np.array([200.0, 150.0]), 40.0
    direction = np.array([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))])
    left, right = centre - half * direction, centre + half * direction
    points = corner_points(tuple(left), tuple(right), (400, 300))
    matrix = forward_map(points, (400, 300), spec)
    corners = points.astype(np.float64) * (400, 300)  # the float32 points, as the crop reads them
    eyes = np.array([corners[0:2].mean(axis=0), corners[2:4].mean(axis=0)])
    mapped = (matrix[:, :2] @ eyes.T).T + matrix[:, 2]
    expected_y = spec.eye_line * spec.size
    half_gap = spec.eye_distance * spec.size / 2
    assert mapped == pytest.approx(
        np.array([[32 - half_gap, expected_y], [32 + half_gap, expected_y]]), abs=1e-6
    )


def test_crop_of_a_rotated_face_is_upright() -> None:
    """A bright dot placed between the eyes of a tilted face ends up at the crop's eye line."""
    image = np.zeros((300, 400), np.uint8)
    left, right = np.array([160.0, 120.0]), np.array([230.0, 160.0])
    middle = ((left + right) / 2).round().astype(int)
    cv2.circle(image, (int(middle[0]), int(middle[1])), 4, 255, -1)
    crop = face_crop(image, corner_points(tuple(left), tuple(right), (400, 300)))
    y, x = np.unravel_index(np.argmax(cv2.GaussianBlur(crop, (5, 5), 0)), crop.shape)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert abs(x - 24) <= 1 and abs(y - DEFAULT_CROP.eye_line * 48) <= 1.5


def test_rgb_and_grey_inputs_give_the_same_crop() -> None:
    grey = np.random.default_rng(0).integers(0, 255, (120, 160), dtype=np.uint8)
    points = corner_points((60, 50), (100, 52), (160, 120))
    diff = face_crop(grey, points).astype(int) - face_crop(grey_to_rgb(grey), points)
    assert np.abs(diff).max() <= 1  # at most rounding of the grey weights


def test_crop_pixels_are_pinned() -> None:
    """A checksum of one crop: an OpenCV that samples differently fails here, not in the field.

    Run on the Pi as on the training machine; if it fails after an OpenCV upgrade, the crop
    version must go up and the bundle be rebuilt.
    """
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    frame[100:260, 200:440] = cv2.GaussianBlur(frame[100:260, 200:440], (9, 9), 3)
    points = corner_points((290.3, 171.8), (351.6, 166.2), (640, 360))
    crop = face_crop(frame, points)
    digest = hashlib.sha256(crop.tobytes()).hexdigest()
    assert digest == PINNED_CROP_SHA256, f"the crop changed (sha256 {digest})"


def test_warp_is_bilinear_with_the_edge_repeated() -> None:
    """Against a direct float bilinear sample, edge repeated: the same to within rounding."""
    grey = np.random.default_rng(1).integers(0, 256, (120, 160), dtype=np.uint8)
    points = corner_points((52.2, 47.9), (91.7, 55.1), (160, 120))
    inverse = crop_inverse(points, 160, 120, DEFAULT_CROP)
    ys, xs = np.mgrid[0:48, 0:48].astype(np.float64)
    src_x = np.clip(inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2], 0, 159)
    src_y = np.clip(inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2], 0, 119)
    x0, y0 = np.floor(src_x).astype(int), np.floor(src_y).astype(int)
    x1, y1 = np.minimum(x0 + 1, 159), np.minimum(y0 + 1, 119)
    fx, fy = src_x - x0, src_y - y0
    g = grey.astype(np.float64)
    top = g[y0, x0] * (1 - fx) + g[y0, x1] * fx
    bottom = g[y1, x0] * (1 - fx) + g[y1, x1] * fx
    expected = top * (1 - fy) + bottom * fy
    diff = face_crop(grey, points).astype(float) - expected
    assert np.abs(diff).max() <= 0.51 and np.abs(diff).mean() < 0.3


def test_whole_image_crop_keeps_a_48px_face_and_resizes_others() -> None:
    face = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48).astype(np.uint8)
    assert np.array_equal(whole_image_crop(face), face)
    assert whole_image_crop(np.zeros((96, 96, 3), np.uint8)).shape == (48, 48)


def test_spec_round_trips_through_the_manifest_dict() -> None:
    spec = CropSpec(size=56, eye_distance=0.3, eye_line=0.4)
    assert CropSpec.from_dict(spec.as_dict()) == spec


def test_trainer_and_device_make_the_same_pixels(landmarker_path: Path, tmp_path: Path) -> None:
    """The trainer's cached crops of real faces equal what the device computes from the frame."""
    greys = []
    for name in ("pyfeat_0-f15-hao-ph.jpg", "pyfeat_0-f1-su-ph.jpg", "astronaut.png"):
        bgr = cv2.imread(str(FACES / name))
        greys.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (160, 160)))
    images = np.stack(greys)
    config = ExtractionConfig(
        landmarker_path=landmarker_path,
        cache_dir=tmp_path,
        jobs=1,
        timing_sample=0,
        progress=False,
    )
    crops = extract_crops(images, config)
    assert crops.face_found.all()
    with BlendshapeExtractor(landmarker_path) as extractor:
        for grey, trained in zip(images, crops.values, strict=True):
            frame = grey_to_rgb(grey)
            face = extractor.extract(frame)
            assert isinstance(face, FaceFeatures)
            on_device = face_crop(frame, face.points_xy(CROP_POINTS), DEFAULT_CROP)
            assert np.array_equal(on_device, trained)
    again = extract_crops(images, config)  # from the cache this time
    assert np.array_equal(again.values, crops.values) and again.timings["computed_images"] == 0


def test_area_averaged_crop_equals_the_plain_one_for_small_faces() -> None:
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    points = corner_points((60, 50), (85, 52), (160, 120))  # ~1.4 image px per crop px
    assert np.array_equal(area_averaged_crop(image, points), face_crop(image, points))


def test_area_averaged_crop_of_a_large_face_is_the_crop_of_the_averaged_image() -> None:
    k = 5
    small = cv2.GaussianBlur(
        np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8), (5, 5), 1.5
    )
    large = np.repeat(np.repeat(small, k, axis=0), k, axis=1)  # each pixel a k x k block
    points = corner_points((52.3 * k, 40.1 * k), (70.6 * k, 43.2 * k), (128 * k, 96 * k))
    expected = face_crop(small, points).astype(int)  # same normalised points, image 1/k the size
    assert np.abs(area_averaged_crop(large, points).astype(int) - expected).max() <= 2


def test_area_averaged_crop_removes_aliasing_that_point_sampling_keeps() -> None:
    stripes = np.zeros((600, 800), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: pure detail above any crop's resolution
    points = corner_points((330, 280), (470, 280), (800, 600))  # ~8 image px per crop px
    assert face_crop(stripes, points).std() > 40  # sampled stripes: noise that is not there
    averaged = area_averaged_crop(stripes, points)
    assert averaged.shape == (48, 48) and averaged.std() < 3 and abs(averaged.mean() - 127.5) < 3


def test_area_averaged_crop_of_a_face_at_the_edge_keeps_its_shape() -> None:
    image = np.random.default_rng(2).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    points = corner_points((5, 4), (95, 6), (400, 300))  # most of the crop outside the frame
    crop = area_averaged_crop(image, points)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
