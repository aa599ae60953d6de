"""Thermal facial regions of interest (the paper's four) and their robust mean temperatures.

Pure functions over numpy arrays; no vendor runtime is imported here.

Coordinates: continuous image coordinates in pixels with pixel (col i, row j) *centred* at
(i, j), the convention dlib and OpenCV landmarks use. A ``Box`` holds the pixels whose centres
lie in ``[x0, x1) x [y0, y1)``.

Landmarks follow the IS2AI SF-TL54 54-point layout (0-based, as dlib returns them; see
``../shared/assets/README.md``): 0-16 jaw, 17-21 / 22-26 brows (image-left / image-right),
27-30 nose bridge (30 = tip), 31-35 nose base, 36-41 image-left eye (36 outer, 39 inner),
42-47 image-right eye (42 inner, 45 outer), 48-53 mouth.

**Left and right are the subject's**, as in the paper and in anatomy: in an unmirrored camera
image the subject's left eye is on the image right. So ``left_eye`` is measured around points
42-47 and ``right_eye`` around 36-41.

ROI recipe (from ``../shared/docs/datasets.md``, "Thermal data"):
- nose: the lower nose (tip and alae), x(31)...x(35) by y(29)...y(33);
- eyes: the box around each eye's six points, grown by 15 % of the eye's width on every side
  (30 % wider in total; the same absolute margin vertically, so the periorbital skin is in);
- forehead: no landmarks there; a box spanning x(19)...x(24) whose bottom edge sits 5 % of the
  brow-to-nose-tip distance above the brows and whose height is 0.6 x that distance.

Placement methods (each result records which one placed it):
- ``landmarks``: from a 54-point thermal shape predictor;
- ``registered``: from the RGB camera's MediaPipe landmarks mapped into the thermal image by the
  device's own camera-to-camera registration (``registration.py``), then the same recipe;
- ``detector_box``: thermal-only, the mean 54-point shape ``MEAN_SHAPE`` scaled into a face
  detector's box, then the same recipe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from device.features.schema import THERMAL_ROIS

RoiMethod = Literal["landmarks", "detector_box", "registered"]
FloatArray = npt.NDArray[np.float64]

LANDMARK_COUNT = 54
# Plausible skin temperatures in °C. Wide on purpose: a Lepton's absolute accuracy is ±5 °C.
SKIN_RANGE_C = (20.0, 42.0)
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution x this = its standard deviation
# Bounds on the robust spread used for clipping: the floor keeps a window of +-0.15 °C when a
# ROI is perfectly uniform (sensor noise only); the cap keeps glasses and hair, several
# degrees colder than skin, outside the window even when they inflate the MAD.
MIN_SCALE_C = 0.05
MAX_SCALE_C = 1.5

# The mean 54-point shape in a face detector's box: (x, y) with (0, 0) the box's top-left
# corner and (1, 1) its bottom-right corner; the box spans hairline to chin and cheek to
# cheek, like the IS2AI HOG detector's boxes and the Lepton face labels in the assets.
# Derived by hand for this project from the SF-TL54 layout and textbook facial proportions
# (brows at ~0.28 of the face height, eyes ~0.40, nose tip ~0.60, mouth ~0.79, chin ~0.98,
# jaw as a half-ellipse from eye level, the face split in fifths across). No third-party
# landmark data was used; a trained predictor's mean shape may differ by a few percent.
MEAN_SHAPE: tuple[tuple[float, float], ...] = (
    # jaw 0-16, image-left ear to image-right ear through the chin (8)
    (0.040, 0.400), (0.049, 0.513), (0.075, 0.622), (0.118, 0.722), (0.175, 0.810),
    (0.244, 0.882), (0.324, 0.936), (0.410, 0.969), (0.500, 0.980), (0.590, 0.969),
    (0.676, 0.936), (0.756, 0.882), (0.825, 0.810), (0.882, 0.722), (0.925, 0.622),
    (0.951, 0.513), (0.960, 0.400),
    # brow image-left 17-21 (outer -> inner), brow image-right 22-26 (inner -> outer)
    (0.140, 0.310), (0.215, 0.280), (0.290, 0.270), (0.365, 0.280), (0.440, 0.300),
    (0.560, 0.300), (0.635, 0.280), (0.710, 0.270), (0.785, 0.280), (0.860, 0.310),
    # nose bridge 27-30 (30 = tip), nose base 31-35 (33 = subnasale)
    (0.500, 0.380), (0.500, 0.450), (0.500, 0.520), (0.500, 0.600),
    (0.400, 0.650), (0.450, 0.665), (0.500, 0.670), (0.550, 0.665), (0.600, 0.650),
    # eye image-left 36-41: outer corner, upper x2, inner corner (39), lower x2
    (0.200, 0.400), (0.260, 0.375), (0.330, 0.375), (0.390, 0.400), (0.330, 0.415),
    (0.260, 0.415),
    # eye image-right 42-47: inner corner (42), upper x2, outer corner (45), lower x2
    (0.610, 0.400), (0.670, 0.375), (0.740, 0.375), (0.800, 0.400), (0.740, 0.415),
    (0.670, 0.415),
    # mouth 48-53: corner, outer upper lip, corner, outer lower lip, inner upper, inner lower
    (0.340, 0.790), (0.500, 0.750), (0.660, 0.790), (0.500, 0.840), (0.500, 0.780),
    (0.500, 0.800),
)  # fmt: skip

_NOSE = (29, 31, 33, 35)  # y from 29 (mid-bridge) to 33 (subnasale), x from 31 to 35
_RIGHT_EYE = range(36, 42)  # subject's right = image-left
_LEFT_EYE = range(42, 48)  # subject's left = image-right
_BROW_INNER = (19, 24)  # forehead spans x(19)...x(24)
_NOSE_TIP = 30
EYE_MARGIN = 0.15
FOREHEAD_GAP = 0.05
FOREHEAD_HEIGHT = 0.6


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box ``[x0, x1) x [y0, y1)`` in pixel-centre coordinates."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def from_xywh(cls, x: float, y: float, width: float, height: float) -> Box:
        return cls(x, y, x + width, y + height)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def contains(self, other: Box) -> bool:
        return (
            self.x0 <= other.x0 and self.y0 <= other.y0 and other.x1 <= self.x1
            and other.y1 <= self.y1
        )  # fmt: skip

    def pixel_slices(self, width_px: int, height_px: int) -> tuple[slice, slice]:
        """(rows, cols) of the pixels whose centres lie in the box, clipped to the image."""
        cols = slice(_first_inside(self.x0, width_px), _first_inside(self.x1, width_px))
        rows = slice(_first_inside(self.y0, height_px), _first_inside(self.y1, height_px))
        return rows, cols


def _first_inside(edge: float, size: int) -> int:
    """Index of the first pixel whose centre is >= ``edge``, clipped to [0, size]."""
    return min(max(math.ceil(edge), 0), size)


@dataclass(frozen=True, slots=True)
class RoiPlacement:
    """Where the four ROIs are in one image, and how they were placed."""

    method: RoiMethod
    boxes: Mapping[str, Box]  # keyed by THERMAL_ROIS names


@dataclass(frozen=True, slots=True)
class RoiValue:
    """A robust mean over one ROI: NaN when too few plausible skin pixels were left."""

    mean_c: float
    pixels: int  # pixels inside the box
    kept: int  # pixels that entered the mean


@dataclass(frozen=True, slots=True)
class ThermalRois:
    """The four ROI temperatures of one thermal frame, with the boxes and the method."""

    method: RoiMethod
    boxes: Mapping[str, Box]
    values: Mapping[str, RoiValue]

    def means(self) -> dict[str, float]:
        """ROI name -> robust mean in °C (NaN if unmeasurable), in THERMAL_ROIS order."""
        return {roi: self.values[roi].mean_c for roi in THERMAL_ROIS}


def landmarks_from_box(box: Box) -> FloatArray:
    """The mean 54-point shape scaled into a detector box: a 54 x 2 array of (x, y)."""
    shape = np.asarray(MEAN_SHAPE, dtype=np.float64)
    points: FloatArray = shape * np.array([box.width, box.height]) + np.array([box.x0, box.y0])
    return points


def _bounds(points: FloatArray) -> Box:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return Box(float(x0), float(y0), float(x1), float(y1))


def eye_box(eye_points: FloatArray) -> Box:
    """The six eye points' bounds grown by EYE_MARGIN x the eye's width on every side."""
    tight = _bounds(eye_points)
    pad = EYE_MARGIN * tight.width
    return Box(tight.x0 - pad, tight.y0 - pad, tight.x1 + pad, tight.y1 + pad)


def nose_box(points: FloatArray) -> Box:
    """Lower nose: x(31)...x(35) by y(29)...y(33)."""
    mid_bridge, left, subnasale, right = (points[i] for i in _NOSE)
    return Box(float(left[0]), float(mid_bridge[1]), float(right[0]), float(subnasale[1]))


def forehead_box(points: FloatArray) -> Box:
    """Above the brows: x(19)...x(24), height FOREHEAD_HEIGHT x the brow-to-nose-tip distance."""
    inner_r, inner_l = points[_BROW_INNER[0]], points[_BROW_INNER[1]]
    brow_y = float(min(inner_r[1], inner_l[1]))
    distance = max(float(points[_NOSE_TIP][1]) - brow_y, 0.0)
    bottom = brow_y - FOREHEAD_GAP * distance
    return Box(float(inner_r[0]), bottom - FOREHEAD_HEIGHT * distance, float(inner_l[0]), bottom)


def place_rois_from_landmarks(
    landmarks: npt.ArrayLike, method: RoiMethod = "landmarks"
) -> RoiPlacement:
    """The four ROI boxes from a 54 x 2 landmark array in the SF-TL54 layout."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (LANDMARK_COUNT, 2) or not np.all(np.isfinite(points)):
        raise ValueError(f"expected 54 finite (x, y) landmarks, got shape {points.shape}")
    boxes = {
        "nose": nose_box(points),
        "forehead": forehead_box(points),
        "left_eye": eye_box(points[_LEFT_EYE]),
        "right_eye": eye_box(points[_RIGHT_EYE]),
    }
    return RoiPlacement(method=method, boxes={roi: boxes[roi] for roi in THERMAL_ROIS})


def place_rois_from_box(face_box: Box) -> RoiPlacement:
    """Thermal-only placement: the mean shape in a face detector's box, then the recipe."""
    if not (face_box.width > 0 and face_box.height > 0):
        raise ValueError(f"a face box needs a positive size, got {face_box}")
    return place_rois_from_landmarks(landmarks_from_box(face_box), method="detector_box")


def robust_mean(
    values: npt.ArrayLike,
    skin_range_c: tuple[float, float] = SKIN_RANGE_C,
    k: float = 3.0,
    min_pixels: int = 3,
) -> RoiValue:
    """Mean of the pixels that look like skin, in °C.

    Pixels outside ``skin_range_c`` are dropped. Glasses (opaque to long-wave IR, near room
    temperature) and hair are *colder* than skin, so the search for the skin cluster starts
    from the warm side: the median of the warmer half of the pixels. Two clipping passes
    follow, each keeping pixels within ``k`` robust standard deviations (from the MAD) of the
    median of the pixels kept so far; the second pass is centred on the skin cluster, so the
    final mean is unbiased for symmetric sensor noise. This copes with up to ~70 % cold
    outlier pixels. A ROI covered entirely (e.g. a lens over the whole eye) measures the
    cover. Fewer than ``min_pixels`` skin pixels give NaN.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    low, high = skin_range_c
    skin = flat[np.isfinite(flat) & (flat >= low) & (flat <= high)]
    if skin.size < min_pixels:
        return RoiValue(math.nan, int(flat.size), 0)
    warm = skin[skin >= np.median(skin)]
    kept = skin[_within(skin, warm, k)]  # pass 1: around the warm side
    if kept.size >= min_pixels:
        kept = skin[_within(skin, kept, k)]  # pass 2: around the skin cluster itself
    if kept.size < min_pixels:
        return RoiValue(math.nan, int(flat.size), int(kept.size))
    return RoiValue(float(kept.mean()), int(flat.size), int(kept.size))


def _within(values: FloatArray, reference: FloatArray, k: float) -> npt.NDArray[np.bool_]:
    """``values`` within ``k`` robust standard deviations of ``reference``'s median."""
    centre = float(np.median(reference))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(reference - centre)))
    scale = min(max(spread, MIN_SCALE_C), MAX_SCALE_C)
    result: npt.NDArray[np.bool_] = np.abs(values - centre) <= k * scale
    return result


def roi_pixels(celsius: npt.NDArray[np.floating], box: Box) -> npt.NDArray[np.floating]:
    """The temperatures of the pixels whose centres lie in ``box`` (may be empty)."""
    rows, cols = box.pixel_slices(int(celsius.shape[1]), int(celsius.shape[0]))
    return celsius[rows, cols]


def measure_rois(celsius: npt.NDArray[np.floating], placement: RoiPlacement) -> ThermalRois:
    """Robust mean temperature of each placed ROI in a radiometric frame (H x W, °C)."""
    if celsius.ndim != 2:
        raise ValueError(f"a thermal frame must be H x W, got shape {celsius.shape}")
    values = {roi: robust_mean(roi_pixels(celsius, placement.boxes[roi])) for roi in THERMAL_ROIS}
    return ThermalRois(method=placement.method, boxes=placement.boxes, values=values)


def extract_thermal_rois(
    celsius: npt.NDArray[np.floating],
    *,
    landmarks: npt.ArrayLike | None = None,
    face_box: Box | None = None,
    landmark_method: RoiMethod = "landmarks",
) -> ThermalRois:
    """ROIs from landmarks when there are some (placed by ``landmark_method``), else from the
    face detector's box."""
    if landmarks is not None:
        return measure_rois(celsius, place_rois_from_landmarks(landmarks, landmark_method))
    if face_box is not None:
        return measure_rois(celsius, place_rois_from_box(face_box))
    raise ValueError("ROIs need landmarks or a face box")
