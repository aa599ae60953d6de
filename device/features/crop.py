"""The aligned grey face crop: one pure function shared by the trainer and the device.

A similarity transform (rotation, scale, shift; no shear) puts the centres of both eyes, taken
from MediaPipe's eye corners, at fixed places of a square grey crop, so the CNN sees every face
upright at the same size wherever it is in the frame. The trainer makes its FER2013 crops with
exactly this function and the manifest records the ``CropSpec``, so training and serving cannot
drift. The crop lives in memory only: it is never published and never written to disk.

The default geometry matches FER2013's own framing (median over 361 of its faces: eye line at
39 % of the height, eye centres 36 % of the width apart), so FER's original images and aligned
crops look alike to the network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

# MediaPipe FaceMesh indices of each eye's two corners ("left"/"right" as seen in the image).
LEFT_EYE_CORNERS = (33, 133)
RIGHT_EYE_CORNERS = (362, 263)
CROP_POINTS = LEFT_EYE_CORNERS + RIGHT_EYE_CORNERS
CROP_VERSION = 2  # 2: numpy bilinear warp (1 was OpenCV)


@dataclass(frozen=True, slots=True)
class CropSpec:
    """Where the eyes land in the crop, as fractions of its side."""

    size: int = 48
    eye_distance: float = 0.36  # distance between the two eye centres / crop width
    eye_line: float = 0.39  # height of the eye centres / crop height
    version: int = CROP_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CropSpec:
        return cls(**{key: raw[key] for key in ("size", "eye_distance", "eye_line", "version")})


DEFAULT_CROP = CropSpec()


GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as OpenCV's RGB2GRAY


def face_crop(
    image: npt.NDArray[np.uint8],
    points_xy: npt.NDArray[np.float32],
    spec: CropSpec = DEFAULT_CROP,
) -> npt.NDArray[np.uint8]:
    """The aligned spec.size x spec.size grey crop of the face whose CROP_POINTS are given.

    ``points_xy`` are the normalised (0..1) x, y of CROP_POINTS, in that order, as
    ``FaceFeatures.points_xy(CROP_POINTS)`` returns them; ``image`` is H x W x 3 RGB or H x W grey.
    """
    height, width = image.shape[:2]
    return warp_grey(image, crop_inverse(points_xy, width, height, spec), spec.size)


def crop_inverse(
    points_xy: npt.NDArray[np.float32], width: int, height: int, spec: CropSpec
) -> npt.NDArray[np.float64]:
    """The 2 x 3 map from crop pixels back to image pixels (a similarity: rotation, scale, shift).

    The eye centres (each the mean of its two corners) land at ``spec``'s places: the midpoint
    between them at (size / 2, eye_line * size), their distance at eye_distance * size, their
    line horizontal. Plain Python floats: right after the landmarker, with cold caches, each
    small numpy call costs tens of microseconds, and this runs on every frame.
    """
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = points_xy.tolist()
    lx, ly = (ax + bx) / 2.0 * width, (ay + by) / 2.0 * height
    rx, ry = (cx + dx) / 2.0 * width, (cy + dy) / 2.0 * height
    gap_x, gap_y = rx - lx, ry - ly
    eye_px = max(math.hypot(gap_x, gap_y), 1e-6)
    step = eye_px / (spec.eye_distance * spec.size)  # image pixels per crop pixel
    cos, sin = step * gap_x / eye_px, step * gap_y / eye_px
    u0, v0 = spec.size / 2.0, spec.eye_line * spec.size  # where the eye midpoint lands
    mx, my = (lx + rx) / 2.0, (ly + ry) / 2.0
    return np.array([[cos, -sin, mx - cos * u0 + sin * v0], [sin, cos, my - sin * u0 - cos * v0]])


def whole_image_crop(
    image: npt.NDArray[np.uint8], spec: CropSpec = DEFAULT_CROP
) -> npt.NDArray[np.uint8]:
    """An image that is already a face crop (FER's framing), scaled to the crop size."""
    height, width = image.shape[:2]
    if (height, width) == (spec.size, spec.size) and image.ndim == 2:
        return np.ascontiguousarray(image)
    step_x, step_y = width / spec.size, height / spec.size  # pixel centres map to pixel centres
    inverse = np.array([[step_x, 0.0, 0.5 * (step_x - 1.0)], [0.0, step_y, 0.5 * (step_y - 1.0)]])
    return warp_grey(image, inverse, spec.size)


def warp_grey(
    image: npt.NDArray[np.uint8], inverse: npt.NDArray[np.float64], size: int
) -> npt.NDArray[np.uint8]:
    """Bilinear samples of ``image`` at the size x size crop pixels ``inverse`` maps into it, grey.

    Only the crop's pixels are read (never the whole frame converted), and the edge pixels are
    repeated outside the image. Plain numpy: the device and the trainer share it bit for bit.
    """
    ys, xs = _grid(size)
    src_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    src_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    height, width = image.shape[:2]
    x0 = np.clip(src_x, 0, width - 1).astype(np.intp)  # = floor, clipped, for every x
    y0 = np.clip(src_y, 0, height - 1).astype(np.intp)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx = np.clip(src_x - x0, 0.0, 1.0)
    fy = np.clip(src_y - y0, 0.0, 1.0)
    corners = np.stack([y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1])
    pixels = np.take(image.reshape(height * width, -1), corners, axis=0)  # (4, size, size, c)
    values = pixels @ GREY_WEIGHTS if image.ndim == 3 else pixels[..., 0]
    top = values[0] * (1.0 - fx) + values[1] * fx
    bottom = values[2] * (1.0 - fx) + values[3] * fx
    grey = top * (1.0 - fy) + bottom * fy
    crop: npt.NDArray[np.uint8] = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return crop


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs
