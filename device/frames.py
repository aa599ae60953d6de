"""Frames as they travel from a source to the feature extractors. They live in memory only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class RgbFrame:
    """One colour frame: ``image`` is H x W x 3 uint8 in RGB order."""

    image: npt.NDArray[np.uint8]
    ts_s: float  # capture time, seconds on the source's clock (monotonic for live sources)
    index: int  # running number from the source; gaps mean the source dropped frames

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class ThermalFrame:
    """One thermal frame: ``celsius`` is H x W float32, or raw counts if not radiometric."""

    celsius: npt.NDArray[np.float32]
    ts_s: float
    index: int
    radiometric: bool = True
