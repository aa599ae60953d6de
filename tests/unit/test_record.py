"""`emotion-device record`: both cameras, interactive only, says it stores images first."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from device.cli import main
from device.config import SyntheticConfig, ThermalSyntheticConfig
from device.sources import create_rgb_source
from device.sources.base import RgbSource
from device.sources.recording import (
    RecordingRefused,
    record_cameras,
    refuse_unless_interactive,
    thermal_path,
)
from device.sources.replay import NpzRecording
from device.sources.thermal import ThermalSource
from device.sources.thermal.factory import create_thermal_source
from device.sources.thermal.recording import RecordingStream, read_recording
from device.sources.thermal.synthetic import SyntheticThermalFace

CONFIG = """device_id = "rec"
[rgb]
type = "synthetic"
width_px = 32
height_px = 24
fps_hz = 30
[thermal.source]
type = "synthetic"
fps_hz = 20
"""


def rgb_source(frames: int = 1000) -> RgbSource:
    return create_rgb_source(
        SyntheticConfig(type="synthetic", width_px=32, height_px=24, fps_hz=30, frame_count=frames)
    )


def thermal_source() -> ThermalSource:
    return create_thermal_source(ThermalSyntheticConfig(type="synthetic", fps_hz=20))


@pytest.mark.parametrize("variable", ["INVOCATION_ID", "JOURNAL_STREAM"])
def test_refused_under_systemd_even_with_a_terminal(variable: str, tmp_path: Path) -> None:
    said: list[str] = []
    with pytest.raises(RecordingRefused, match="under systemd"):
        record_cameras(
            rgb_source(), thermal_source(), tmp_path / "s.npz", 1.0,
            environ={variable: "x"}, is_tty=lambda: True, announce=said.append,
        )  # fmt: skip
    assert said == [] and list(tmp_path.iterdir()) == []


def test_refused_without_a_terminal() -> None:
    with pytest.raises(RecordingRefused, match="interactive terminal"):
        refuse_unless_interactive({}, lambda: False)
    refuse_unless_interactive({}, lambda: True)  # a person at a terminal: allowed


def test_cli_refusal_is_one_line_and_exit_64(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "device.toml"
    config.write_text(CONFIG)
    argv = ["record", "--config", str(config), "--out", str(tmp_path / "s.npz")]
    for variable in ("INVOCATION_ID", "JOURNAL_STREAM"):
        monkeypatch.delenv(variable, raising=False)
    assert main(argv) == 64  # pytest's stdin is not a terminal
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interactive terminal" in err and "Traceback" not in err
    monkeypatch.setenv("INVOCATION_ID", "abc")
    assert main(argv) == 64
    assert "under systemd" in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()


def test_records_both_cameras_on_one_clock(tmp_path: Path) -> None:
    said: list[str] = []
    out = tmp_path / "session.npz"
    summary = record_cameras(
        rgb_source(), thermal_source(), out, seconds=1.0, max_frames=100,
        subject="p01", sensor="synthetic", environ={}, is_tty=lambda: True, announce=said.append,
    )  # fmt: skip
    assert len(said) == 1 and "STORES IMAGES" in said[0] and str(thermal_path(out)) in said[0]
    assert summary.thermal_path == tmp_path / "session.thermal.npz"
    rgb = NpzRecording(out)
    assert rgb.shape[0] == summary.rgb.frame_count >= 20 and rgb.ts_s[0] == 0.0
    thermal = read_recording(tmp_path / "session.thermal.npz")
    assert len(thermal.frames) == summary.thermal_frames >= 12  # 20 Hz for ~1 s
    assert RecordingStream(tmp_path / "session.thermal.npz").units == "centikelvin"
    assert thermal.metadata["subject"] == "p01" and thermal.metadata["rgb_recording"] == out.name
    assert thermal.radiometric and thermal.frames.shape[1:] == (120, 160)
    expected = SyntheticThermalFace().render(0)
    np.testing.assert_allclose(thermal.frames[0], expected, atol=0.006)  # 0.01 K steps
    assert -0.2 < thermal.ts_s[0] < 0.2 and thermal.ts_s[-1] <= rgb.ts_s[-1] + 0.2
    for path in (out, tmp_path / "session.thermal.npz"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rgb_only_without_a_thermal_camera(tmp_path: Path) -> None:
    said: list[str] = []
    summary = record_cameras(
        rgb_source(5), None, tmp_path / "s.npz", 1.0, environ={}, is_tty=lambda: True,
        announce=said.append,
    )  # fmt: skip
    assert summary.thermal_path is None and summary.rgb.frame_count == 5
    assert "thermal" not in said[0] and sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]
