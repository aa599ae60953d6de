"""Pure wiring of one device step: frame → features → classifier → smoothing → label event."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from device.features.blendshapes import FaceFeatures, FaceResult
from device.features.schema import BLENDSHAPE_FEATURES, FEATURE_NAMES
from device.frames import RgbFrame
from device.inference.smoothing import LabelSmoother, SmoothedLabel
from device.publish.events import LabelEvent


class Extractor(Protocol):
    def extract(self, rgb: npt.NDArray[np.uint8], ts_ms: int | None = None) -> FaceResult: ...


class Classifier(Protocol):
    labels: tuple[str, ...]
    name: str

    def predict_proba(self, schema_vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


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


def schema_vector(face: FaceFeatures) -> npt.NDArray[np.float32]:
    """The full FEATURE_NAMES row for an RGB-only face (thermal features are NaN)."""
    row = np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
    row[: len(BLENDSHAPE_FEATURES)] = face.blendshapes
    return row


class Pipeline:
    def __init__(
        self,
        extractor: Extractor,
        classifier: Classifier,
        smoother: LabelSmoother,
        *,
        device_id: str,
        heartbeat_s: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.extractor = extractor
        self.classifier = classifier
        self.smoother = smoother
        self.device_id = device_id
        self.heartbeat_s = heartbeat_s
        self._wall_clock = wall_clock
        self._last_label: str | None = None
        self._last_sent_s = -float("inf")

    def step(self, frame: RgbFrame) -> StepResult:
        t0 = time.perf_counter()
        face = self.extractor.extract(frame.image, int(frame.ts_s * 1000))
        t1 = time.perf_counter()
        probs = None
        if isinstance(face, FaceFeatures):
            probs = self.classifier.predict_proba(schema_vector(face))
        t2 = time.perf_counter()
        smoothed = self.smoother.update(frame.ts_s, probs)
        event = self._maybe_event(frame.ts_s, smoothed)
        t3 = time.perf_counter()
        times = StepTimes(t1 - t0, t2 - t1, t3 - t2)
        return StepResult(event, smoothed, probs is not None, times)

    def _maybe_event(self, ts_s: float, smoothed: SmoothedLabel) -> LabelEvent | None:
        if not self.smoother.ready:
            return None  # nothing to say yet: no placeholder label before the first decision
        changed = smoothed.label != self._last_label
        if not changed and ts_s - self._last_sent_s < self.heartbeat_s:
            return None
        self._last_label, self._last_sent_s = smoothed.label, ts_s
        return LabelEvent(
            label=smoothed.label,
            confidence=smoothed.confidence,
            ts=self._wall_clock(),
            source="rgb",
            model=self.classifier.name,
            device=self.device_id,
        )
