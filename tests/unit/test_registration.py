"""RGB → thermal registration: robust fit, drift, the state file, and ROIs from mapped landmarks."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from device.assets import AssetResolver
from device.config import parse_config
from device.features.blendshapes import FaceFeatures
from device.features.registration import (
    FORMAT,
    MEDIAPIPE_TO_SF_TL54,
    Registration,
    RegistrationSettings,
    RegistrationStore,
    corners,
    equivalent_box,
    robust_fit,
    state_path,
)
from device.features.schema import THERMAL_ROIS
from device.features.thermal import ThermalFace
from device.features.thermal_roi import Box, landmarks_from_box
from device.frames import ThermalFrame
from device.inference.smoothing import LabelSmoother
from device.sources.thermal.synthetic import DEFAULT_ROI_C, SyntheticThermalFace, ThermalFaceSpec
from device.thermal_channel import ThermalChannel

ASPECT = 4 / 3  # a 640 x 480 RGB camera
THERMAL_SIZE = (160, 120)
GEOMETRY = (ASPECT, THERMAL_SIZE)


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * math.cos(math.radians(degrees)), scale * math.sin(math.radians(degrees))
    return np.array([[c, -s, tx], [s, c, ty]])


TRUE_MAP = similarity(118.0, 0.0, -18.0, 4.0)  # RGB (x * aspect, y) → thermal pixels
# Boxes are axis-aligned, so a camera roll shows only through where faces are: recovered
# within about a pixel, not exactly.
ROLLED_MAP = similarity(118.0, 2.0, -18.0, 4.0)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    result: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return result


def invert(matrix: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(matrix[:, :2])
    return np.column_stack([linear, -linear @ matrix[:, 2]])


def rgb_face(rng: np.random.Generator) -> np.ndarray:
    """54 points of a face somewhere in the RGB image, in (x * aspect, y) units."""
    height = rng.uniform(0.3, 0.45)
    x0, y0 = rng.uniform(0.35, 0.75), rng.uniform(0.1, 0.45)
    box = Box(x0, y0, x0 + 0.8 * height, y0 + height)
    return landmarks_from_box(box) + rng.normal(0, 0.002, size=(54, 2))


def pairs(
    count: int, matrix: np.ndarray, outliers: float, seed: int
) -> tuple[list[np.ndarray], list[Box]]:
    """RGB faces and the thermal boxes the detector would give (some planted wrong ones)."""
    rng = np.random.default_rng(seed)
    faces, boxes = [], []
    for i in range(count):
        face = rgb_face(rng)
        box = equivalent_box(apply(matrix, face))
        if i % round(1 / outliers) == 0 if outliers else False:
            dx, dy = rng.uniform(15, 40, size=2) * rng.choice([-1, 1], size=2)
            box = Box(box.x0 + dx, box.y0 + dy, box.x1 + dx * 1.3, box.y1 + dy)
        faces.append(face)
        boxes.append(box)
    return faces, boxes


# ----------------------------------------------------------------------------- the fit
@pytest.mark.parametrize(
    ("model", "matrix", "atol_px"),
    [("similarity", TRUE_MAP, 0.3), ("affine", TRUE_MAP, 0.3), ("similarity", ROLLED_MAP, 1.5)],
)
def test_known_transform_is_recovered_despite_outliers(
    model: str, matrix: np.ndarray, atol_px: float
) -> None:
    faces, boxes = pairs(80, matrix, outliers=0.25, seed=1)
    rgb = np.stack([corners(equivalent_box(f)) for f in faces])
    thermal = np.stack([corners(b) for b in boxes])
    fit = robust_fit(rgb, thermal, RegistrationSettings(model=model))  # type: ignore[arg-type]
    assert fit is not None
    planted = np.array([i % 4 == 0 for i in range(80)])
    assert np.array_equal(fit.inliers, ~planted)  # exactly the planted outliers rejected
    probe = np.array([[0.6, 0.3], [1.1, 0.8], [0.8, 0.5]])
    np.testing.assert_allclose(apply(fit.matrix, probe), apply(matrix, probe), atol=atol_px)
    assert fit.residual < 0.02
    plain = robust_fit(rgb, thermal, RegistrationSettings(inlier_threshold=10.0))
    assert plain is not None  # everything an inlier = plain least squares: visibly wrong
    assert np.abs(apply(plain.matrix, probe) - apply(matrix, probe)).max() > 2.0


def test_too_few_agreeing_pairs_give_no_transform() -> None:
    rng = np.random.default_rng(3)
    rgb = np.stack([corners(equivalent_box(rgb_face(rng))) for _ in range(40)])
    thermal = rgb * 100 + rng.uniform(-30, 30, size=(40, 1, 2))  # no common map
    assert robust_fit(rgb, thermal, RegistrationSettings()) is None


def feed(
    registration: Registration, matrix: np.ndarray, count: int, start_s: float, seed: int
) -> float:
    faces, boxes = pairs(count, matrix, outliers=0.0, seed=seed)
    now = start_s
    for face, box in zip(faces, boxes, strict=True):
        registration.add_pair(face, box, now, GEOMETRY)
        now += 0.5
    return now


def test_drift_triggers_re_estimation_but_a_short_burst_does_not() -> None:
    settings = RegistrationSettings(min_pairs=30, drift_s=20.0)
    registration = Registration(settings)
    now = feed(registration, TRUE_MAP, 29, 0.0, seed=4)
    assert registration.transform is None  # not before min_pairs
    now = feed(registration, TRUE_MAP, 1, now, seed=5)
    assert registration.transform is not None and registration.counters.estimates == 1
    knocked = TRUE_MAP + np.array([[0, 0, 9.0], [0, 0, -6.0]])  # the thermal camera moved
    now = feed(registration, knocked, 20, now, seed=6)  # 10 s of drift: not yet
    assert registration.counters.drifts == 0
    now = feed(registration, TRUE_MAP, 20, now, seed=7)  # back: the burst is forgotten
    now = feed(registration, knocked, 30, now, seed=8)  # 15 s: still under drift_s
    assert registration.counters.drifts == 0
    now = feed(registration, knocked, 80, now, seed=9)  # drift lasts: re-estimated
    assert registration.counters.drifts == 1 and registration.counters.estimates == 2
    transform = registration.transform
    assert transform is not None
    probe = np.array([[0.6, 0.3], [1.1, 0.8]])
    np.testing.assert_allclose(transform.apply(probe), apply(knocked, probe), atol=0.3)


# ------------------------------------------------------------------------ the state file
def estimated(store: RegistrationStore | None) -> Registration:
    registration = Registration(RegistrationSettings(min_pairs=20), store, lambda: 1.8e9)
    feed(registration, TRUE_MAP, 20, 0.0, seed=10)
    assert registration.transform is not None
    return registration


def test_state_file_round_trips_and_holds_only_the_transform(tmp_path: Path) -> None:
    path = tmp_path / "thermal_registration.json"
    saved = estimated(RegistrationStore(path)).transform
    assert saved is not None
    data = json.loads(path.read_text())
    assert set(data) == {
        "format", "model", "matrix", "residual", "pairs", "inliers", "rgb_aspect",
        "thermal_size", "estimated_unix_s", "estimated_utc",
    }  # fmt: skip
    assert data["format"] == FORMAT and data["estimated_utc"] == "2027-01-15T08:00:00Z"
    assert data["residual"] == pytest.approx(saved.residual) and data["residual"] < 0.02
    loaded = Registration(store=RegistrationStore(path)).transform
    assert loaded is not None
    np.testing.assert_allclose(loaded.matrix, saved.matrix)
    assert (loaded.thermal_size, loaded.rgb_aspect) == (THERMAL_SIZE, pytest.approx(ASPECT))
    assert not list(tmp_path.glob(".*partial"))


def test_a_bad_or_foreign_state_file_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"format": "something-else"}')
    with caplog.at_level(logging.WARNING):
        assert Registration(store=RegistrationStore(path)).transform is None
    assert "ignoring registration file" in caplog.text
    estimated(RegistrationStore(path))
    registration = Registration(store=RegistrationStore(path))
    face = rgb_face(np.random.default_rng(0))
    assert registration.map(face, GEOMETRY) is not None
    assert registration.map(face, (ASPECT, (80, 60))) is None  # made for a 160 x 120 Lepton


def test_unwritable_state_dir_keeps_the_transform_in_memory(tmp_path: Path) -> None:
    registration = estimated(RegistrationStore(tmp_path / "missing" / "r.json"))
    assert registration.transform is not None
    assert not (tmp_path / "missing").exists()


def test_state_path_follows_systemd() -> None:
    assert state_path(None, {"STATE_DIRECTORY": "/var/lib/x"}) == Path(
        "/var/lib/x/thermal_registration.json"
    )
    assert state_path(None, {}) == Path("/var/lib/emotion-edge/thermal_registration.json")
    assert state_path(Path("/tmp/r.json"), {"STATE_DIRECTORY": "/x"}) == Path("/tmp/r.json")


# ------------------------------------------------- mapped RGB landmarks → thermal ROI means
def mediapipe_face(thermal54: np.ndarray) -> FaceFeatures:
    """A MediaPipe result whose landmarks are the thermal truth seen through the RGB camera."""
    rgb = apply(invert(TRUE_MAP), thermal54)
    mesh = np.full((478, 3), 0.5, dtype=np.float32)
    mesh[list(MEDIAPIPE_TO_SF_TL54), 0] = rgb[:, 0] / ASPECT
    mesh[list(MEDIAPIPE_TO_SF_TL54), 1] = rgb[:, 1]
    return FaceFeatures(np.zeros(52, np.float32), mesh, ASPECT)


def channel(tmp_path: Path) -> ThermalChannel:
    config = parse_config(
        {
            "device_id": "t",
            "rgb": {"type": "synthetic"},
            "thermal": {
                "detector": "skin_box",
                "registration_path": str(tmp_path / "reg.json"),
                "source": {"type": "synthetic"},
            },
        }
    )

    def smoother(labels: tuple[str, ...]) -> LabelSmoother:
        return LabelSmoother(labels, 1.0, 0.3, 0.1, "no_face")

    return ThermalChannel(config, AssetResolver(allow_download=False), smoother, ("neutral",))


def test_rois_from_mapped_rgb_landmarks_hit_the_planted_temperatures(tmp_path: Path) -> None:
    planted = {"nose": 32.4, "forehead": 34.9, "left_eye": 35.6, "right_eye": 35.3}
    spec = ThermalFaceSpec(roi_c=planted, glasses_fraction=0.2, hair_fraction=0.2)
    synthetic = SyntheticThermalFace(spec, seed=2)
    thermal = channel(tmp_path)
    methods, errors = [], []
    for index in range(60):
        truth54 = landmarks_from_box(synthetic.truth(index))
        thermal.observe_rgb(mediapipe_face(truth54))
        frame = ThermalFrame(synthetic.render(index), ts_s=index / 8.7, index=index)
        result = thermal.pipeline.step(frame).result
        assert isinstance(result, ThermalFace)
        methods.append(result.method)
        if result.method == "registered":
            errors += [abs(result.values[f"thermal.{r}.mean_c"] - planted[r]) for r in THERMAL_ROIS]
    first = methods.index("registered")
    assert 29 <= first <= 31 and set(methods[first:]) == {"registered"}
    assert max(errors) < 0.05
    assert planted != dict(DEFAULT_ROI_C)
    data = json.loads((tmp_path / "reg.json").read_text())
    assert data["thermal_size"] == [160, 120] and "landmarks" not in json.dumps(data)
    thermal.observe_rgb(None)  # no RGB face now: back to the detector box
    thermal.holder.put(ThermalFrame(synthetic.render(99), ts_s=20.0, index=99))
    thermal.poll()
    status = thermal.status()
    assert status["thermal_roi_detector_box"] == 1 and status["thermal_roi_registered"] == 0
