"""52 face blendshapes from MediaPipe FaceLandmarker (the only module that imports mediapipe).

Uses the Tasks API present in both mediapipe 0.10.18 (Pi 4) and 1.x (Pi 5, x86).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from device.errors import ModelMismatch
from device.features.geometry import POINTS as GEOMETRY_POINTS
from device.features.geometry import geometry_features
from device.features.schema import BLENDSHAPE_NAMES

logger = logging.getLogger(__name__)

RunningMode = Literal["image", "video"]


class FaceFeatures:
    """One face: blendshape scores in schema order, and normalised landmarks (memory only).

    Landmarks are converted to an array only when asked for (most steps never need them).
    """

    __slots__ = ("_points", "aspect", "blendshapes")

    def __init__(
        self, blendshapes: npt.NDArray[np.float32], points: Any, aspect: float = 1.0
    ) -> None:
        self.blendshapes = blendshapes  # (52,) float32 in BLENDSHAPE_NAMES order
        self._points = points
        self.aspect = aspect  # image width / height: landmarks are normalised per axis

    def points_xy(self, indices: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """(len(indices), 2) normalised x, y of the chosen landmarks (cheaper than all 478)."""
        if isinstance(self._points, np.ndarray):
            return self._points[list(indices), :2]
        pts = self._points
        return np.array([(pts[i].x, pts[i].y) for i in indices], dtype=np.float32)

    def rgb_vector(self) -> npt.NDArray[np.float32]:
        """The RGB part of the feature schema: 52 blendshapes, then the geometry features."""
        geometry = geometry_features(self.points_xy(GEOMETRY_POINTS), self.aspect)
        return np.concatenate([self.blendshapes, geometry])

    @property
    def landmarks(self) -> npt.NDArray[np.float32]:
        """(478, 3) float32; x and y in 0..1 of the image width and height."""
        if isinstance(self._points, np.ndarray):
            return self._points
        return np.array([(p.x, p.y, p.z) for p in self._points], dtype=np.float32)


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
        self._last_ts_ms = 0  # the warm-up frame used timestamp 0
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
        return _to_features(result, rgb.shape[1] / rgb.shape[0])

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


def check_cpu_for_mediapipe(version: str, machine: str, cpuinfo: str) -> None:
    """Refuse, in one sentence, a mediapipe that would abort on this CPU: 1.x is built with LSE
    atomics, which an ARMv8.0 core (a Pi 4's Cortex-A72) lacks; it dies with SIGILL, unexplained,
    once the landmarker starts (seen under emulation, docs: README "The emulated Pi")."""
    if machine not in ("aarch64", "arm64") or int(version.split(".", maxsplit=1)[0]) < 1:
        return
    features = next(
        (ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines() if ln.startswith("Features")),
        [],
    )
    if features and "atomics" not in features:
        raise ModelMismatch(
            f"mediapipe {version} needs a CPU with LSE atomics (a Pi 5) and this one has none "
            "(a Pi 4): install mediapipe==0.10.18 with Python 3.11 or 3.12 (deploy/dev.sh does)"
        )


def _create_landmarker(model_path: Path, mode: RunningMode, min_conf: float) -> tuple[Any, Any]:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    check_cpu_for_mediapipe(str(mp.__version__), platform.machine(), _cpuinfo())

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE,
        num_faces=1,
        min_face_detection_confidence=min_conf,
        output_face_blendshapes=True,
    )
    try:
        with quiet_native_stderr():
            landmarker = vision.FaceLandmarker.create_from_options(options)
            _warm_up(mp, landmarker, mode)
    except (RuntimeError, ValueError) as exc:
        raise ModelMismatch(f"MediaPipe cannot load {model_path}: {exc}") from exc
    return mp, landmarker


def _warm_up(mp: Any, landmarker: Any, mode: RunningMode) -> None:
    """One inference on a blank frame, so graph start-up happens now, not on the first frame."""
    blank = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.zeros((64, 64, 3), np.uint8))
    if mode == "video":
        landmarker.detect_for_video(blank, 0)
    else:
        landmarker.detect(blank)


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence the C++ start-up chatter MediaPipe writes straight to fd 2 (glog, TFLite)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _contiguous(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    return rgb if rgb.flags["C_CONTIGUOUS"] else np.ascontiguousarray(rgb)


def _to_features(result: Any, aspect: float) -> FaceResult:
    if not result.face_blendshapes:
        return NO_FACE
    categories = result.face_blendshapes[0]
    scores = np.fromiter((c.score for c in categories), dtype=np.float32, count=len(categories))
    if len(categories) != len(BLENDSHAPE_NAMES):
        raise ModelMismatch(f"landmarker returned {len(categories)} blendshapes, expected 52")
    return FaceFeatures(scores, result.face_landmarks[0], aspect)
