"""The device step on a real face photo: real landmarker, the shipped model, real smoothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.assets import AssetResolver
from device.features.blendshapes import BlendshapeExtractor
from device.frames import RgbFrame
from device.inference.classifier import ModelHolder
from device.inference.smoothing import LabelSmoother
from device.pipeline import Pipeline


@pytest.fixture
def happy_face(asset_mirror: Path) -> np.ndarray:
    bgr = cv2.imread(str(AssetResolver().resolve("sample_face_happy")))
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def run_frames(image: np.ndarray, seconds: float, rate_hz: float = 10.0) -> list[tuple[float, str]]:
    """(frame time, label) of every event the pipeline emits over ``seconds`` of frames."""
    classifier = ModelHolder(None).current
    smoother = LabelSmoother(
        classifier.labels, window_s=2.0, min_confidence=0.35, switch_margin=0.1
    )
    events = []
    with BlendshapeExtractor(AssetResolver().resolve("face_landmarker"), "image") as extractor:
        pipeline = Pipeline(extractor, classifier, smoother, device_id="t", heartbeat_s=5.0)
        for index in range(int(seconds * rate_hz)):
            ts_s = index / rate_hz
            result = pipeline.step(RgbFrame(image, ts_s, index))
            if result.event is not None:
                events.append((ts_s, result.event.label))
    return events


def test_no_placeholder_label_before_half_a_window(happy_face: np.ndarray) -> None:
    events = run_frames(happy_face, seconds=1.5)
    assert events == [(1.0, "happy")]  # nothing at 0.0-0.9 s, then the real label


def test_heartbeat_repeats_an_unchanged_label(happy_face: np.ndarray) -> None:
    events = run_frames(happy_face, seconds=6.5)
    assert [label for _, label in events] == ["happy", "happy"]
    assert events[1][0] - events[0][0] == pytest.approx(5.0)


def test_a_frame_without_a_face_is_no_face(asset_mirror: Path) -> None:
    blank = np.full((240, 320, 3), 90, dtype=np.uint8)
    assert run_frames(blank, seconds=1.5) == [(1.0, "no_face")]
