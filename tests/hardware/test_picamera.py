"""On a Raspberry Pi with a camera: ``pytest -m hardware tests/hardware/test_picamera.py``.

Self-checking, in picamera2's style: it opens the real camera, reads frames and checks what the
adapter promises. It fails (not skips) without picamera2 or a camera: running it says there is one.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from device.config import PicameraConfig
from device.sources.latest import CaptureThread, LatestFrame
from device.sources.picamera import PicameraSource

pytestmark = pytest.mark.hardware

WIDTH, HEIGHT, FPS = 640, 480, 15.0


def test_reads_ten_rgb_frames_with_rising_sensor_timestamps() -> None:
    source = PicameraSource(
        PicameraConfig(type="picamera", width_px=WIDTH, height_px=HEIGHT, fps_hz=FPS)
    )
    source.open()
    try:
        frames = [source.read() for _ in range(10)]
        received_at = time.monotonic()
    finally:
        source.close()
    assert all(f is not None for f in frames)
    real = [f for f in frames if f is not None]
    for frame in real:
        assert frame.image.shape == (HEIGHT, WIDTH, 3)
        assert frame.image.dtype == np.uint8 and frame.image.flags.c_contiguous
    ts = np.array([f.ts_s for f in real])
    assert np.all(np.diff(ts) > 0)
    assert np.all(np.diff([f.index for f in real]) > 0)
    # SensorTimestamp is CLOCK_MONOTONIC: the last frame is recent on time.monotonic()'s clock
    assert 0 <= received_at - ts[-1] < 1.0
    # the fixed frame duration holds: median spacing near 1/FPS
    assert float(np.median(np.diff(ts))) == pytest.approx(1 / FPS, rel=0.2)
    assert source.read() is None  # read after close


def test_capture_thread_runs_and_stops_cleanly() -> None:
    source = PicameraSource(
        PicameraConfig(type="picamera", width_px=320, height_px=240, fps_hz=FPS)
    )
    holder = LatestFrame()
    capture = CaptureThread(source, holder)
    capture.start()
    try:
        frames = [holder.take(timeout_s=2.0) for _ in range(5)]
    finally:
        capture.stop()
    assert all(f is not None for f in frames)
    assert capture.error is None
    # a second open after stop() works: the camera was released
    source.open()
    source.close()
