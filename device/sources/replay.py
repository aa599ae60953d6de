"""Replays a recorded session (.npz from ``recording.py``) or a video file at its own timing.

An .npz recording holds ``frames`` (N x H x W x 3 uint8 RGB) and ``ts_s`` (N float64, rising);
frames are streamed one at a time, never loaded all at once. Output ``ts_s`` is the recorded
timeline from the first frame (0.0), unscaled by ``speed``; with ``loop`` every pass continues
where the previous one ended, so ``ts_s`` and ``index`` keep rising.
"""

from __future__ import annotations

import threading
import zipfile
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from device.config import ReplayConfig
from device.errors import SourceUnavailable
from device.frames import RgbFrame
from device.sources.latest import Pacer
from device.sources.opencv import read_video_frames

Rgb = npt.NDArray[np.uint8]
Clip = Iterator[tuple[float, Rgb]]
_BAD_FILE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


def _read_header(stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[np.generic]]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    return np.lib.format.read_array_header_2_0(stream)


class NpzRecording:
    """Checks an .npz session on construction; ``frames()`` streams one pass of it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with zipfile.ZipFile(path) as archive:
                with archive.open("ts_s.npy") as stream:
                    ts = np.lib.format.read_array(stream, allow_pickle=False)
                with archive.open("frames.npy") as stream:
                    shape, fortran, dtype = _read_header(stream)
                    data_offset = stream.tell()
                size = archive.getinfo("frames.npy").file_size
        except _BAD_FILE as exc:
            raise self._invalid(f"{type(exc).__name__}: {exc}") from exc
        self.ts_s = np.asarray(ts, dtype=np.float64)
        self.shape = shape
        self._check(fortran, dtype, size - data_offset)

    def _invalid(self, why: str) -> SourceUnavailable:
        return SourceUnavailable(f"recording {self.path} is not a valid session recording: {why}")

    def _check(self, fortran: bool, dtype: np.dtype[np.generic], data_bytes: int) -> None:
        shape = self.shape
        if len(shape) != 4 or shape[3] != 3 or dtype != np.uint8 or fortran:
            raise self._invalid(f"frames must be N x H x W x 3 uint8, got {shape} {dtype}")
        if shape[0] == 0 or self.ts_s.shape != (shape[0],):
            raise self._invalid(f"{shape[0]} frames but ts_s has shape {self.ts_s.shape}")
        if data_bytes != int(np.prod(shape)):
            raise self._invalid("frame data is truncated")
        if not np.all(np.isfinite(self.ts_s)) or np.any(np.diff(self.ts_s) <= 0):
            raise self._invalid("ts_s is not strictly rising")

    def frames(self) -> Generator[tuple[float, Rgb], None, None]:
        """(ts_s, rgb) for each frame, reading the archive as it goes."""
        _, height, width, _ = self.shape
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open("frames.npy") as stream:
                _read_header(stream)
                nbytes = height * width * 3
                for ts in self.ts_s:
                    data = stream.read(nbytes)
                    if len(data) != nbytes:
                        raise self._invalid("frame data is truncated")
                    image = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
                    yield float(ts), image.copy()  # writable, like every other source's frames
        except _BAD_FILE as exc:
            raise self._invalid(f"{type(exc).__name__}: {exc}") from exc


def _video_clip(path: Path) -> Generator[tuple[float, Rgb], None, None]:
    frames = read_video_frames(path)
    try:
        for _, ts, rgb in frames:
            yield ts, rgb
    finally:
        frames.close()


class ReplaySource:
    """A recording or video played at ``speed`` x its recorded timing, optionally looped."""

    def __init__(self, config: ReplayConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._pacer = Pacer(config.speed)
        self._recording: NpzRecording | None = None
        self._timeline: Generator[tuple[float, Rgb], None, None] | None = None
        self._pending: tuple[float, Rgb] | None = None
        self._index = 0

    def open(self) -> None:
        self.close()
        path = self._config.path
        if not path.is_file():
            raise SourceUnavailable(f"recording {path} does not exist")
        if path.suffix.lower() == ".npz":
            self._recording = NpzRecording(path)
        timeline = self._passes()
        first = next(timeline, None)  # surfaces an unreadable video now, not at the first read
        if first is None:
            raise SourceUnavailable(f"recording {path} contains no frames")
        self._pacer.reset()
        self._timeline, self._pending, self._index = timeline, first, 0

    def read(self) -> RgbFrame | None:
        with self._lock:
            item, self._pending = self._pending, None
            if item is None and self._timeline is not None:
                item = next(self._timeline, None)
        if item is None or not self._pacer.wait_until(item[0]):
            return None
        frame = RgbFrame(image=item[1], ts_s=item[0], index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        """Safe from another thread; wakes a paced read."""
        self._pacer.interrupt()
        with self._lock:
            if self._timeline is not None:
                self._timeline.close()
            self._timeline, self._pending = None, None

    def _clip(self) -> Clip:
        if self._recording is not None:
            return self._recording.frames()
        return _video_clip(self._config.path)

    def _passes(self) -> Generator[tuple[float, Rgb], None, None]:
        """The whole timeline: one pass, or passes end to end when looping."""
        offset = 0.0
        while True:
            first: float | None = None
            last = step = 0.0
            for ts, rgb in self._clip():
                first = ts if first is None else first
                step, last = ts - last, ts
                yield offset + ts - first, rgb
            if first is None or not self._config.loop:
                return
            period = last - first + (step if last > first else 1.0 / 30)
            offset += period
