"""Per-person baselines: rolling and calibration, deltas, and the thermal feature names."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device.features.baseline import (
    BaselineSettings,
    PersonBaseline,
    baseline_of,
    deltas,
    feature_values,
)
from device.features.schema import FEATURE_NAMES, THERMAL_FEATURES, THERMAL_ROIS
from device.features.thermal_roi import extract_thermal_rois
from device.sources.thermal.synthetic import SyntheticThermalFace, ThermalFaceSpec

CALM = {"nose": 33.0, "forehead": 34.6, "left_eye": 35.2, "right_eye": 35.1}


def _shifted(means: dict[str, float], roi: str, by: float) -> dict[str, float]:
    return {**means, roi: means[roi] + by}


def test_rolling_baseline_shows_a_step_then_absorbs_it_after_the_window() -> None:
    baseline = PersonBaseline(BaselineSettings(mode="rolling", window_s=10.0, min_samples=5))
    for t in range(20):
        baseline.update(float(t), CALM)
    step = baseline.update(20.0, _shifted(CALM, "nose", -0.8))
    assert step["nose"] == pytest.approx(-0.8)
    assert step["forehead"] == pytest.approx(0.0)
    for t in range(21, 40):
        late = baseline.update(float(t), _shifted(CALM, "nose", -0.8))
    assert late["nose"] == pytest.approx(0.0)


def test_deltas_are_nan_until_there_are_enough_readings() -> None:
    baseline = PersonBaseline(BaselineSettings(min_samples=3))
    first = [baseline.update(float(t), CALM) for t in range(4)]
    assert all(math.isnan(d["nose"]) for d in first[:3])
    assert first[3]["nose"] == pytest.approx(0.0)


def test_unmeasurable_rois_are_ignored_by_the_baseline() -> None:
    baseline = PersonBaseline(BaselineSettings(min_samples=2))
    for t in range(5):
        baseline.update(float(t), {**CALM, "left_eye": math.nan})
    now = baseline.update(5.0, CALM)
    assert math.isnan(now["left_eye"]) and now["right_eye"] == pytest.approx(0.0)
    assert math.isnan(baseline.current()["left_eye"])


def test_calibration_baseline_is_frozen_after_the_calm_period() -> None:
    settings = BaselineSettings(mode="calibration", calibration_s=5.0, min_samples=3)
    baseline = PersonBaseline(settings)
    during = [baseline.update(float(t), CALM) for t in range(5)]
    assert all(math.isnan(d["forehead"]) for d in during) and not baseline.calibrated
    drifted = _shifted(CALM, "forehead", 0.4)
    for t in range(5, 100):
        after = baseline.update(float(t), drifted)
    assert baseline.calibrated
    assert after["forehead"] == pytest.approx(0.4)  # frozen: a long change is not absorbed
    baseline.reset()
    assert not baseline.calibrated and math.isnan(baseline.current()["nose"])


def test_rolling_history_is_bounded() -> None:
    baseline = PersonBaseline(BaselineSettings(window_s=1.0))
    for i in range(1000):
        baseline.update(i / 1000, CALM)  # 1 kHz: faster than any thermal camera
    assert len(baseline._history) <= 30


def test_pure_helpers() -> None:
    assert baseline_of([CALM, _shifted(CALM, "nose", 1.0), _shifted(CALM, "nose", 2.0)])[
        "nose"
    ] == pytest.approx(34.0)
    assert deltas({"nose": 33.5}, {"nose": 33.0})["nose"] == pytest.approx(0.5)
    assert math.isnan(deltas({"nose": 33.5}, {})["nose"])
    with pytest.raises(ValueError):
        BaselineSettings(window_s=0)


def test_feature_values_follow_the_schema_order() -> None:
    values = feature_values(CALM, deltas(CALM, CALM))
    assert tuple(values) == THERMAL_FEATURES
    assert set(THERMAL_FEATURES) <= set(FEATURE_NAMES)
    assert values["thermal.nose.mean_c"] == 33.0 and values["thermal.nose.delta_c"] == 0.0


def test_deltas_recover_a_planted_shift_despite_a_5_degree_absolute_error() -> None:
    """The Lepton reads 4.5 °C too warm; a 0.3 °C nose cooling still shows in the delta."""
    offset = 4.5
    calm = {roi: t + offset for roi, t in CALM.items()}
    baseline = PersonBaseline(
        BaselineSettings(mode="calibration", calibration_s=2.0, min_samples=5)
    )
    shifts = {"nose": -0.3, "forehead": 0.15, "left_eye": 0.2, "right_eye": 0.1}
    scared = {roi: calm[roi] + shifts[roi] for roi in THERMAL_ROIS}
    result: dict[str, float] = {}
    for index in range(40):
        planted = calm if index < 20 else scared
        face = SyntheticThermalFace(ThermalFaceSpec(roi_c=planted, hair_fraction=0.1), seed=index)
        rois = extract_thermal_rois(face.render(index), face_box=face.truth(index))
        result = baseline.update(index / 8.7, rois.means())
    for roi in THERMAL_ROIS:
        assert abs(result[roi] - shifts[roi]) < 0.05, roi
    assert np.isfinite(list(result.values())).all()
