"""One contract for every RGB source that runs on this machine (style rule R2).

The contract:
- open() → read() … → close(); read() returns RgbFrame until the end of a finite stream, then
  None (and None again on every later call).
- image: H x W x 3, uint8, C-contiguous, RGB; the same size for every frame of a stream.
- ts_s and index strictly rising.
- close() is idempotent; **read() after close() returns None** (it never raises).
- a source at N fps delivers at about real time (behaviour check with loose bounds only).

The picamera adapter runs here against a fake picamera2 module (tests its plumbing, not the
camera); tests/hardware/test_picamera.py is the real thing.
"""

from __future__ import annotations

import itertools
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from device.config import OpencvConfig, PicameraConfig, ReplayConfig, SyntheticConfig
from device.frames import RgbFrame
from device.sources import RgbSource, create_rgb_source
from device.sources.recording import record_session
from device.sources.synthetic import SyntheticSource

VIDEO_DIR = Path(__file__).resolve().parents[3] / "shared" / "assets" / "video_rgb"
SHORT_VIDEO = VIDEO_DIR / "pyfeat_single_face.mp4"  # 640x360, 30 fps, 72 frames
SHORT_VIDEO_FRAMES = 72
RECORDED_FRAMES = 36  # recorded at 30 fps: 1.2 s, once per test session


@pytest.fixture(scope="session")
def short_video() -> Path:
    if not SHORT_VIDEO.is_file():
        pytest.fail(f"sample video {SHORT_VIDEO} is missing: check out ../shared beside the repo")
    return SHORT_VIDEO


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short .npz session recorded from synthetic frames at 30 fps."""
    out = tmp_path_factory.mktemp("rec") / "session.npz"
    record_session(make_synthetic(RECORDED_FRAMES, 30.0), out, seconds=10.0, force=True)
    return out


def synthetic_config(frame_count: int | None, fps_hz: float) -> SyntheticConfig:
    return SyntheticConfig(
        type="synthetic", width_px=96, height_px=64, fps_hz=fps_hz, frame_count=frame_count, seed=3
    )


def make_synthetic(frame_count: int | None, fps_hz: float) -> RgbSource:
    return create_rgb_source(synthetic_config(frame_count, fps_hz))


# --- a fake picamera2, just enough of its API for the adapter --------------------------------


class FakeRequest:
    def __init__(self, camera: FakePicamera2) -> None:
        self._camera = camera
        camera.frame_no += 1
        self._ts_ns = 1_000_000_000 + camera.frame_no * 33_333_333

    def make_array(self, name: str) -> np.ndarray[Any, Any]:
        assert name == "main"
        w, h = self._camera.config["main"]["size"]
        return np.full((h, w, 3), self._camera.frame_no % 256, dtype=np.uint8)

    def get_metadata(self) -> dict[str, Any]:
        return {"SensorTimestamp": self._ts_ns}

    def release(self) -> None:
        self._camera.released += 1


class FakePicamera2:
    instances: ClassVar[list[FakePicamera2]] = []

    def __init__(self) -> None:
        self.frame_no = 0
        self.released = 0
        self.started = self.closed = False
        self.config: dict[str, Any] = {}
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def capture_request(self, wait: Any = None, flush: Any = None) -> FakeRequest:
        assert self.started and not self.closed
        return FakeRequest(self)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def install_fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)


# --- the cases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """``make(realtime)`` builds a source; realtime=False may play faster where a source can."""

    make: Callable[[bool], RgbSource]
    finite_frames: int | None  # frames before the end; None = a live stream
    fps_hz: float | None = None  # real-time rate, when pacing is part of the contract


CASE_IDS = ["opencv-file", "replay-video", "replay-npz", "synthetic", "picamera-fake"]


@pytest.fixture(params=CASE_IDS)
def case(
    request: pytest.FixtureRequest,
    short_video: Path,
    recording: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Case:
    name = request.param
    if name == "opencv-file":
        cfg = OpencvConfig(type="opencv", video_path=short_video)
        return Case(lambda rt: create_rgb_source(cfg), SHORT_VIDEO_FRAMES, 30.0)
    if name in ("replay-video", "replay-npz"):
        path = short_video if name == "replay-video" else recording
        frames = SHORT_VIDEO_FRAMES if name == "replay-video" else RECORDED_FRAMES

        def make_replay(realtime: bool) -> RgbSource:
            speed = 1.0 if realtime else 20.0
            return create_rgb_source(ReplayConfig(type="replay", path=path, speed=speed))

        return Case(make_replay, frames, 30.0)
    if name == "synthetic":
        return Case(lambda rt: make_synthetic(40, 30.0 if rt else 400.0), 40, 30.0)
    install_fake_picamera2(monkeypatch)
    cfg_pi = PicameraConfig(type="picamera", width_px=64, height_px=48, fps_hz=30.0)
    return Case(lambda rt: create_rgb_source(cfg_pi), None)


def read_frames(source: RgbSource, limit: int) -> list[RgbFrame]:
    frames: list[RgbFrame] = []
    while len(frames) < limit and (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def assert_frame_ok(frame: RgbFrame, size: tuple[int, int]) -> None:
    assert isinstance(frame, RgbFrame)
    image = frame.image
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    assert image.flags.c_contiguous
    assert frame.size == size


# --- the contract -----------------------------------------------------------------------------


def test_stream_contract(case: Case) -> None:
    source = case.make(False)
    source.open()
    try:
        limit = case.finite_frames + 5 if case.finite_frames else 30
        frames = read_frames(source, limit)
        if case.finite_frames is not None:
            assert len(frames) == case.finite_frames
            assert source.read() is None  # still ended
        else:
            assert len(frames) == limit
        size = frames[0].size
        for frame in frames:
            assert_frame_ok(frame, size)
        ts = np.array([f.ts_s for f in frames])
        index = np.array([f.index for f in frames])
        assert np.all(np.diff(ts) > 0)
        assert np.all(np.diff(index) > 0)
    finally:
        source.close()


def test_close_is_idempotent_and_read_after_close_returns_none(case: Case) -> None:
    source = case.make(False)
    source.close()  # closing an unopened source is fine
    source.open()
    assert source.read() is not None
    source.close()
    source.close()
    assert source.read() is None
    assert source.read() is None


def test_reopen_starts_again(case: Case) -> None:
    source = case.make(False)
    source.open()
    first = read_frames(source, 3)
    source.close()
    source.open()
    again = read_frames(source, 3)
    source.close()
    assert len(first) == len(again) == 3
    assert again[0].size == first[0].size


def test_delivers_at_about_real_time(case: Case) -> None:
    n_frames = 30
    if case.fps_hz is None:
        pytest.skip("a live camera is paced by its sensor, not by the adapter")
    source = case.make(True)
    source.open()
    try:
        started = time.monotonic()
        frames = read_frames(source, n_frames)
        elapsed = time.monotonic() - started
    finally:
        source.close()
    assert len(frames) == n_frames
    # frame 0 is due at once, frame n-1 after (n-1)/fps seconds
    assert elapsed >= 0.8 * (n_frames - 1) / case.fps_hz


# --- per-source behaviour the contract relies on -------------------------------------------------


def test_opencv_frames_are_rgb(short_video: Path) -> None:
    capture = cv2.VideoCapture(str(short_video))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    assert not np.array_equal(expected, bgr)  # the test frame is not grey
    for cfg in (
        OpencvConfig(type="opencv", video_path=short_video),
        ReplayConfig(type="replay", path=short_video),
    ):
        source = create_rgb_source(cfg)
        source.open()
        frame = source.read()
        source.close()
        assert frame is not None
        np.testing.assert_array_equal(frame.image, expected)


def test_video_timestamps_come_from_the_file(short_video: Path) -> None:
    source = create_rgb_source(ReplayConfig(type="replay", path=short_video, speed=50))
    source.open()
    frames = read_frames(source, 100)
    source.close()
    assert frames[0].ts_s == 0.0
    assert frames[-1].ts_s == pytest.approx((SHORT_VIDEO_FRAMES - 1) / 30.0, abs=1e-3)


def test_recording_round_trips_exactly(recording: Path) -> None:
    generator = SyntheticSource(synthetic_config(RECORDED_FRAMES, 30.0))
    expected = [generator.render(i) for i in range(RECORDED_FRAMES)]
    replay = create_rgb_source(ReplayConfig(type="replay", path=recording, speed=100))
    replay.open()
    replayed = read_frames(replay, 100)
    replay.close()
    assert len(replayed) == RECORDED_FRAMES
    for i, (image, frame) in enumerate(zip(expected, replayed, strict=True)):
        np.testing.assert_array_equal(frame.image, image)
        assert frame.ts_s == pytest.approx(i / 30.0)


def test_replay_loop_keeps_index_and_time_rising(recording: Path) -> None:
    cfg = ReplayConfig(type="replay", path=recording, loop=True, speed=100)
    source = create_rgb_source(cfg)
    source.open()
    frames = read_frames(source, 2 * RECORDED_FRAMES + 5)
    source.close()
    assert len(frames) == 2 * RECORDED_FRAMES + 5
    assert [f.index for f in frames] == list(range(len(frames)))
    assert np.all(np.diff([f.ts_s for f in frames]) > 0)
    np.testing.assert_array_equal(frames[RECORDED_FRAMES].image, frames[0].image)
    step = frames[1].ts_s - frames[0].ts_s
    assert frames[RECORDED_FRAMES].ts_s == pytest.approx(frames[RECORDED_FRAMES - 1].ts_s + step)


def test_replay_speed_scales_pacing(recording: Path) -> None:
    """36 frames recorded at 30 fps span 1.17 s; at speed 4 that is about 0.29 s."""
    source = create_rgb_source(ReplayConfig(type="replay", path=recording, speed=4))
    source.open()
    started = time.monotonic()
    frames = read_frames(source, 100)
    elapsed = time.monotonic() - started
    source.close()
    span_s = (RECORDED_FRAMES - 1) / 30.0
    assert len(frames) == RECORDED_FRAMES
    assert 0.8 * span_s / 4 <= elapsed < 0.8 * span_s  # paced, and faster than real time


def test_synthetic_is_deterministic_and_moving() -> None:
    def first_frames(seed: int) -> list[RgbFrame]:
        cfg = SyntheticConfig(type="synthetic", fps_hz=1000, frame_count=5, seed=seed)
        source = create_rgb_source(cfg)
        source.open()
        frames = read_frames(source, 10)
        source.close()
        return frames

    a, b, c = first_frames(1), first_frames(1), first_frames(2)
    assert len(a) == 5
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
    assert not np.array_equal(a[0].image, c[0].image)
    assert all(not np.array_equal(x.image, y.image) for x, y in itertools.pairwise(a))


def test_picamera_adapter_plumbing(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_picamera2(monkeypatch)
    FakePicamera2.instances.clear()
    cfg = PicameraConfig(type="picamera", width_px=64, height_px=48, fps_hz=15.0)
    source = create_rgb_source(cfg)
    source.open()
    frames = read_frames(source, 3)
    source.close()
    camera = FakePicamera2.instances[0]
    assert camera.config["main"] == {"size": (64, 48), "format": "BGR888"}
    assert camera.config["controls"] == {"FrameDurationLimits": (66_667, 66_667)}
    assert camera.released == 3 and camera.closed
    assert frames[0].ts_s == pytest.approx(1.033333333)
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].size == (64, 48)
