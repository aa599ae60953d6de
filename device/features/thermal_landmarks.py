"""Thermal faces and their 54 landmarks through dlib: the only dlib import in the project.

- ``ThermalFaceDetector``: IS2AI's HOG + linear SVM thermal face detector
  (``dlib.simple_object_detector``, asset ``thermal_face_detector``).
- ``ThermalLandmarker``: a 54-point ``dlib.shape_predictor`` in the SF-TL54 layout, IS2AI's
  published one or one ``emotion-trainer thermal-landmarks`` trained.
- ``train_shape_predictor``: dlib's trainer over labelme-annotated images (SF-TL54 format).

Both models were trained on 8-bit renderings of thermal images, so a radiometric frame is first
stretched to 8 bits with ``to_grey8`` (robust percentiles of the frame, hot = bright).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import AssetError
from device.features.thermal_roi import LANDMARK_COUNT, Box

Grey8 = npt.NDArray[np.uint8]
STRETCH_PERCENTILES = (1.0, 99.0)


def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise AssetError(
            "dlib is not installed: pip install 'emotion-edge[thermal]' for thermal faces"
        ) from None
    return dlib


def to_grey8(frame: npt.NDArray[np.floating[Any]] | npt.NDArray[np.integer[Any]]) -> Grey8:
    """A thermal frame (°C or counts) as contiguous 8-bit grey, robustly stretched."""
    values = np.asarray(frame, dtype=np.float32)
    low, high = np.percentile(values, STRETCH_PERCENTILES)
    scale = 255.0 / max(float(high - low), 1e-6)
    grey = np.clip((values - low) * scale, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(grey)


def _box(rect: Any, zoom: int) -> Box:
    """dlib's inclusive pixel rectangle in a ``zoom``-times image → a pixel-centre Box here."""
    edges = (rect.left() - 0.5, rect.top() - 0.5, rect.right() + 0.5, rect.bottom() + 0.5)
    x0, y0, x1, y1 = ((v + 0.5) / zoom - 0.5 for v in edges)
    return Box(x0, y0, x1, y1)


def _zoomed(grey: Grey8, zoom: int) -> Grey8:
    if zoom == 1:
        return grey
    return np.ascontiguousarray(np.repeat(np.repeat(grey, zoom, axis=0), zoom, axis=1))


class ThermalFaceDetector:
    """Face boxes in a thermal image, largest first.

    The HOG detector was trained on 464 x 348 frames and misses faces in a Lepton's 160 x 120,
    so small images are enlarged (pixel repetition) to at least ``min_width_px`` first.
    """

    def __init__(self, svm_path: Path, upsample: int = 1, min_width_px: int = 480) -> None:
        if not svm_path.is_file():
            raise AssetError(f"thermal face detector {svm_path} does not exist")
        try:
            self._detector = _dlib().simple_object_detector(str(svm_path))
        except RuntimeError as exc:
            raise AssetError(f"{svm_path} is not a dlib object detector: {exc}") from None
        self.upsample = upsample
        self.min_width_px = min_width_px

    def detect(self, grey: Grey8) -> list[Box]:
        zoom = max(1, -(-self.min_width_px // grey.shape[1]))
        rects = self._detector(_zoomed(grey, zoom), self.upsample)
        boxes = [_box(r, zoom) for r in rects]
        return sorted(boxes, key=lambda b: b.width * b.height, reverse=True)


class ThermalLandmarker:
    """54 landmarks (x, y in pixels) inside a face box."""

    def __init__(self, predictor_path: Path) -> None:
        if not predictor_path.is_file():
            raise AssetError(f"thermal landmark model {predictor_path} does not exist")
        try:
            self._predictor = _dlib().shape_predictor(str(predictor_path))
        except RuntimeError as exc:
            raise AssetError(f"{predictor_path} is not a dlib shape predictor: {exc}") from None

    def landmarks(self, grey: Grey8, box: Box) -> npt.NDArray[np.float64]:
        rect = _dlib().rectangle(int(box.x0), int(box.y0), int(box.x1), int(box.y1))
        shape = self._predictor(grey, rect)
        if shape.num_parts != LANDMARK_COUNT:
            raise AssetError(f"thermal landmark model gives {shape.num_parts} points, not 54")
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


@dataclass(frozen=True)
class LabelledFace:
    """One annotated image: its 8-bit pixels, the face box and 54 points (x, y)."""

    image: Grey8
    box: Box
    points: npt.NDArray[np.float64]


@dataclass(frozen=True)
class PredictorTraining:
    tree_depth: int = 4
    cascade_depth: int = 10
    nu: float = 0.1
    oversampling: int = 20
    threads: int = 2


def train_shape_predictor(
    faces: Sequence[LabelledFace], out_path: Path, options: PredictorTraining
) -> None:
    """Fit a dlib shape predictor on ``faces`` and save it to ``out_path``."""
    dlib = _dlib()
    settings = dlib.shape_predictor_training_options()
    settings.tree_depth = options.tree_depth
    settings.cascade_depth = options.cascade_depth
    settings.nu = options.nu
    settings.oversampling_amount = options.oversampling
    settings.num_threads = options.threads
    images = [face.image for face in faces]
    shapes = [_full_object_detection(dlib, face) for face in faces]
    predictor = dlib.train_shape_predictor(images, [[s] for s in shapes], settings)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    predictor.save(str(out_path))


def _full_object_detection(dlib: Any, face: LabelledFace) -> Any:
    rect = dlib.rectangle(int(face.box.x0), int(face.box.y0), int(face.box.x1), int(face.box.y1))
    points = [dlib.point(round(float(x)), round(float(y))) for x, y in face.points]
    return dlib.full_object_detection(rect, points)


def mean_point_error(landmarker: ThermalLandmarker, faces: Sequence[LabelledFace]) -> float:
    """Mean distance between predicted and annotated points, over the face box diagonal."""
    errors = []
    for face in faces:
        predicted = landmarker.landmarks(face.image, face.box)
        diagonal = float(np.hypot(face.box.width, face.box.height))
        errors.append(float(np.linalg.norm(predicted - face.points, axis=1).mean()) / diagonal)
    return float(np.mean(errors)) if errors else float("nan")
