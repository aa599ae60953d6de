"""The aligned grey face crop: one pure function shared by the trainer and the device.

A similarity transform (rotation, scale, shift; no shear) puts the centres of both eyes, taken
from MediaPipe's eye corners, at fixed places of a square grey crop, so the CNN sees every face
upright at the same size wherever it is in the frame. The trainer makes its FER2013 crops with
exactly this function and the manifest records the ``CropSpec``, so training and serving cannot
drift. The crop lives in memory only: it is never published and never written to disk.

The sampling is OpenCV's ``warpAffine`` (bilinear, 8-bit fixed point, edge pixels repeated): one
call that reads only the crop's pixels. Right after the landmarker every cache is cold, and there
a numpy version of the same warp (crop version 2, ~30 array operations) cost 0.35 ms per face
against 0.16 ms for this one, measured in the same minutes (docs/fused.md). The 8-bit warp is
integer arithmetic, so x86 and ARM should give the same pixels (not yet checked on a Pi):
``tests/unit/test_crop.py`` pins a checksum of a crop, so an OpenCV that samples differently
fails there, on the Pi too, instead of drifting silently.

The default geometry matches FER2013's own framing (median over 361 of its faces: eye line at
39 % of the height, eye centres 36 % of the width apart), so FER's original images and aligned
crops look alike to the network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

# MediaPipe FaceMesh indices of each eye's two corners ("left"/"right" as seen in the image).
LEFT_EYE_CORNERS = (33, 133)
RIGHT_EYE_CORNERS = (362, 263)
CROP_POINTS = LEFT_EYE_CORNERS + RIGHT_EYE_CORNERS
CROP_VERSION = 3  # 3: OpenCV warp of the RGB, then grey (2: numpy bilinear; 1: OpenCV on grey)


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

    Only the crop's pixels are read (never the whole frame converted); edge pixels are repeated
    outside the image; grey is ITU-R BT.601 (OpenCV's RGB2GRAY) of the sampled RGB.
    """
    flags, border = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, cv2.BORDER_REPLICATE
    warped = cv2.warpAffine(image, inverse, (size, size), flags=flags, borderMode=border)
    if warped.ndim == 3:
        warped = cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY)
    crop: npt.NDArray[np.uint8] = np.ascontiguousarray(warped, dtype=np.uint8)
    return crop


def area_averaged_crop(
    image: npt.NDArray[np.uint8],
    points_xy: npt.NDArray[np.float32],
    spec: CropSpec = DEFAULT_CROP,
) -> npt.NDArray[np.uint8]:
    """A candidate crop, not used by any shipped model: ``face_crop`` without its aliasing.

    ``face_crop`` reads 2 x 2 image pixels per crop pixel, so a face much larger than the crop
    (a face near the camera: 4 to 6 image pixels per crop pixel) is point-sampled, while the
    CNN learned on FER2013's faces, whose pixels match the crop's one to one. Here, when the
    face is at least 2 image pixels per crop pixel, the region under the crop is first averaged
    down by that whole factor (OpenCV's INTER_AREA), then warped as ``face_crop`` does: the crop
    ``face_crop`` would make from a camera with that many times fewer pixels. Faces smaller than
    that give ``face_crop``'s pixels exactly. ``python -m trainer.crop_sampling``
    measures how much the shipped CNN's answers depend on the difference.
    """
    height, width = image.shape[:2]
    inverse = crop_inverse(points_xy, width, height, spec)
    shrink = int(math.hypot(inverse[0, 0], inverse[1, 0]))
    box = _footprint(inverse, spec.size, shrink, width, height) if shrink >= 2 else None
    if box is None:
        return warp_grey(image, inverse, spec.size)
    x0, y0, x1, y1 = box
    size = ((x1 - x0) // shrink, (y1 - y0) // shrink)
    averaged = cv2.resize(image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    small = np.asarray(averaged, dtype=np.uint8)
    inverse[:, 2] -= (x0, y0)  # as face_crop would crop a camera with 1/shrink the pixels
    return warp_grey(small, inverse / shrink, spec.size)


def _footprint(
    inverse: npt.NDArray[np.float64], size: int, shrink: int, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The image box under the crop, one block of margin, cut to whole ``shrink`` blocks."""
    corners = inverse @ np.array([[0, size, 0, size], [0, 0, size, size], [1, 1, 1, 1]])
    x0 = max((math.floor(corners[0].min()) // shrink - 1) * shrink, 0)
    y0 = max((math.floor(corners[1].min()) // shrink - 1) * shrink, 0)
    x1 = x0 + (min(math.ceil(corners[0].max()) + 2 * shrink, width) - x0) // shrink * shrink
    y1 = y0 + (min(math.ceil(corners[1].max()) + 2 * shrink, height) - y0) // shrink * shrink
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None
