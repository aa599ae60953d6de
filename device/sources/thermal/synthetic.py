"""Synthetic radiometric thermal faces with known, planted ROI temperatures.

For tests and the demo: a frame is H x W float32 °C (Lepton 3.x 160x120 or Lepton 2.x 80x60).
The face model is this module's own, written independently of the ROI code: a warm head
ellipse at ``skin_c``, a cooler hair cap above the face box, and four *planted regions* —
forehead, both eyes (periorbital area) and lower nose — each at its planted temperature.
The regions are given in face-box coordinates (0..1, see ``PLANTED_REGIONS``) and are
generous, so ROI boxes placed by any sensible method fall inside them.

Optional outlier pixels: ``glasses_fraction`` of the eye regions' pixels show a glasses frame
at ``glasses_c`` (glass is opaque to long-wave IR); ``hair_fraction`` of the forehead
region's pixels show hair strands at ``hair_c``. Gaussian sensor noise of ``noise_c``
standard deviation (a Lepton's NETD is < 50 mK) is added everywhere.

Deterministic: frame ``index`` of a given ``seed`` is always the same image, whatever order
frames are rendered in. The face jitters by up to ``jitter_px`` per frame, and
``truth(index)`` returns the true face box for that frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from device.features.schema import THERMAL_ROIS
from device.features.thermal_roi import Box
from device.frames import ThermalFrame
from device.sources.latest import FrameClock
from device.sources.thermal.recording import Segment, ThermalRecording

Celsius = npt.NDArray[np.float32]
LEPTON_FPS_HZ = 8.7  # unique frames per second from a Lepton (9 Hz export-limited)

# Planted regions in face-box coordinates (u0, v0, u1, v1); the subject's left eye is on the
# image right (an unmirrored camera looking at the person).
PLANTED_REGIONS: Mapping[str, tuple[float, float, float, float]] = MappingProxyType(
    {
        "forehead": (0.22, 0.00, 0.78, 0.295),
        "right_eye": (0.12, 0.30, 0.47, 0.48),
        "left_eye": (0.53, 0.30, 0.88, 0.48),
        "nose": (0.36, 0.49, 0.64, 0.72),
    }
)
DEFAULT_ROI_C: Mapping[str, float] = MappingProxyType(
    {"nose": 33.0, "forehead": 34.6, "left_eye": 35.2, "right_eye": 35.1}
)
# Head ellipse (centre u, v; radii) in face-box coordinates: the top reaches above the box,
# where the hair cap is.
_HEAD = (0.5, 0.45, 0.52, 0.62)


@dataclass(frozen=True)
class ThermalFaceSpec:
    """Everything that shapes a synthetic thermal face; temperatures in °C."""

    width_px: int = 160
    height_px: int = 120
    roi_c: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ROI_C))
    skin_c: float = 34.0
    background_c: float = 22.0
    hair_c: float = 28.5
    glasses_c: float = 26.0
    glasses_fraction: float = 0.0
    hair_fraction: float = 0.0
    noise_c: float = 0.04
    jitter_px: float = 1.0
    face_size: tuple[float, float] = (0.28, 0.48)  # face box width, height as image fractions
    face_centre: tuple[float, float] = (0.5, 0.45)  # as image fractions

    def __post_init__(self) -> None:
        missing = set(THERMAL_ROIS) - set(self.roi_c)
        if missing:
            raise ValueError(f"roi_c needs a temperature for {sorted(missing)}")
        if not (0.0 <= self.glasses_fraction < 0.5 and 0.0 <= self.hair_fraction < 0.5):
            raise ValueError("outlier fractions must be in [0, 0.5)")

    def face_box(self, dx: float = 0.0, dy: float = 0.0) -> Box:
        """The true face box, shifted by (dx, dy) pixels."""
        w, h = self.face_size[0] * self.width_px, self.face_size[1] * self.height_px
        cx = self.face_centre[0] * self.width_px + dx
        cy = self.face_centre[1] * self.height_px + dy
        return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    def region_box(self, roi: str, face: Box) -> Box:
        """A planted region in pixel coordinates for the face box ``face``."""
        u0, v0, u1, v1 = PLANTED_REGIONS[roi]
        return Box(
            face.x0 + u0 * face.width,
            face.y0 + v0 * face.height,
            face.x0 + u1 * face.width,
            face.y0 + v1 * face.height,
        )


def _face_coordinates(spec: ThermalFaceSpec, face: Box) -> tuple[Celsius, Celsius]:
    """(u, v) face-box coordinates of every pixel centre."""
    rows, cols = np.mgrid[0 : spec.height_px, 0 : spec.width_px].astype(np.float32)
    return (cols - face.x0) / face.width, (rows - face.y0) / face.height


def _background(spec: ThermalFaceSpec) -> Celsius:
    """Room temperature with a gentle vertical gradient (warmer towards the ceiling)."""
    rows = np.linspace(0.6, -0.6, spec.height_px, dtype=np.float32)[:, None]
    return np.broadcast_to(spec.background_c + rows, (spec.height_px, spec.width_px)).copy()


def _inside(u: Celsius, v: Celsius, region: tuple[float, float, float, float]) -> Any:
    u0, v0, u1, v1 = region
    return (u >= u0) & (u < u1) & (v >= v0) & (v < v1)


def render_face(
    spec: ThermalFaceSpec, rng: np.random.Generator, face: Box
) -> tuple[Celsius, dict[str, Any]]:
    """One noisy frame with the face in ``face``; also returns the planted-region masks."""
    image = _background(spec)
    u, v = _face_coordinates(spec, face)
    cu, cv, ru, rv = _HEAD
    head = ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0
    image[head] = spec.skin_c
    image[head & (v < 0.0)] = spec.hair_c
    masks = {roi: _inside(u, v, PLANTED_REGIONS[roi]) for roi in THERMAL_ROIS}
    for roi in THERMAL_ROIS:
        image[masks[roi]] = spec.roi_c[roi]
    _add_outliers(image, masks, spec, rng)
    image += rng.normal(0.0, spec.noise_c, size=image.shape).astype(np.float32)
    return image, masks


def _add_outliers(
    image: Celsius, masks: Mapping[str, Any], spec: ThermalFaceSpec, rng: np.random.Generator
) -> None:
    outliers = (
        (("left_eye", "right_eye"), spec.glasses_fraction, spec.glasses_c),
        (("forehead",), spec.hair_fraction, spec.hair_c),
    )
    for rois, fraction, temp_c in outliers:
        for roi in rois:
            hit = masks[roi] & (rng.random(image.shape) < fraction)
            image[hit] = temp_c


class SyntheticThermalFace:
    """Frame ``index`` of a seeded synthetic face, and the truth behind it."""

    def __init__(self, spec: ThermalFaceSpec | None = None, seed: int = 0) -> None:
        self.spec = spec or ThermalFaceSpec()
        self.seed = seed

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, index))

    def truth(self, index: int) -> Box:
        """The true face box of frame ``index`` (after its jitter)."""
        jitter = self._rng(index).uniform(-1.0, 1.0, size=2) * self.spec.jitter_px
        return self.spec.face_box(float(jitter[0]), float(jitter[1]))

    def render(self, index: int) -> Celsius:
        """Frame ``index`` as H x W float32 °C (pure: the same index gives the same frame)."""
        rng = self._rng(index)
        rng.uniform(size=2)  # the jitter draw, so truth() and render() agree
        image, _ = render_face(self.spec, rng, self.truth(index))
        return image


class SyntheticThermalSource:
    """A thermal source of synthetic faces at ``fps_hz`` (``ts_s`` = index / fps_hz)."""

    def __init__(
        self,
        face: SyntheticThermalFace | None = None,
        fps_hz: float = LEPTON_FPS_HZ,
        frame_count: int | None = None,
    ) -> None:
        self.face = face or SyntheticThermalFace()
        self._clock = FrameClock(fps_hz, frame_count)

    def open(self) -> None:
        self._clock.open()

    def read(self) -> ThermalFrame | None:
        due = self._clock.tick()
        if due is None:
            return None
        index, ts_s = due
        return ThermalFrame(celsius=self.face.render(index), ts_s=ts_s, index=index)

    def close(self) -> None:
        self._clock.close()


@dataclass(frozen=True, slots=True)
class PlantedSegment:
    """``duration_s`` of one condition with its planted ROI temperatures."""

    label: str
    roi_c: Mapping[str, float]
    duration_s: float


def synthetic_session(
    subject: str,
    segments: Sequence[PlantedSegment],
    spec: ThermalFaceSpec | None = None,
    fps_hz: float = LEPTON_FPS_HZ,
    seed: int = 0,
) -> ThermalRecording:
    """A labelled session, one segment per condition, with the true face box of every frame."""
    base = spec or ThermalFaceSpec()
    frames: list[Celsius] = []
    boxes: list[tuple[float, float, float, float]] = []
    labelled: list[Segment] = []
    for number, planted in enumerate(segments):
        face = SyntheticThermalFace(replace(base, roi_c=dict(planted.roi_c)), seed + number)
        start = len(frames) / fps_hz
        for index in range(max(1, round(planted.duration_s * fps_hz))):
            frames.append(face.render(index))
            box = face.truth(index)
            boxes.append((box.x0, box.y0, box.x1, box.y1))
        labelled.append(Segment(planted.label, start, len(frames) / fps_hz))
    return ThermalRecording(
        frames=np.stack(frames),
        ts_s=np.arange(len(frames), dtype=np.float64) / fps_hz,
        metadata={"subject": subject, "sensor": "synthetic", "fps_hz": fps_hz, "seed": seed},
        segments=tuple(labelled),
        face_boxes=np.asarray(boxes, dtype=np.float32),
    )
