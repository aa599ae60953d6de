"""The thermal channel beside the RGB loop: its capture thread, ROI features, label and fusion.

Opened only when the config has a ``[thermal]`` section. Without a 54-point thermal landmark
model, the RGB loop hands each frame's face to ``observe_rgb`` and the ROIs are placed from
the RGB landmarks mapped into the thermal image (``device/features/registration.py``) once
the device has estimated that mapping; the landmarks stay in memory. Without a thermal model
it still measures faces and ROIs (so the status shows the camera works) but publishes no thermal or
fused label, and the status says that the device runs on RGB alone.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.assets import AssetResolver
from device.config import DeviceConfig, ThermalConfig
from device.features.baseline import BaselineSettings, PersonBaseline
from device.features.blendshapes import FaceFeatures
from device.features.registration import (
    MEDIAPIPE_TO_SF_TL54,
    RegisteredLandmarks,
    Registration,
    RegistrationSettings,
    RegistrationStore,
    state_path,
)
from device.features.thermal import (
    Celsius,
    FaceFinder,
    ThermalExtractor,
    ThermalFace,
    skin_box,
)
from device.features.thermal_landmarks import ThermalFaceDetector, ThermalLandmarker, to_grey8
from device.features.thermal_roi import Box
from device.frames import ThermalFrame
from device.inference.classifier import OnnxClassifier
from device.inference.fusion import shared_labels
from device.inference.smoothing import LabelSmoother
from device.pipeline import EventGate, FusionStep, ThermalPipeline
from device.publish.events import LabelEvent
from device.sources.latest import CaptureThread, LatestFrame
from device.sources.thermal.factory import create_thermal_source

METHOD_KEYS = (
    "roi_landmarks",
    "roi_registered",
    "roi_detector_box",
    "no_face",
    "not_radiometric",
)
MakeSmoother = Callable[[tuple[str, ...]], LabelSmoother]
Probs = npt.NDArray[np.float32]


def face_finder(config: ThermalConfig, resolver: AssetResolver) -> FaceFinder:
    if config.detector == "skin_box":
        return skin_box
    detector = ThermalFaceDetector(resolver.resolve("thermal_face_detector", config.detector_path))

    def detect(celsius: Celsius) -> list[Box]:
        return detector.detect(to_grey8(celsius))

    return detect


def registered_landmarks(config: ThermalConfig) -> RegisteredLandmarks | None:
    """RGB landmarks mapped into the thermal image, unless a thermal landmark model is set."""
    if config.landmarks_path is not None or not config.registration:
        return None
    settings = RegistrationSettings(
        model=config.registration_model, drift_threshold=config.registration_drift
    )
    store = RegistrationStore(state_path(config.registration_path))
    return RegisteredLandmarks(Registration(settings, store))


def baseline_for(config: ThermalConfig) -> PersonBaseline:
    return PersonBaseline(
        BaselineSettings(
            mode=config.baseline_mode,
            window_s=config.baseline_window_s,
            calibration_s=config.calibration_s,
        )
    )


class ThermalChannel:
    def __init__(
        self,
        config: DeviceConfig,
        resolver: AssetResolver,
        make_smoother: MakeSmoother,
        rgb_labels: tuple[str, ...],
    ) -> None:
        thermal = config.thermal
        assert thermal is not None
        self.config = thermal
        landmarker = ThermalLandmarker(thermal.landmarks_path) if thermal.landmarks_path else None
        self.registered = registered_landmarks(thermal)
        extractor = ThermalExtractor(
            face_finder(thermal, resolver), baseline_for(thermal), landmarker, self.registered
        )
        self.classifier = _classifier(thermal.model_path)
        heartbeat = config.smoothing.heartbeat_s
        smoother = make_smoother(self.classifier.labels) if self.classifier else None
        gate = EventGate("thermal", config.device_id, heartbeat, time.time)
        self.pipeline = ThermalPipeline(extractor, self.classifier, smoother, gate)
        self.fusion = self._fusion(config, make_smoother, rgb_labels)
        self.holder: LatestFrame[ThermalFrame] = LatestFrame()
        self.capture: CaptureThread[ThermalFrame] | None = None
        self._dropped_before = 0
        self.frames = 0
        self.faces = 0
        self.methods: Counter[str] = Counter()

    def _fusion(
        self, config: DeviceConfig, make_smoother: MakeSmoother, rgb_labels: tuple[str, ...]
    ) -> FusionStep | None:
        if self.classifier is None or not shared_labels(rgb_labels, self.classifier.labels):
            return None
        smoother = make_smoother(shared_labels(rgb_labels, self.classifier.labels))
        gate = EventGate("fused", config.device_id, config.smoothing.heartbeat_s, time.time)
        return FusionStep(rgb_labels, self.classifier.labels, smoother, gate)

    def start(self, stack: ExitStack) -> None:
        self.resume()
        stack.callback(self.pause)

    def resume(self) -> None:
        """Open the thermal camera (again, after a pause)."""
        if self.capture is not None:
            return
        self._dropped_before += self.holder.dropped
        self.holder = LatestFrame()
        self.capture = CaptureThread(
            create_thermal_source(self.config.source), self.holder, name="thermal-capture"
        )
        self.capture.start()

    def pause(self) -> None:
        """Release the thermal camera (monitoring paused, or the end)."""
        if self.capture is not None:
            self.capture.stop()
            self.capture = None

    def observe_rgb(self, face: FaceFeatures | None) -> None:
        """This loop step's RGB face (None: none), for the registration; memory only."""
        if self.registered is None:
            return
        if face is None:
            self.registered.observe_rgb(None)
            return
        self.registered.observe_rgb(face.points_xy(MEDIAPIPE_TO_SF_TL54), face.aspect)

    def poll(self) -> LabelEvent | None:
        """Process the newest thermal frame, if one arrived since the last call."""
        frame = self.holder.take(0)
        if frame is None:
            return None
        step = self.pipeline.step(frame)
        self.frames += 1
        if isinstance(step.result, ThermalFace):
            self.faces += 1
            self.methods[f"roi_{step.result.method}"] += 1
        else:
            self.methods[step.result.reason] += 1
        if self.fusion is not None:
            self.fusion.thermal(frame.ts_s, step.probs)
        return step.event

    def fuse(self, ts_s: float, rgb_probs: Probs | None, rgb_model: str) -> LabelEvent | None:
        if self.fusion is None or self.classifier is None:
            return None
        return self.fusion.rgb(ts_s, rgb_probs, f"{rgb_model}+{self.classifier.name}")

    def status(self) -> dict[str, int | float | str]:
        if self.classifier is None:
            state = "no thermal model: labels from RGB only"
        elif self.fusion is None:
            state = "thermal labels only: no label shared with the RGB model"
        else:
            state = "thermal and fused labels"
        status: dict[str, int | float | str] = {
            "thermal": state,
            "thermal_frames": self.frames,
            "thermal_faces": self.faces,
            "thermal_dropped_frames": self._dropped_before + self.holder.dropped,
        }
        for kind in METHOD_KEYS:
            status[f"thermal_{kind}"] = self.methods[kind]
        return status


def _classifier(path: Path | None) -> OnnxClassifier | None:
    return OnnxClassifier(path) if path is not None else None
