"""PureThermal (UVC Y16) source: real Lepton frames fed in at the USB/OpenCV boundary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.errors import SourceUnavailable
from device.sources.opencv import Y16Camera
from device.sources.thermal.lepton.vospi import Radiometry
from device.sources.thermal.purethermal import PureThermalSource, strip_telemetry

LEPTON_NPY = (
    Path(__file__).resolve().parents[3]
    / "shared/assets/thermal_raw/cptv/v2_first20_frames_uint16.npy"
)


class BoardReplay:
    """What the board's Y16 stream delivers: given frames, then the cable is pulled (None)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = list(frames)
        self.released = False

    def read(self) -> np.ndarray | None:
        return self.frames.pop(0) if self.frames else None

    def release(self) -> None:
        self.released = True


@pytest.fixture(scope="module")
def lepton_frames() -> np.ndarray:
    if not LEPTON_NPY.is_file():
        pytest.fail(f"{LEPTON_NPY} is missing: check out ../shared beside the repo")
    return np.load(LEPTON_NPY)


def open_source(frames: list[np.ndarray], radiometry: Radiometry) -> PureThermalSource:
    board = BoardReplay(frames)
    source = PureThermalSource(0, radiometry, open_capture=lambda index: board)
    source.open()
    return source


def test_raw_counts_pass_through_flagged_non_radiometric(lepton_frames: np.ndarray) -> None:
    source = open_source(list(lepton_frames[:3]), Radiometry(tlinear=False))
    frames = [source.read() for _ in range(3)]
    assert [f.index for f in frames if f] == [0, 1, 2]
    for frame, raw in zip(frames, lepton_frames[:3], strict=True):
        assert frame is not None and not frame.radiometric
        np.testing.assert_array_equal(frame.celsius, raw.astype(np.float32))


def test_tlinear_centikelvin_becomes_celsius_and_telemetry_rows_go(
    lepton_frames: np.ndarray,
) -> None:
    raw = lepton_frames[0].astype(np.int64)
    centikelvin = (raw - raw.min() + 30315).astype(np.uint16)  # coldest pixel 30 °C
    with_telemetry = np.vstack([centikelvin, np.full((2, 160), 0xFFFF, np.uint16)])
    source = open_source([with_telemetry], Radiometry(tlinear=True))
    frame = source.read()
    assert frame is not None and frame.radiometric and frame.celsius.shape == (120, 160)
    expected = centikelvin.astype(np.float64) / 100.0 - 273.15
    np.testing.assert_allclose(frame.celsius, expected, atol=1e-3)
    assert frame.celsius.min() == pytest.approx(30.0, abs=1e-3)


def test_unplugged_board_is_a_clear_error(lepton_frames: np.ndarray) -> None:
    source = open_source([lepton_frames[0]], Radiometry(tlinear=False))
    assert source.read() is not None
    with pytest.raises(SourceUnavailable, match="stopped delivering frames"):
        source.read()
    source.close()
    assert source.read() is None  # after close: None, never an error


def test_wrong_camera_is_named() -> None:
    with pytest.raises(SourceUnavailable, match="640x480 frames; a Lepton"):
        strip_telemetry(np.zeros((480, 640), np.uint16))


def test_missing_uvc_device_is_one_sentence() -> None:
    with pytest.raises(SourceUnavailable, match=r"thermal camera /dev/video63 cannot be opened"):
        Y16Camera(63)
