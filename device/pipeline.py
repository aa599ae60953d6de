"""Pure wiring of one device step: frame → features → classifier → smoothing → label event."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from device.features.blendshapes import FaceFeatures, FaceResult
from device.features.schema import FEATURE_NAMES, RGB_FEATURES
from device.features.thermal import ThermalExtractor, ThermalFace, ThermalResult
from device.frames import RgbFrame, ThermalFrame
from device.inference.fusion import fuse, restrict, shared_labels
from device.inference.smoothing import LabelSmoother, SmoothedLabel
from device.publish.events import LabelEvent, Source


class Extractor(Protocol):
    def extract(self, rgb: npt.NDArray[np.uint8], ts_ms: int | None = None) -> FaceResult: ...


class Classifier(Protocol):
    labels: tuple[str, ...]
    name: str

    def predict_proba(self, schema_vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


class FaceModel(Protocol):
    """An RGB model: one face (and its frame, for a crop) → probabilities in ``labels`` order."""

    labels: tuple[str, ...]
    name: str

    def predict_face(
        self, face: FaceFeatures, image: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class StepTimes:
    landmarker_s: float
    classifier_s: float
    smoothing_s: float


@dataclass(frozen=True, slots=True)
class StepResult:
    event: LabelEvent | None  # set when the label changed or the heartbeat is due
    smoothed: SmoothedLabel
    face_found: bool
    times: StepTimes
    probs: npt.NDArray[np.float32] | None = None  # this frame's probabilities (before smoothing)
    face: FaceFeatures | None = None  # this frame's face (landmarks in memory only), if found


def schema_vector(face: FaceFeatures) -> npt.NDArray[np.float32]:
    """The full FEATURE_NAMES row for an RGB-only face (thermal features are NaN)."""
    row = np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
    row[: len(RGB_FEATURES)] = face.rgb_vector()
    return row


class EventGate:
    """Decides when a smoothed label becomes an event: on a change, or when the heartbeat is due."""

    def __init__(
        self, source: Source, device_id: str, heartbeat_s: float, wall_clock: Callable[[], float]
    ) -> None:
        self.source: Source = source
        self.device_id = device_id
        self.heartbeat_s = heartbeat_s
        self._wall_clock = wall_clock
        self._last_label: str | None = None
        self._last_sent_s = -float("inf")

    def offer(
        self, ts_s: float, smoother: LabelSmoother, smoothed: SmoothedLabel, model: str
    ) -> LabelEvent | None:
        if not smoother.ready:
            return None  # nothing to say yet: no placeholder label before the first decision
        changed = smoothed.label != self._last_label
        if not changed and ts_s - self._last_sent_s < self.heartbeat_s:
            return None
        self._last_label, self._last_sent_s = smoothed.label, ts_s
        return LabelEvent(
            label=smoothed.label,
            confidence=smoothed.confidence,
            ts=self._wall_clock(),
            source=self.source,
            model=model,
            device=self.device_id,
        )


class Pipeline:
    def __init__(
        self,
        extractor: Extractor,
        classifier: FaceModel,
        smoother: LabelSmoother,
        *,
        device_id: str,
        heartbeat_s: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.extractor = extractor
        self.classifier = classifier
        self.smoother = smoother
        self.gate = EventGate("rgb", device_id, heartbeat_s, wall_clock)

    def step(self, frame: RgbFrame) -> StepResult:
        t0 = time.perf_counter()
        face = self.extractor.extract(frame.image, int(frame.ts_s * 1000))
        t1 = time.perf_counter()
        probs = None
        if isinstance(face, FaceFeatures):
            probs = self.classifier.predict_face(face, frame.image)
        t2 = time.perf_counter()
        smoothed = self.smoother.update(frame.ts_s, probs)
        event = self.gate.offer(frame.ts_s, self.smoother, smoothed, self.classifier.name)
        t3 = time.perf_counter()
        times = StepTimes(t1 - t0, t2 - t1, t3 - t2)
        found = face if isinstance(face, FaceFeatures) else None
        return StepResult(event, smoothed, probs is not None, times, probs, found)


@dataclass(frozen=True, slots=True)
class ThermalStepResult:
    event: LabelEvent | None
    result: ThermalResult
    probs: npt.NDArray[np.float32] | None


class ThermalPipeline:
    """Thermal frame → ROI features → (thermal model → smoothing → event, if there is a model)."""

    def __init__(
        self,
        extractor: ThermalExtractor,
        classifier: Classifier | None,
        smoother: LabelSmoother | None,
        gate: EventGate,
    ) -> None:
        self.extractor = extractor
        self.classifier = classifier
        self.smoother = smoother
        self.gate = gate

    def step(self, frame: ThermalFrame) -> ThermalStepResult:
        result = self.extractor.extract(frame)
        if self.classifier is None or self.smoother is None:
            return ThermalStepResult(None, result, None)
        probs = None
        if isinstance(result, ThermalFace):
            probs = self.classifier.predict_proba(result.schema_vector())
        smoothed = self.smoother.update(frame.ts_s, probs)
        event = self.gate.offer(frame.ts_s, self.smoother, smoothed, self.classifier.name)
        return ThermalStepResult(event, result, probs)


class FusionStep:
    """RGB and thermal probabilities over their shared labels → a fused, smoothed label."""

    def __init__(
        self,
        rgb_labels: tuple[str, ...],
        thermal_labels: tuple[str, ...],
        smoother: LabelSmoother,
        gate: EventGate,
        max_age_s: float = 1.0,
    ) -> None:
        self.rgb_labels, self.thermal_labels = rgb_labels, thermal_labels
        self.labels = shared_labels(rgb_labels, thermal_labels)
        self.smoother, self.gate, self.max_age_s = smoother, gate, max_age_s
        self._thermal: tuple[float, npt.NDArray[np.float64]] | None = None

    def thermal(self, ts_s: float, probs: npt.NDArray[np.float32] | None) -> None:
        """Remember the newest thermal probabilities (None: no thermal face now)."""
        if probs is None:
            self._thermal = None
        else:
            self._thermal = (ts_s, restrict(self.thermal_labels, probs.tolist(), self.labels))

    def rgb(
        self, ts_s: float, probs: npt.NDArray[np.float32] | None, model: str
    ) -> LabelEvent | None:
        fused = None
        fresh = self._thermal is not None and ts_s - self._thermal[0] <= self.max_age_s
        if probs is not None and fresh and self._thermal is not None:
            rgb = restrict(self.rgb_labels, probs.tolist(), self.labels)
            fused = fuse(rgb, self._thermal[1]).astype(np.float32)
        smoothed = self.smoother.update(ts_s, fused)
        return self.gate.offer(ts_s, self.smoother, smoothed, model)
