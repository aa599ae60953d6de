"""Generated frames: a bright disc moving over a colour gradient, seeded and deterministic.

There is no face in them, so they exercise the pipeline's no-face path. ``ts_s`` is
``index / fps_hz`` (seconds since the first frame), and frames are paced at ``fps_hz``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from device.config import SyntheticConfig
from device.frames import RgbFrame
from device.sources.latest import FrameClock


def _gradient(width: int, height: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """A smooth H x W x 3 background between four random corner colours."""
    corners = rng.uniform(20, 160, size=(2, 2, 3)).astype(np.float32)
    u = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    v = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top = corners[0, 0] * (1 - u) + corners[0, 1] * u
    bottom = corners[1, 0] * (1 - u) + corners[1, 1] * u
    result: npt.NDArray[np.float32] = top * (1 - v) + bottom * v
    return result


class SyntheticSource:
    """Deterministic frames for tests and for trying the device without a camera."""

    def __init__(self, config: SyntheticConfig) -> None:
        self._config = config
        rng = np.random.default_rng(config.seed)
        w, h = config.width_px, config.height_px
        self._background = _gradient(w, h, rng).astype(np.uint8)
        self._disc_rgb = rng.uniform(200, 255, size=3).astype(np.uint8)
        self._freq_hz = rng.uniform(0.2, 0.6, size=2)
        self._phase = rng.uniform(0, 2 * math.pi, size=2)
        self._yy, self._xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._radius = max(2.0, min(w, h) / 8)
        self._clock = FrameClock(config.fps_hz, config.frame_count)

    def open(self) -> None:
        self._clock.open()

    def read(self) -> RgbFrame | None:
        due = self._clock.tick()
        if due is None:
            return None
        index, ts_s = due
        return RgbFrame(image=self.render(index), ts_s=ts_s, index=index)

    def close(self) -> None:
        self._clock.close()

    def render(self, index: int) -> npt.NDArray[np.uint8]:
        """Frame ``index`` as H x W x 3 uint8 RGB (pure; the same index gives the same image)."""
        t = index / self._config.fps_hz
        w, h = self._config.width_px, self._config.height_px
        angle = 2 * math.pi * self._freq_hz * t + self._phase
        cx = w / 2 + 0.35 * w * math.sin(float(angle[0]))
        cy = h / 2 + 0.35 * h * math.sin(float(angle[1]))
        inside = (self._xx - cx) ** 2 + (self._yy - cy) ** 2 <= self._radius**2
        image = self._background.copy()
        # the disc's brightness steps every frame, so consecutive frames always differ
        image[inside] = self._disc_rgb - np.uint8(index % 50)
        return image
