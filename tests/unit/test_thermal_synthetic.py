"""The synthetic radiometric face: planted temperatures, noise, outliers, determinism, source."""

from __future__ import annotations

import numpy as np
import pytest

from device.features.schema import THERMAL_ROIS
from device.frames import ThermalFrame
from device.sources.thermal.synthetic import (
    PlantedSegment,
    SyntheticThermalFace,
    SyntheticThermalSource,
    ThermalFaceSpec,
    render_face,
    synthetic_session,
)

RESOLUTIONS = [(160, 120), (80, 60)]


@pytest.mark.parametrize(("width", "height"), RESOLUTIONS)
def test_frames_are_celsius_float32_at_lepton_sizes(width: int, height: int) -> None:
    face = SyntheticThermalFace(ThermalFaceSpec(width_px=width, height_px=height), seed=1)
    image = face.render(0)
    assert image.shape == (height, width)
    assert image.dtype == np.float32
    assert float(image.min()) > 19.0 and float(image.max()) < 37.0


def test_same_seed_and_index_give_the_same_frame_in_any_order() -> None:
    face = SyntheticThermalFace(seed=7)
    later_first = face.render(5)
    face.render(0)
    assert np.array_equal(later_first, SyntheticThermalFace(seed=7).render(5))
    assert not np.array_equal(later_first, SyntheticThermalFace(seed=8).render(5))
    assert not np.array_equal(later_first, face.render(6))


@pytest.mark.parametrize(("width", "height"), RESOLUTIONS)
def test_planted_regions_hold_their_temperature_with_sensor_noise(width: int, height: int) -> None:
    spec = ThermalFaceSpec(width_px=width, height_px=height, noise_c=0.04, jitter_px=0)
    image, masks = render_face(spec, np.random.default_rng(0), spec.face_box())
    for roi in THERMAL_ROIS:
        values = image[masks[roi]]
        assert values.size >= 8, roi
        assert abs(float(np.median(values)) - spec.roi_c[roi]) < 0.05, roi
    nose = image[masks["nose"]]
    assert 0.02 < float(nose.std()) < 0.05  # NETD < 50 mK


def test_glasses_and_hair_outliers_land_in_their_regions() -> None:
    spec = ThermalFaceSpec(glasses_fraction=0.25, hair_fraction=0.25, noise_c=0.0, jitter_px=0)
    image, masks = render_face(spec, np.random.default_rng(3), spec.face_box())
    for roi in ("left_eye", "right_eye"):
        share = float(np.mean(image[masks[roi]] == np.float32(spec.glasses_c)))
        assert 0.15 < share < 0.35, roi
    hair = float(np.mean(image[masks["forehead"]] == np.float32(spec.hair_c)))
    assert 0.15 < hair < 0.35
    assert not np.any(image[masks["nose"]] == np.float32(spec.glasses_c))


def test_truth_box_follows_the_jitter() -> None:
    face = SyntheticThermalFace(ThermalFaceSpec(jitter_px=1.0), seed=2)
    boxes = {face.truth(i) for i in range(5)}
    assert len(boxes) == 5
    centre = face.spec.face_box()
    for box in boxes:
        assert abs(box.x0 - centre.x0) <= 1.0 and abs(box.y0 - centre.y0) <= 1.0
        assert box.width == pytest.approx(centre.width)


def test_spec_rejects_missing_rois_and_silly_outlier_fractions() -> None:
    with pytest.raises(ValueError, match="nose"):
        ThermalFaceSpec(roi_c={"forehead": 34.0, "left_eye": 35.0, "right_eye": 35.0})
    with pytest.raises(ValueError, match="fraction"):
        ThermalFaceSpec(glasses_fraction=0.6)


def test_source_yields_thermal_frames_until_frame_count() -> None:
    source = SyntheticThermalSource(SyntheticThermalFace(seed=4), fps_hz=1000.0, frame_count=3)
    source.open()
    frames = [source.read() for _ in range(4)]
    source.close()
    got = [f for f in frames if f is not None]
    assert frames[3] is None and len(got) == 3
    assert all(isinstance(f, ThermalFrame) and f.radiometric for f in got)
    assert [f.index for f in got] == [0, 1, 2]
    assert [f.ts_s for f in got] == pytest.approx([0.0, 0.001, 0.002])
    assert np.array_equal(got[1].celsius, source.face.render(1))


def test_source_read_after_close_returns_none() -> None:
    source = SyntheticThermalSource(fps_hz=1000.0)
    assert source.read() is None  # not opened
    source.open()
    assert source.read() is not None
    source.close()
    source.close()
    assert source.read() is None


def test_session_has_one_labelled_segment_per_condition() -> None:
    temps = {"nose": 33.0, "forehead": 34.5, "left_eye": 35.0, "right_eye": 35.0}
    cold_nose = {**temps, "nose": 32.0}
    recording = synthetic_session(
        "s1",
        [PlantedSegment("baseline", temps, 1.0), PlantedSegment("fear", cold_nose, 0.5)],
        fps_hz=10.0,
    )
    assert recording.frames.shape == (15, 120, 160)
    assert recording.face_boxes is not None and recording.face_boxes.shape == (15, 4)
    assert recording.labels() == ["baseline"] * 10 + ["fear"] * 5
    assert recording.metadata["subject"] == "s1"
