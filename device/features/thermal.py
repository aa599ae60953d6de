"""Thermal frame → face → the four ROI temperatures and their deltas (the thermal features).

The face comes from a detector (IS2AI's HOG detector through ``thermal_landmarks``, or the
warm-skin box below); its ROIs come from a 54-point landmark model when one is configured, else
from the RGB camera's landmarks mapped into the thermal image (``registered``, when the
registration has a transform and a fresh RGB face), else from the mean shape in the box. Each
result records the method. Raw-count frames carry no temperatures, so they give no features
(``NOT_RADIOMETRIC``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device.features.baseline import PersonBaseline, feature_values
from device.features.schema import FEATURE_NAMES
from device.features.thermal_landmarks import ThermalLandmarker, to_grey8
from device.features.thermal_roi import Box, RoiMethod, extract_thermal_rois
from device.frames import ThermalFrame

Celsius = npt.NDArray[np.float32]
SKIN_BAND_C = (30.0, 38.5)  # exposed facial skin in an office
MIN_SKIN_PIXELS = 150
_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True, slots=True)
class ThermalFace:
    values: dict[str, float]  # thermal.<roi>.mean_c / .delta_c, schema order
    method: RoiMethod
    box: Box

    def schema_vector(self) -> npt.NDArray[np.float32]:
        """The full FEATURE_NAMES row (blendshapes NaN) for a thermal-only model."""
        row = np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
        for name, value in self.values.items():
            row[_INDEX[name]] = value
        return row


@dataclass(frozen=True, slots=True)
class NoThermalFace:
    reason: str  # "no_face" or "not_radiometric"


NO_THERMAL_FACE = NoThermalFace("no_face")
NOT_RADIOMETRIC = NoThermalFace("not_radiometric")
ThermalResult = ThermalFace | NoThermalFace
FaceFinder = Callable[[Celsius], list[Box]]
# thermal face box, (width, height) of the frame → 54 mapped landmarks, or None
MappedLandmarks = Callable[[Box, tuple[int, int]], npt.NDArray[np.float64] | None]


def skin_box(celsius: Celsius) -> list[Box]:
    """The box around the warm skin in a radiometric frame: one face against a cooler room.

    Pixels in ``SKIN_BAND_C``; the box spans their 2nd-98th percentile rows and columns, so a
    few stray warm pixels do not stretch it. No box when too few pixels are skin-warm.
    """
    rows, cols = np.nonzero((celsius >= SKIN_BAND_C[0]) & (celsius <= SKIN_BAND_C[1]))
    if rows.size < MIN_SKIN_PIXELS:
        return []
    y0, y1 = np.percentile(rows, (2, 98))
    x0, x1 = np.percentile(cols, (2, 98))
    return [Box(float(x0) - 0.5, float(y0) - 0.5, float(x1) + 0.5, float(y1) + 0.5)]


class ThermalExtractor:
    """Features of the largest face in each radiometric frame, deltas against one person."""

    def __init__(
        self,
        find_faces: FaceFinder,
        baseline: PersonBaseline,
        landmarker: ThermalLandmarker | None = None,
        registered: MappedLandmarks | None = None,
    ) -> None:
        self.find_faces = find_faces
        self.baseline = baseline
        self.landmarker = landmarker
        self.registered = registered

    def extract(self, frame: ThermalFrame) -> ThermalResult:
        if not frame.radiometric:
            return NOT_RADIOMETRIC
        faces = self.find_faces(frame.celsius)
        if not faces:
            return NO_THERMAL_FACE
        box = faces[0]
        landmarks, method = self._landmarks(frame.celsius, box)
        rois = extract_thermal_rois(
            frame.celsius, landmarks=landmarks, face_box=box, landmark_method=method
        )
        means = rois.means()
        deltas = self.baseline.update(frame.ts_s, means)
        return ThermalFace(feature_values(means, deltas), rois.method, box)

    def _landmarks(
        self, celsius: Celsius, box: Box
    ) -> tuple[npt.NDArray[np.float64] | None, RoiMethod]:
        if self.landmarker is not None:
            return self.landmarker.landmarks(to_grey8(celsius), box), "landmarks"
        if self.registered is not None:
            height, width = celsius.shape
            return self.registered(box, (int(width), int(height))), "registered"
        return None, "landmarks"
