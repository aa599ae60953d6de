"""A webcam (V4L2 index) or a video file through OpenCV: the only cv2 import in device.sources.

cv2 returns BGR; everything leaving this module is RGB. A file is paced to its own timing so
it behaves like a camera; ``read_video_frames`` gives the same frames without pacing.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from device.config import OpencvConfig
from device.errors import SourceUnavailable
from device.frames import RgbFrame
from device.sources.latest import Pacer

if TYPE_CHECKING:
    import cv2

Rgb = npt.NDArray[np.uint8]
VideoFrames = Generator[tuple[int, float, Rgb], None, None]
_DEFAULT_FPS = 30.0


def _cv2() -> Any:
    import cv2

    return cv2


def _to_rgb(bgr: Any) -> Rgb:
    cv = _cv2()
    code = cv.COLOR_GRAY2RGB if bgr.ndim == 2 else cv.COLOR_BGR2RGB
    if bgr.ndim == 3 and bgr.shape[2] == 4:
        code = cv.COLOR_BGRA2RGB
    rgb: Rgb = np.ascontiguousarray(cv.cvtColor(bgr, code), dtype=np.uint8)
    return rgb


def _media_ts(pos_ms: float, index: int, fps: float, prev: float | None) -> float:
    """Frame time from the container, else index/fps; always strictly after ``prev``."""
    step = 1.0 / fps if fps > 0 and math.isfinite(fps) else 1.0 / _DEFAULT_FPS
    ts = pos_ms / 1000.0 if math.isfinite(pos_ms) and (pos_ms > 0 or index == 0) else index * step
    if prev is not None and ts <= prev:
        ts = prev + step
    return ts


def _open_video(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise SourceUnavailable(f"video file {path} does not exist")
    cv = _cv2()
    cap: cv2.VideoCapture = cv.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise SourceUnavailable(
            f"video file {path} cannot be read as a video (not a video, or a codec OpenCV lacks)"
        )
    return cap


def _iterate_video(cap: cv2.VideoCapture) -> VideoFrames:
    cv = _cv2()
    fps = float(cap.get(cv.CAP_PROP_FPS))
    prev: float | None = None
    index = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                return
            prev = _media_ts(float(cap.get(cv.CAP_PROP_POS_MSEC)), index, fps, prev)
            yield index, prev, _to_rgb(bgr)
            index += 1
    finally:
        cap.release()


def read_video_frames(path: Path | str) -> VideoFrames:
    """(index, ts_s, rgb) for every frame of a video file, as fast as it decodes.

    The file is opened now, so a missing or unreadable file raises SourceUnavailable here;
    ``ts_s`` is the frame's position in the video (seconds from its start).
    """
    return _iterate_video(_open_video(Path(path)))


def _camera_reason(index: int) -> str:
    node = Path(f"/dev/video{index}")
    if sys.platform.startswith("linux") and not node.exists():
        return "no such device (is the camera plugged in? `v4l2-ctl --list-devices` lists them)"
    if node.exists() and not os.access(node, os.R_OK | os.W_OK):
        return "permission denied (add the user to the 'video' group)"
    return "it is busy or delivers no frames"


class OpencvSource:
    """A V4L2 camera (``camera_index``) or a video file (``video_path``), frames in RGB."""

    def __init__(self, config: OpencvConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._pacer = Pacer()
        self._cap: cv2.VideoCapture | None = None
        self._frames: VideoFrames | None = None
        self._pending: RgbFrame | None = None
        self._index = 0

    def open(self) -> None:
        self.close()
        self._pacer.reset()
        self._index = 0
        if self._config.video_path is not None:
            self._open_file(self._config.video_path)
        elif self._config.camera_index is not None:
            self._open_camera(self._config.camera_index)

    def read(self) -> RgbFrame | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame if self._pacer.wait_until(frame.ts_s) else None
        if self._frames is not None:
            return self._read_file()
        return self._read_camera()

    def close(self) -> None:
        """Release the camera or file; safe from another thread, wakes a paced read."""
        self._pacer.interrupt()
        with self._lock:
            if self._frames is not None:
                self._frames.close()
            if self._cap is not None:
                self._cap.release()
            self._frames, self._cap, self._pending = None, None, None

    def _open_file(self, path: Path) -> None:
        frames = read_video_frames(path)
        first = next(frames, None)
        if first is None:
            raise SourceUnavailable(f"video file {path} contains no readable frames")
        self._frames = frames
        self._pending = RgbFrame(image=first[2], ts_s=first[1], index=first[0])
        self._index = 1

    def _read_file(self) -> RgbFrame | None:
        with self._lock:
            item = next(self._frames, None) if self._frames is not None else None
        if item is None:
            return None
        index, ts_s, rgb = item
        if not self._pacer.wait_until(ts_s):
            return None
        return RgbFrame(image=rgb, ts_s=ts_s, index=index)

    def _open_camera(self, index: int) -> None:
        cv = _cv2()
        api = cv.CAP_V4L2 if sys.platform.startswith("linux") else cv.CAP_ANY
        cap = cv.VideoCapture(index, api)
        if cap.isOpened():
            if self._config.width_px is not None:
                cap.set(cv.CAP_PROP_FRAME_WIDTH, self._config.width_px)
            if self._config.height_px is not None:
                cap.set(cv.CAP_PROP_FRAME_HEIGHT, self._config.height_px)
            cap.set(cv.CAP_PROP_BUFFERSIZE, 1)
            ok, bgr = cap.read()
            if ok and bgr is not None:
                self._cap = cap
                self._pending = RgbFrame(image=_to_rgb(bgr), ts_s=time.monotonic(), index=0)
                self._index = 1
                return
        cap.release()
        reason = _camera_reason(index)
        raise SourceUnavailable(f"camera /dev/video{index} cannot be opened: {reason}")

    def _read_camera(self) -> RgbFrame | None:
        with self._lock:
            if self._cap is None:
                return None
            ok, bgr = self._cap.read()
            ts_s = time.monotonic()
        if not ok or bgr is None:
            index = self._config.camera_index
            raise SourceUnavailable(f"camera /dev/video{index} stopped delivering frames")
        frame = RgbFrame(image=_to_rgb(bgr), ts_s=ts_s, index=self._index)
        self._index += 1
        return frame


class Y16Camera:
    """A UVC camera delivering 16-bit grey frames (``Y16``), e.g. a PureThermal Lepton board.

    The fourcc must be set before conversion to RGB is switched off (the order matters to
    OpenCV's V4L2 backend); frames then come out as H x W uint16, untouched.
    """

    def __init__(self, index: int) -> None:
        cv = _cv2()
        self.index = index
        self._cap = cv.VideoCapture(index, cv.CAP_V4L2)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceUnavailable(
                f"thermal camera /dev/video{index} cannot be opened: {_camera_reason(index)}"
            )
        self._cap.set(cv.CAP_PROP_FOURCC, cv.VideoWriter.fourcc("Y", "1", "6", " "))
        self._cap.set(cv.CAP_PROP_CONVERT_RGB, 0)

    def read(self) -> npt.NDArray[np.uint16] | None:
        ok, raw = self._cap.read()
        if not ok or raw is None:
            return None
        frame: npt.NDArray[np.uint16] = np.asarray(raw).view(np.uint16).reshape(raw.shape[:2])
        return frame

    def release(self) -> None:
        self._cap.release()


def read_image_rgb(path: Path) -> Rgb | None:
    """An image file as H x W x 3 RGB (grey images are expanded), or None if unreadable."""
    cv = _cv2()
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    bgr = cv.imdecode(data, cv.IMREAD_COLOR) if data.size else None
    return None if bgr is None else _to_rgb(bgr)
