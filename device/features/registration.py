"""RGB → thermal registration, estimated by the device itself from faces both cameras see.

Without a 54-point thermal landmark model, the ROIs can still come from landmarks: MediaPipe's
face mesh from the RGB camera, reduced to the SF-TL54 layout (``MEDIAPIPE_TO_SF_TL54``) and
mapped into the thermal image by a 2-D transform between the two cameras.

The transform is fitted from *pairs*: an RGB face and a thermal detector box taken in the same
loop step while the face held still. Each pair gives four point correspondences: the corners of
the thermal detector's box and of the RGB face's *equivalent box* (the box in which the mean
54-point shape ``MEAN_SHAPE`` best fits the RGB landmarks, i.e. the same box convention as the
thermal detector). The fit is robust (RANSAC over pairs, then least squares on the inliers):
a ``similarity`` (scale, rotation, shift; the default, right for two cameras side by side) or
a full ``affine`` transform. Residuals are the mean corner error as a fraction of the thermal
face box's width.

Only the transform is stored (JSON in the state directory, with its time and residual);
landmarks, boxes and temperatures stay in memory. While a transform is in use, every new pair
is checked against it; when the median residual of the recent pairs stays above
``drift_threshold`` for ``drift_s`` seconds (a camera was knocked), the transform is dropped
and estimated again from pairs taken since the drift began.

Coordinates: RGB points are MediaPipe's normalised (x, y) scaled to ``(x * aspect, y)`` (the
image height is 1, pixels stay square); thermal points are pixels (pixel centres at integers).
Pure numpy; no vendor runtime.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from device.features.thermal_roi import LANDMARK_COUNT, MEAN_SHAPE, Box

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Model = Literal["similarity", "affine"]
Geometry = tuple[float, tuple[int, int]]  # RGB aspect (width / height), thermal (width, height)
FORMAT = "emotion-edge-registration/1"
STATE_FILE = "thermal_registration.json"
DEFAULT_STATE_DIR = Path("/var/lib/emotion-edge")

# MediaPipe face mesh index for each SF-TL54 point (0-based), by anatomy: jaw ear to ear, brows
# outer→inner (image-left) and inner→outer (image-right), nose bridge to tip, nose base, eyes
# (image-left eye = the subject's right), mouth corners, outer lips, inner lips. Made for this
# project from MediaPipe's published mesh numbering; the ROI recipe uses 19, 24, 29-35, 36-47.
MEDIAPIPE_TO_SF_TL54: tuple[int, ...] = (
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144,
    362, 385, 387, 263, 373, 380,
    61, 0, 291, 17, 13, 14,
)  # fmt: skip


@dataclass(frozen=True)
class RegistrationSettings:
    model: Model = "similarity"
    min_pairs: int = 30  # pairs before the first fit
    max_pairs: int = 300  # pairs kept for a fit (oldest dropped)
    inlier_threshold: float = 0.08  # pair residual (fraction of face width) to count as inlier
    min_inlier_fraction: float = 0.5
    drift_threshold: float = 0.12  # median residual of recent pairs that means drift
    drift_s: float = 30.0  # drift must last this long before re-estimating
    drift_window: int = 10  # recent pairs in that median
    max_pair_age_s: float = 0.15  # RGB face older than this: no pair, no mapped landmarks
    max_rgb_motion: float = 0.05  # RGB face moved more (fraction of its width): no pair
    min_overlap: float = 0.3  # mapped face vs thermal box IoU below this: not used


@dataclass(frozen=True)
class Transform:
    """A 2 x 3 matrix mapping RGB points (x * aspect, y) to thermal pixels, and its record."""

    matrix: FloatArray
    model: Model
    residual: float  # median inlier pair residual, fraction of the thermal face width
    pairs: int
    inliers: int
    rgb_aspect: float
    thermal_size: tuple[int, int]  # width, height in pixels
    estimated_unix_s: float

    def apply(self, points: npt.ArrayLike) -> FloatArray:
        pts = np.asarray(points, dtype=np.float64)
        mapped: FloatArray = pts @ self.matrix[:, :2].T + self.matrix[:, 2]
        return mapped

    def fits(self, rgb_aspect: float, thermal_size: tuple[int, int]) -> bool:
        """True when made for cameras of this aspect and thermal resolution."""
        same_aspect = abs(self.rgb_aspect - rgb_aspect) <= 0.01 * rgb_aspect
        return same_aspect and tuple(self.thermal_size) == tuple(thermal_size)


# ------------------------------------------------------------------------------ geometry
def rgb_points(normalised_xy: npt.ArrayLike, aspect: float) -> FloatArray:
    """MediaPipe's normalised (x, y) → (x * aspect, y): square units, image height 1."""
    points = np.asarray(normalised_xy, dtype=np.float64).reshape(-1, 2)
    scaled: FloatArray = points * np.array([aspect, 1.0])
    return scaled


def equivalent_box(points: npt.ArrayLike) -> Box:
    """The box in which MEAN_SHAPE best fits 54 SF-TL54 points (least squares, per axis)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (LANDMARK_COUNT, 2):
        raise ValueError(f"expected 54 (x, y) points, got shape {pts.shape}")
    shape = np.asarray(MEAN_SHAPE, dtype=np.float64)
    fitted = []
    for axis in (0, 1):
        design = np.column_stack([np.ones(LANDMARK_COUNT), shape[:, axis]])
        (origin, size), *_ = np.linalg.lstsq(design, pts[:, axis], rcond=None)
        fitted.append((float(origin), float(size)))
    (x0, width), (y0, height) = fitted
    return Box(x0, y0, x0 + width, y0 + height)


def corners(box: Box) -> FloatArray:
    return np.array(
        [[box.x0, box.y0], [box.x1, box.y0], [box.x0, box.y1], [box.x1, box.y1]], np.float64
    )


def iou(a: Box, b: Box) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    inter = max(w, 0.0) * max(h, 0.0)
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


# ----------------------------------------------------------------------------- fitting
def fit_transform(src: npt.ArrayLike, dst: npt.ArrayLike, model: Model) -> FloatArray:
    """Least-squares 2 x 3 matrix taking ``src`` (N x 2) to ``dst`` (N x 2)."""
    s = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    ones, zeros = np.ones(len(s)), np.zeros(len(s))
    x, y = s[:, 0], s[:, 1]
    if model == "similarity":  # [a -b tx; b a ty]
        rows_x = np.column_stack([x, -y, ones, zeros])
        rows_y = np.column_stack([y, x, zeros, ones])
        (a, b, tx, ty), *_ = np.linalg.lstsq(
            np.vstack([rows_x, rows_y]), np.concatenate([d[:, 0], d[:, 1]]), rcond=None
        )
        return np.array([[a, -b, tx], [b, a, ty]], dtype=np.float64)
    design = np.column_stack([x, y, ones])
    solution, *_ = np.linalg.lstsq(design, d, rcond=None)
    matrix: FloatArray = np.asarray(solution.T, dtype=np.float64)
    return matrix


def pair_residuals(matrix: FloatArray, rgb: FloatArray, thermal: FloatArray) -> FloatArray:
    """Per pair: mean corner error over the thermal box width. ``rgb``/``thermal``: P x 4 x 2."""
    mapped = rgb @ matrix[:, :2].T + matrix[:, 2]
    error = np.linalg.norm(mapped - thermal, axis=2).mean(axis=1)
    width = np.maximum(thermal[:, 1, 0] - thermal[:, 0, 0], 1e-9)
    result: FloatArray = (error / width).astype(np.float64)
    return result


@dataclass(frozen=True)
class Fit:
    matrix: FloatArray
    inliers: npt.NDArray[np.bool_]
    residual: float


def robust_fit(rgb: FloatArray, thermal: FloatArray, settings: RegistrationSettings) -> Fit | None:
    """RANSAC over pairs (each pair alone is a hypothesis), then least squares on the inliers.

    Deterministic: up to 100 evenly spaced pairs are tried. None when too few pairs agree.
    """
    count = len(rgb)
    if count == 0:
        return None
    best: tuple[int, float, FloatArray] | None = None
    for i in np.unique(np.linspace(0, count - 1, min(count, 100)).astype(int)):
        matrix = fit_transform(rgb[i], thermal[i], settings.model)
        residuals = pair_residuals(matrix, rgb, thermal)
        inliers = residuals <= settings.inlier_threshold
        score = (int(inliers.sum()), -float(np.sum(np.minimum(residuals, 1.0))))
        if best is None or score > best[:2]:
            best = (*score, matrix)
    assert best is not None
    matrix = best[2]
    for _ in range(3):  # refine: least squares on the inliers, then their residuals again
        inliers = pair_residuals(matrix, rgb, thermal) <= settings.inlier_threshold
        if inliers.sum() == 0:
            return None
        matrix = fit_transform(rgb[inliers], thermal[inliers], settings.model)
    residuals = pair_residuals(matrix, rgb, thermal)
    inliers = residuals <= settings.inlier_threshold
    needed = max(settings.min_pairs // 2, math.ceil(settings.min_inlier_fraction * count))
    if inliers.sum() < needed:
        return None
    return Fit(matrix, inliers, float(np.median(residuals[inliers])))


# ------------------------------------------------------------------------------- storage
def state_path(explicit: Path | None, environ: Mapping[str, str] = os.environ) -> Path:
    """The state file: explicit, else in systemd's $STATE_DIRECTORY, else /var/lib/emotion-edge."""
    if explicit is not None:
        return explicit
    state_dir = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return (Path(state_dir) if state_dir else DEFAULT_STATE_DIR) / STATE_FILE


def transform_to_json(transform: Transform) -> dict[str, Any]:
    when = datetime.fromtimestamp(transform.estimated_unix_s, UTC)
    return {
        "format": FORMAT,
        "model": transform.model,
        "matrix": [[float(v) for v in row] for row in transform.matrix],
        "residual": transform.residual,
        "pairs": transform.pairs,
        "inliers": transform.inliers,
        "rgb_aspect": transform.rgb_aspect,
        "thermal_size": list(transform.thermal_size),
        "estimated_unix_s": transform.estimated_unix_s,
        "estimated_utc": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def transform_from_json(data: Mapping[str, Any]) -> Transform:
    """Raises ValueError (or KeyError/TypeError) when ``data`` is not a stored transform."""
    if data.get("format") != FORMAT or data.get("model") not in ("similarity", "affine"):
        raise ValueError(f"not an {FORMAT} file")
    matrix = np.asarray(data["matrix"], dtype=np.float64)
    if matrix.shape != (2, 3) or not np.all(np.isfinite(matrix)):
        raise ValueError("matrix must be 2 x 3 finite numbers")
    width, height = (int(v) for v in data["thermal_size"])
    return Transform(
        matrix=matrix,
        model=data["model"],
        residual=float(data["residual"]),
        pairs=int(data["pairs"]),
        inliers=int(data["inliers"]),
        rgb_aspect=float(data["rgb_aspect"]),
        thermal_size=(width, height),
        estimated_unix_s=float(data["estimated_unix_s"]),
    )


class RegistrationStore:
    """The transform as JSON in the state directory; never landmarks or temperatures."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._warned = False

    def load(self) -> Transform | None:
        try:
            data = json.loads(self.path.read_text())
            return transform_from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("ignoring registration file %s (%s); estimating again", self.path, exc)
            return None

    def save(self, transform: Transform) -> bool:
        """Atomic write; False (logged once) when the state directory is not writable."""
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            partial.write_text(json.dumps(transform_to_json(transform), indent=2) + "\n")
            os.replace(partial, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            if not self._warned:
                logger.warning("registration kept in memory only: %s (%s)", self.path, exc)
                self._warned = True
            return False
        return True


# ------------------------------------------------------------------------- estimation
@dataclass
class _Pairs:
    rgb: deque[FloatArray]
    thermal: deque[FloatArray]
    times: deque[float]

    @classmethod
    def empty(cls, size: int) -> _Pairs:
        return cls(deque(maxlen=size), deque(maxlen=size), deque(maxlen=size))

    def add(self, rgb: FloatArray, thermal: FloatArray, now: float) -> None:
        self.rgb.append(rgb)
        self.thermal.append(thermal)
        self.times.append(now)

    def since(self, start: float) -> None:
        while self.times and self.times[0] < start:
            self.rgb.popleft()
            self.thermal.popleft()
            self.times.popleft()

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        return np.stack(self.rgb), np.stack(self.thermal)


@dataclass
class RegistrationCounters:
    pairs: int = 0
    estimates: int = 0
    failed_fits: int = 0
    drifts: int = 0


class Registration:
    """Collects pairs, fits the transform, watches it for drift, re-estimates; memory only
    except the transform itself (``store``)."""

    def __init__(
        self,
        settings: RegistrationSettings | None = None,
        store: RegistrationStore | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or RegistrationSettings()
        self.store = store
        self._wall_clock = wall_clock
        self.transform = store.load() if store is not None else None
        self._pairs = _Pairs.empty(self.settings.max_pairs)
        self._recent: deque[float] = deque(maxlen=self.settings.drift_window)
        self._drift_since: float | None = None
        self._geometry: Geometry | None = None
        self.counters = RegistrationCounters()
        if self.transform is not None:
            logger.info("thermal registration loaded (residual %.3f)", self.transform.residual)

    def add_pair(
        self, rgb54: FloatArray, thermal_box: Box, now: float, geometry: Geometry
    ) -> float | None:
        """Record one pair (``rgb54`` in (x * aspect, y) units); returns its residual under
        the current transform, if there is one."""
        self._use_geometry(geometry)
        rgb, thermal = corners(equivalent_box(rgb54)), corners(thermal_box)
        self._pairs.add(rgb, thermal, now)
        self.counters.pairs += 1
        residual = None
        if self.transform is not None:
            residual = float(pair_residuals(self.transform.matrix, rgb[None], thermal[None])[0])
            self._watch_drift(residual, now)
        if self.transform is None and self._fit_due():
            self._estimate()
        return residual

    def map(self, rgb54: FloatArray, geometry: Geometry) -> FloatArray | None:
        """The 54 RGB points in thermal pixels, or None without a (fitting) transform."""
        self._use_geometry(geometry)
        return None if self.transform is None else self.transform.apply(rgb54)

    def _use_geometry(self, geometry: Geometry) -> None:
        if geometry == self._geometry:
            return
        self._geometry = geometry
        if self.transform is not None and not self.transform.fits(*geometry):
            logger.warning("thermal registration was made for other cameras; estimating again")
            self.transform = None
            self._pairs = _Pairs.empty(self.settings.max_pairs)

    def _fit_due(self) -> bool:
        count = len(self._pairs.times)
        step = max(1, self.settings.min_pairs // 3)
        return count >= self.settings.min_pairs and (count - self.settings.min_pairs) % step == 0

    def _estimate(self) -> None:
        rgb, thermal = self._pairs.arrays()
        fit = robust_fit(rgb, thermal, self.settings)
        if fit is None:
            self.counters.failed_fits += 1
            return
        assert self._geometry is not None
        self.transform = Transform(
            matrix=fit.matrix,
            model=self.settings.model,
            residual=fit.residual,
            pairs=len(rgb),
            inliers=int(fit.inliers.sum()),
            rgb_aspect=self._geometry[0],
            thermal_size=self._geometry[1],
            estimated_unix_s=self._wall_clock(),
        )
        self.counters.estimates += 1
        self._recent.clear()
        self._drift_since = None
        logger.info(
            "thermal registration estimated from %d/%d pairs (residual %.3f)",
            self.transform.inliers, len(rgb), fit.residual,
        )  # fmt: skip
        if self.store is not None:
            self.store.save(self.transform)

    def _watch_drift(self, residual: float, now: float) -> None:
        self._recent.append(residual)
        full = len(self._recent) == self._recent.maxlen
        if not full or float(np.median(self._recent)) <= self.settings.drift_threshold:
            self._drift_since = None
            return
        if self._drift_since is None:
            self._drift_since = now
        elif now - self._drift_since >= self.settings.drift_s:
            logger.warning("thermal registration drifted; estimating it again")
            self.counters.drifts += 1
            self.transform = None
            self._pairs.since(self._drift_since)
            self._recent.clear()
            self._drift_since = None


# ---------------------------------------------------------------------------- the bridge
@dataclass
class _RgbFace:
    points: FloatArray  # 54 x 2, (x * aspect, y)
    aspect: float
    seen_s: float
    steady: bool


@dataclass
class RegisteredLandmarks:
    """The newest RGB face (memory only) → pairs for ``registration`` and thermal landmarks.

    ``observe_rgb`` is called once per RGB frame (None: no face); calling the object with a
    thermal detector box returns the mapped 54 points, or None (no fresh RGB face, no
    transform yet, or the mapped face does not overlap the thermal box).
    """

    registration: Registration
    clock: Callable[[], float] = time.monotonic
    _face: _RgbFace | None = field(default=None, init=False)
    _previous: Box | None = field(default=None, init=False)

    def observe_rgb(self, normalised54: npt.ArrayLike | None, aspect: float = 1.0) -> None:
        if normalised54 is None:
            self._face = self._previous = None
            return
        points = rgb_points(normalised54, aspect)
        box = equivalent_box(points)
        steady = self._previous is not None and _moved(self._previous, box) <= (
            self.registration.settings.max_rgb_motion
        )
        self._face = _RgbFace(points, aspect, self.clock(), steady)
        self._previous = box

    def __call__(self, thermal_box: Box, thermal_size: tuple[int, int]) -> FloatArray | None:
        face, now = self._face, self.clock()
        if face is None or now - face.seen_s > self.registration.settings.max_pair_age_s:
            return None
        geometry = (face.aspect, thermal_size)
        if face.steady:
            self.registration.add_pair(face.points, thermal_box, now, geometry)
        mapped = self.registration.map(face.points, geometry)
        if mapped is None:
            return None
        overlap = iou(equivalent_box(mapped), thermal_box)
        return mapped if overlap >= self.registration.settings.min_overlap else None


def _moved(before: Box, after: Box) -> float:
    """Centre displacement over the face width."""
    dx = (after.x0 + after.x1 - before.x0 - before.x1) / 2
    dy = (after.y0 + after.y1 - before.y0 - before.y1) / 2
    return math.hypot(dx, dy) / max(before.width, 1e-9)
