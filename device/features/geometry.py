"""Face geometry from MediaPipe's 478 landmarks: distances that carry expression.

Distances between landmark pairs (mouth width and opening, eye opening, brow height, …) in units
of the outer-eye-corner distance, so they do not depend on image size or face distance, plus the
height of each mouth corner above the lips' centre (positive in a smile, negative in a frown).
Only the ~30 landmarks named here are read. Pure functions; no vendor import.

Measured (`docs/measurements.md`): HGB 150 x 31 on FER2013's official split, 0.611 accuracy
with the 52 blendshapes, 0.628 with these 18 distances added.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# MediaPipe FaceMesh indices; "left"/"right" are the image's.
PAIRS: dict[str, tuple[int, int]] = {
    "mouth_width": (61, 291),
    "mouth_opening": (13, 14),
    "lips_outer_height": (0, 17),
    "left_eye_opening": (159, 145),
    "right_eye_opening": (386, 374),
    "left_eye_width": (33, 133),
    "right_eye_width": (362, 263),
    "left_brow_to_eye": (105, 159),
    "right_brow_to_eye": (334, 386),
    "brow_gap": (55, 285),
    "nose_to_mouth": (1, 13),
    "chin_to_mouth": (152, 14),
    "left_mouth_corner_to_eye": (61, 33),
    "right_mouth_corner_to_eye": (291, 263),
    "left_inner_brow_to_eye": (55, 133),
    "right_inner_brow_to_eye": (285, 362),
}
CORNERS: dict[str, int] = {"left_mouth_corner_lift": 61, "right_mouth_corner_lift": 291}
EYE_CORNERS = (33, 263)  # the scale: outer eye corners
LIPS_CENTRE = (13, 14)

GEOMETRY_NAMES: tuple[str, ...] = (*PAIRS, *CORNERS)
GEOMETRY_FEATURES: tuple[str, ...] = tuple(f"geometry.{name}" for name in GEOMETRY_NAMES)
POINTS: tuple[int, ...] = tuple(
    sorted({i for pair in PAIRS.values() for i in pair} | set(CORNERS.values()))
)
_ROW = {index: row for row, index in enumerate(POINTS)}


def geometry_features(xy: npt.NDArray[np.float32], aspect: float = 1.0) -> npt.NDArray[np.float32]:
    """The GEOMETRY_FEATURES of one face from ``xy``: (len(POINTS), 2) normalised landmarks.

    ``aspect`` = image width / height, so that x and y distances are in the same unit.
    """
    p = np.asarray(xy, dtype=np.float64) * np.array([aspect, 1.0])
    scale = float(np.linalg.norm(p[_ROW[EYE_CORNERS[0]]] - p[_ROW[EYE_CORNERS[1]]])) or 1e-6
    values = [np.linalg.norm(p[_ROW[a]] - p[_ROW[b]]) / scale for a, b in PAIRS.values()]
    centre_y = (p[_ROW[LIPS_CENTRE[0]], 1] + p[_ROW[LIPS_CENTRE[1]], 1]) / 2.0
    values += [(centre_y - p[_ROW[i], 1]) / scale for i in CORNERS.values()]
    return np.asarray(values, dtype=np.float32)
