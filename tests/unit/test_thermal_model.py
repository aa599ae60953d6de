"""Thermal path: features from radiometric frames, a thermal model trained on labelled sessions,
late fusion with the RGB model — real ROI code, real scikit-learn, real ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.features.baseline import BaselineSettings, PersonBaseline
from device.features.schema import THERMAL_ROIS
from device.features.thermal import (
    NO_THERMAL_FACE,
    NOT_RADIOMETRIC,
    ThermalExtractor,
    ThermalFace,
    skin_box,
)
from device.frames import ThermalFrame
from device.inference.classifier import OnnxClassifier
from device.inference.fusion import fuse, restrict, shared_labels
from device.sources.thermal.recording import write_recording
from device.sources.thermal.synthetic import (
    DEFAULT_ROI_C,
    PlantedSegment,
    SyntheticThermalFace,
    ThermalFaceSpec,
    synthetic_session,
)
from trainer.errors import DatasetError
from trainer.thermal import main

SHIFT_C = {  # planted condition - neutral, in the paper's 0.1-1.2 °C range
    "neutral": dict.fromkeys(THERMAL_ROIS, 0.0),
    "fear": {"nose": -1.2, "forehead": 0.3, "left_eye": 0.5, "right_eye": 0.4},
    "happy": {"nose": -0.4, "forehead": 0.15, "left_eye": 0.2, "right_eye": 0.2},
}
OFFSETS_C = {"s1": 0.0, "s2": 1.5, "s3": -2.0}  # each subject's own absolute level


def write_sessions(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = ThermalFaceSpec(glasses_fraction=0.1, hair_fraction=0.1, noise_c=0.045)
    for number, (subject, offset) in enumerate(OFFSETS_C.items()):
        segments = [
            PlantedSegment(
                label, {r: DEFAULT_ROI_C[r] + offset + shift[r] for r in THERMAL_ROIS}, 2.0
            )
            for label, shift in SHIFT_C.items()
        ]
        session = synthetic_session(subject, segments, spec, seed=100 + number)
        write_recording(folder / f"{subject}.npz", session)
    return folder


@pytest.fixture(scope="module")
def thermal_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("thermal")
    sessions = write_sessions(root / "sessions")
    assert main(["train", str(sessions), "--out", str(root / "model")]) == 0
    return root / "model" / "thermal_rois.onnx"


def test_trained_thermal_model_separates_planted_conditions(
    thermal_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classifier = OnnxClassifier(thermal_model)  # the device's own checks accept it
    assert classifier.labels == ("fear", "happy", "neutral")
    metrics = classifier.manifest.metrics
    assert metrics["protocol"] == "loso" and metrics["accuracy"] > 0.9
    assert classifier.manifest.feature_names == [f"thermal.{r}.delta_c" for r in THERMAL_ROIS]


def test_extractor_gives_deltas_against_the_person(thermal_model: Path) -> None:
    calm = SyntheticThermalFace(ThermalFaceSpec(), seed=1)
    fear_c = {r: DEFAULT_ROI_C[r] + SHIFT_C["fear"][r] for r in THERMAL_ROIS}
    afraid = SyntheticThermalFace(ThermalFaceSpec(roi_c=fear_c), seed=2)
    settings = BaselineSettings(mode="calibration", calibration_s=3.0, min_samples=10)
    extractor = ThermalExtractor(skin_box, PersonBaseline(settings))
    for i in range(30):  # 3.4 s of calm frames at 8.7 Hz: the calibration period
        extractor.extract(ThermalFrame(calm.render(i), i / 8.7, i))
    result = extractor.extract(ThermalFrame(afraid.render(0), 30 / 8.7, 30))
    assert isinstance(result, ThermalFace) and result.method == "detector_box"
    assert result.values["thermal.nose.delta_c"] == pytest.approx(-1.2, abs=0.1)
    probs = OnnxClassifier(thermal_model).predict_proba(result.schema_vector())
    assert OnnxClassifier(thermal_model).labels[int(np.argmax(probs))] == "fear"


def test_no_face_and_raw_counts_are_explicit_states() -> None:
    extractor = ThermalExtractor(skin_box, PersonBaseline())
    room = np.full((120, 160), 22.0, np.float32)
    assert extractor.extract(ThermalFrame(room, 0.0, 0)) is NO_THERMAL_FACE
    counts = np.full((120, 160), 8000.0, np.float32)
    assert extractor.extract(ThermalFrame(counts, 0.0, 0, radiometric=False)) is NOT_RADIOMETRIC


def test_fusion_over_shared_labels() -> None:
    rgb_labels = ("angry", "fear", "happy", "neutral")
    thermal_labels = ("fear", "happy", "neutral")
    shared = shared_labels(rgb_labels, thermal_labels)
    assert shared == ("fear", "happy", "neutral")
    rgb = restrict(rgb_labels, [0.4, 0.2, 0.3, 0.1], shared)
    assert rgb.sum() == pytest.approx(1.0) and rgb[0] == pytest.approx(0.2 / 0.6, abs=1e-4)
    fused = fuse(rgb, np.array([0.8, 0.1, 0.1]))
    assert fused.sum() == pytest.approx(1.0) and int(np.argmax(fused)) == 0
    assert shared_labels(("a", "b"), ("c",)) == ()


def test_training_needs_labelled_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(tmp_path / "none"), "--out", str(tmp_path)]) == DatasetError.exit_code
    assert "does not exist" in capsys.readouterr().err
