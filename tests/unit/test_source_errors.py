"""Every way a source can fail to open ends in one SourceUnavailable line a person can act on."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import types
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from device.config import OpencvConfig, PicameraConfig, ReplayConfig, SyntheticConfig
from device.errors import ConfigError, SourceUnavailable
from device.sources import RGB_SOURCES, create_rgb_source
from device.sources.opencv import read_video_frames
from device.sources.picamera import INSTALL_HINT
from device.sources.recording import RecordingRefused, record_session


def open_error(source_config: OpencvConfig | ReplayConfig | PicameraConfig) -> str:
    source = create_rgb_source(source_config)
    with pytest.raises(SourceUnavailable) as info:
        source.open()
    source.close()  # closing after a failed open is harmless
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def text_as_mp4(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    return path


# --- OpenCV ---------------------------------------------------------------------------------


def test_missing_camera_index() -> None:
    message = open_error(OpencvConfig(type="opencv", camera_index=57))
    assert message.startswith("camera /dev/video57 cannot be opened: ")


def test_missing_video_file(tmp_path: Path) -> None:
    message = open_error(OpencvConfig(type="opencv", video_path=tmp_path / "gone.mp4"))
    assert message == f"video file {tmp_path / 'gone.mp4'} does not exist"


def test_text_file_renamed_mp4(text_as_mp4: Path) -> None:
    message = open_error(OpencvConfig(type="opencv", video_path=text_as_mp4))
    assert str(text_as_mp4) in message and "cannot be read as a video" in message
    with pytest.raises(SourceUnavailable, match="cannot be read as a video"):
        read_video_frames(text_as_mp4)


# --- replay ---------------------------------------------------------------------------------


def test_replay_missing_file(tmp_path: Path) -> None:
    message = open_error(ReplayConfig(type="replay", path=tmp_path / "gone.npz"))
    assert message == f"recording {tmp_path / 'gone.npz'} does not exist"


def test_replay_of_a_text_file_renamed_mp4(text_as_mp4: Path) -> None:
    assert "cannot be read as a video" in open_error(ReplayConfig(type="replay", path=text_as_mp4))


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def good_frames(n: int = 3) -> np.ndarray:
    return np.zeros((n, 4, 6, 3), np.uint8)


def truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def member_cut_short(path: Path) -> Path:
    """A well-formed zip whose frames.npy holds fewer bytes than its header promises."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, good_frames())
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("frames.npy", buffer.getvalue()[:-10])
        ts = io.BytesIO()
        np.lib.format.write_array(ts, np.arange(3.0))
        archive.writestr("ts_s.npy", ts.getvalue())
    return path


def npz(frames: np.ndarray | None, ts_s: np.ndarray | None) -> Callable[[Path], Path]:
    arrays = {k: v for k, v in (("frames", frames), ("ts_s", ts_s)) if v is not None}
    return lambda path: write_npz(path, **arrays)


def garbage(path: Path) -> Path:
    path.write_bytes(b"\x00garbage" * 50)
    return path


CORRUPT: dict[str, Callable[[Path], Path]] = {
    "random bytes": garbage,
    "truncated archive": lambda p: truncated(npz(good_frames(), np.arange(3.0))(p)),
    "no ts_s": npz(good_frames(), None),
    "ts_s too short": npz(good_frames(), np.arange(2.0)),
    "ts_s not rising": npz(good_frames(), np.zeros(3)),
    "grey frames": npz(np.zeros((3, 4, 6), np.uint8), np.arange(3.0)),
    "float frames": npz(np.zeros((3, 4, 6, 3)), np.arange(3.0)),
    "frame data cut short": member_cut_short,
}


@pytest.mark.parametrize("damage", sorted(CORRUPT))
def test_replay_of_a_corrupt_npz(tmp_path: Path, damage: str) -> None:
    path = CORRUPT[damage](tmp_path / "session.npz")
    message = open_error(ReplayConfig(type="replay", path=path))
    assert message.startswith(f"recording {path} is not a valid session recording: ")


# --- picamera (no picamera2 here; a stand-in module plays the failure modes) ---------------------


def test_picamera_without_picamera2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import raises ImportError
    message = open_error(PicameraConfig(type="picamera"))
    assert message == INSTALL_HINT
    assert "apt install python3-picamera2" in message and "--system-site-packages" in message


def test_picamera_without_a_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_camera() -> None:
        raise IndexError("list index out of range")  # what Picamera2() does with no camera

    module = types.ModuleType("picamera2")
    module.Picamera2 = no_camera  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    assert open_error(PicameraConfig(type="picamera")).startswith("no Pi camera found")


def test_importing_device_sources_does_not_import_vendor_modules() -> None:
    code = "import sys, device.sources; print(sorted({'cv2', 'picamera2'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- registry -------------------------------------------------------------------------------


def test_registry_covers_every_configured_type() -> None:
    assert set(RGB_SOURCES) == {"picamera", "opencv", "replay", "synthetic"}


def test_unknown_type_is_a_config_error() -> None:
    bogus = types.SimpleNamespace(type="webcam")
    with pytest.raises(ConfigError, match="webcam"):
        create_rgb_source(bogus)  # type: ignore[arg-type]


# --- recording --------------------------------------------------------------------------------


def synthetic(frame_count: int) -> SyntheticConfig:
    return SyntheticConfig(
        type="synthetic", width_px=16, height_px=8, fps_hz=1000, frame_count=frame_count
    )


def test_recording_refuses_without_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    source = create_rgb_source(synthetic(3))
    with pytest.raises(RecordingRefused, match="personal data"):
        record_session(source, tmp_path / "s.npz", seconds=1)
    assert not (tmp_path / "s.npz").exists()


def test_recording_is_private_and_bounded(tmp_path: Path) -> None:
    out = tmp_path / "s.npz"
    summary = record_session(create_rgb_source(synthetic(50)), out, 5, max_frames=7, force=True)
    assert summary.frame_count == 7 and (summary.width_px, summary.height_px) == (16, 8)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with np.load(out) as data:
        assert data["frames"].shape == (7, 8, 16, 3)
        assert data["ts_s"][0] == 0.0
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no partial file left


def test_recording_from_a_source_that_cannot_open(tmp_path: Path) -> None:
    source = create_rgb_source(OpencvConfig(type="opencv", video_path=tmp_path / "gone.mp4"))
    with pytest.raises(SourceUnavailable):
        record_session(source, tmp_path / "s.npz", 1, force=True)
    assert not (tmp_path / "s.npz").exists()
