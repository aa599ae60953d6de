"""A FLIR Lepton on a GroupGets PureThermal USB board (UVC, Y16), as a thermal source.

The board streams Y16 at 9 fps: 160 x 120, or 160 x 122 when the two telemetry rows are
enabled (they come last and are dropped here). A radiometric Lepton sends TLinear
centikelvin, which becomes °C; a non-radiometric one sends relative 14-bit counts, which
are passed on as counts with ``radiometric=False``. OpenCV is reached only through
``device.sources.opencv`` (the one cv2 adapter).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from device.errors import SourceUnavailable
from device.frames import ThermalFrame
from device.sources.thermal.lepton.vospi import Radiometry

TELEMETRY_ROWS = 2
FRAME_SHAPES = {(120, 160), (122, 160), (60, 80), (63, 80)}


class Y16Capture(Protocol):
    def read(self) -> npt.NDArray[np.uint16] | None: ...

    def release(self) -> None: ...


def _open_uvc(index: int) -> Y16Capture:
    from device.sources.opencv import Y16Camera

    return Y16Camera(index)


def strip_telemetry(raw: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint16]:
    """The pixel rows of a Y16 frame, without the telemetry rows a board may append."""
    if raw.shape not in FRAME_SHAPES:
        raise SourceUnavailable(
            f"thermal camera sent {raw.shape[1]}x{raw.shape[0]} frames; a Lepton on a "
            "PureThermal board sends 160x120 or 80x60 Y16 (check the camera index)"
        )
    rows = 120 if raw.shape[1] == 160 else 60
    return raw[:rows]


class PureThermalSource:
    """open() → read() until closed → close(), frames as ``ThermalFrame``."""

    def __init__(
        self,
        camera_index: int,
        radiometry: Radiometry | None = None,
        open_capture: Callable[[int], Y16Capture] = _open_uvc,
    ) -> None:
        self.camera_index = camera_index
        self.radiometry = radiometry or Radiometry(tlinear=True)
        self._open_capture = open_capture
        self._capture: Y16Capture | None = None
        self._lock = threading.Lock()
        self._index = 0

    def open(self) -> None:
        self.close()
        self._capture = self._open_capture(self.camera_index)
        self._index = 0

    def read(self) -> ThermalFrame | None:
        with self._lock:
            if self._capture is None:
                return None
            raw = self._capture.read()
            ts_s = time.monotonic()
        if raw is None:
            raise SourceUnavailable(
                f"thermal camera /dev/video{self.camera_index} stopped delivering frames"
            )
        frame = ThermalFrame(
            celsius=self.radiometry.to_celsius(strip_telemetry(raw)),
            ts_s=ts_s,
            index=self._index,
            radiometric=self.radiometry.tlinear,
        )
        self._index += 1
        return frame

    def close(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
            self._capture = None
