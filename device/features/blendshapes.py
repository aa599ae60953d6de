"""52 face blendshapes from MediaPipe FaceLandmarker (the only module that imports mediapipe).

Uses the Tasks API present in both mediapipe 0.10.18 (Pi 4) and 1.x (Pi 5, x86).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from device.errors import ModelMismatch
from device.features.schema import BLENDSHAPE_NAMES

logger = logging.getLogger(__name__)

RunningMode = Literal["image", "video"]


@dataclass(frozen=True, slots=True)
class FaceFeatures:
    """One face: blendshape scores in schema order, and normalised landmarks (memory only)."""

    blendshapes: npt.NDArray[np.float32]  # (52,)
    landmarks: npt.NDArray[np.float32]  # (478, 3), x/y in 0..1 of the image


@dataclass(frozen=True, slots=True)
class NoFace:
    """The explicit 'no face in this frame' state."""


NO_FACE = NoFace()
FaceResult = FaceFeatures | NoFace


def grey_to_rgb(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A grey H x W image as contiguous H x W x 3 RGB, the way the trainer feeds FER faces."""
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


class BlendshapeExtractor:
    """Wraps one FaceLandmarker. Not thread-safe: one per thread or process."""

    def __init__(
        self,
        model_path: Path,
        running_mode: RunningMode = "image",
        min_face_confidence: float = 0.5,
    ) -> None:
        self.running_mode = running_mode
        self._last_ts_ms = -1
        self._mp, self._landmarker = _create_landmarker(
            model_path, running_mode, min_face_confidence
        )

    def extract(self, rgb: npt.NDArray[np.uint8], ts_ms: int | None = None) -> FaceResult:
        """Blendshapes of the first face in an RGB image; VIDEO mode needs rising ``ts_ms``."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=_contiguous(rgb))
        if self.running_mode == "video":
            result = self._landmarker.detect_for_video(image, self._next_ts(ts_ms))
        else:
            result = self._landmarker.detect(image)
        return _to_features(result)

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> BlendshapeExtractor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _next_ts(self, ts_ms: int | None) -> int:
        wanted = self._last_ts_ms + 1 if ts_ms is None else int(ts_ms)
        self._last_ts_ms = max(wanted, self._last_ts_ms + 1)
        return self._last_ts_ms


def mediapipe_version() -> str:
    import mediapipe as mp

    return str(mp.__version__)


def _create_landmarker(model_path: Path, mode: RunningMode, min_conf: float) -> tuple[Any, Any]:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE,
        num_faces=1,
        min_face_detection_confidence=min_conf,
        output_face_blendshapes=True,
    )
    try:
        return mp, vision.FaceLandmarker.create_from_options(options)
    except (RuntimeError, ValueError) as exc:
        raise ModelMismatch(f"MediaPipe cannot load {model_path}: {exc}") from exc


def _contiguous(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    return rgb if rgb.flags["C_CONTIGUOUS"] else np.ascontiguousarray(rgb)


def _to_features(result: Any) -> FaceResult:
    if not result.face_blendshapes:
        return NO_FACE
    categories = result.face_blendshapes[0]
    scores = np.fromiter((c.score for c in categories), dtype=np.float32, count=len(categories))
    if len(categories) != len(BLENDSHAPE_NAMES):
        raise ModelMismatch(f"landmarker returned {len(categories)} blendshapes, expected 52")
    points = result.face_landmarks[0]
    landmarks = np.array([(p.x, p.y, p.z) for p in points], dtype=np.float32)
    return FaceFeatures(blendshapes=scores, landmarks=landmarks)
