"""The Raspberry Pi camera through picamera2 (libcamera): the only picamera2 import, lazily.

Format "BGR888" is libcamera's little-endian name for bytes in R, G, B order, i.e. the
RGB array we want (docs/platform.md §2). ``ts_s`` is the sensor timestamp (CLOCK_MONOTONIC,
the same clock as ``time.monotonic()``), so ``time.monotonic() - frame.ts_s`` is the latency.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from device.config import PicameraConfig
from device.errors import SourceUnavailable
from device.frames import RgbFrame

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "picamera2 is not importable: `sudo apt install python3-picamera2` and run from a venv "
    "created with --system-site-packages"
)
_CAMERA_ERRORS = (RuntimeError, IndexError, OSError, TimeoutError)


class PicameraSource:
    """Continuous capture of the main stream at a fixed frame rate.

    ``flush=True`` makes every read wait for a frame exposed after the call (fresh, but at
    most every other frame); the default suits a capture thread that reads continuously.
    """

    def __init__(
        self, config: PicameraConfig, flush: bool = False, read_timeout_s: float = 5.0
    ) -> None:
        self._config = config
        self._flush = flush
        self._read_timeout_s = read_timeout_s
        self._lock = threading.Lock()
        self._camera: Any = None
        self._first_ts: float | None = None
        self._index = -1

    def open(self) -> None:
        self.close()
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceUnavailable(INSTALL_HINT) from exc
        try:
            camera = Picamera2()
        except _CAMERA_ERRORS as exc:
            raise SourceUnavailable(f"no Pi camera found or it is in use ({exc})") from exc
        try:
            camera.configure(self._video_config(camera))
            camera.start()
        except _CAMERA_ERRORS as exc:
            camera.close()
            raise SourceUnavailable(f"the Pi camera cannot be started: {exc}") from exc
        with self._lock:
            self._camera, self._first_ts, self._index = camera, None, -1

    def _video_config(self, camera: Any) -> Any:
        cfg = self._config
        frame_us = round(1_000_000 / cfg.fps_hz)
        return camera.create_video_configuration(
            main={"size": (cfg.width_px, cfg.height_px), "format": "BGR888"},
            buffer_count=4,
            controls={"FrameDurationLimits": (frame_us, frame_us)},
        )

    def read(self) -> RgbFrame | None:
        with self._lock:
            if self._camera is None:
                return None
            try:
                request = self._camera.capture_request(
                    wait=self._read_timeout_s, flush=self._flush or None
                )
                try:
                    image = np.array(request.make_array("main")[:, :, :3], dtype=np.uint8)
                    ts_ns = int(request.get_metadata()["SensorTimestamp"])
                finally:
                    request.release()
            except (*_CAMERA_ERRORS, KeyError) as exc:
                raise SourceUnavailable(f"the Pi camera stopped delivering frames: {exc}") from exc
        return RgbFrame(image=image, ts_s=ts_ns / 1e9, index=self._next_index(ts_ns / 1e9))

    def _next_index(self, ts_s: float) -> int:
        """Counts frame periods since the first frame, so a gap in ``index`` is a dropped frame."""
        if self._first_ts is None:
            self._first_ts = ts_s
        periods = round((ts_s - self._first_ts) * self._config.fps_hz)
        self._index = max(self._index + 1, periods)
        return self._index

    def close(self) -> None:
        """Stop and release the camera; idempotent. Waits for a read in progress to finish."""
        with self._lock:
            camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.stop()
            camera.close()
        except _CAMERA_ERRORS:
            logger.debug("closing the Pi camera failed", exc_info=True)
