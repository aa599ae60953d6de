"""Per-person thermal baselines and the deltas against them.

A Lepton's absolute accuracy is about ±5 °C, but its sensitivity is better than 50 mK, so the
emotional signal is in *changes* of a ROI's temperature, not in its level. A baseline is the
per-ROI median of a person's own recent readings:

- ``rolling``: the readings of the last ``window_s`` seconds *before* the current one, so a
  slow drift (room, sensor warm-up) is removed while a change within the window shows;
- ``calibration``: the readings of the first ``calibration_s`` seconds (a calm period at the
  start of a session), frozen afterwards; deltas are NaN during the calm period.

Until a baseline has ``min_samples`` readings of a ROI, that ROI's delta is NaN. NaN readings
(ROI not measurable in a frame) are ignored. Nothing here is persisted or logged: the values
are personal data and stay in memory.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from device.features.schema import THERMAL_FEATURES, THERMAL_ROIS

BaselineMode = Literal["rolling", "calibration"]
MAX_RATE_HZ = 30.0  # bounds a rolling window's memory: window_s x this many readings


@dataclass(frozen=True, slots=True)
class BaselineSettings:
    mode: BaselineMode = "rolling"
    window_s: float = 300.0  # rolling: how far back the baseline looks
    calibration_s: float = 60.0  # calibration: the length of the calm period
    min_samples: int = 20

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.calibration_s <= 0 or self.min_samples < 1:
            raise ValueError("baseline window, calibration period and min_samples must be > 0")


def deltas(means: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, float]:
    """``means - baseline`` per ROI (NaN where either is missing)."""
    return {
        roi: float(means.get(roi, math.nan)) - float(baseline.get(roi, math.nan))
        for roi in THERMAL_ROIS
    }


def baseline_of(readings: Sequence[Mapping[str, float]], min_samples: int = 1) -> dict[str, float]:
    """Per-ROI median of ``readings`` (NaN values ignored; NaN below ``min_samples``)."""
    result = {}
    for roi in THERMAL_ROIS:
        values = np.array([r.get(roi, math.nan) for r in readings], dtype=np.float64)
        values = values[np.isfinite(values)]
        result[roi] = float(np.median(values)) if values.size >= min_samples else math.nan
    return result


def feature_values(means: Mapping[str, float], delta: Mapping[str, float]) -> dict[str, float]:
    """The thermal part of the feature schema: ``thermal.<roi>.mean_c`` and ``.delta_c``."""
    values = {}
    for roi in THERMAL_ROIS:
        values[f"thermal.{roi}.mean_c"] = float(means.get(roi, math.nan))
        values[f"thermal.{roi}.delta_c"] = float(delta.get(roi, math.nan))
    return {name: values[name] for name in THERMAL_FEATURES}


class PersonBaseline:
    """One person's baseline; ``update`` takes a reading and returns its deltas."""

    def __init__(self, settings: BaselineSettings | None = None) -> None:
        self.settings = settings or BaselineSettings()
        rolling = self.settings.mode == "rolling"
        span_s = self.settings.window_s if rolling else self.settings.calibration_s
        self._history: deque[tuple[float, dict[str, float]]] = deque(
            maxlen=max(1, math.ceil(span_s * MAX_RATE_HZ))
        )
        self._start_s: float | None = None
        self._frozen: dict[str, float] | None = None

    def reset(self) -> None:
        """Forget everything (a different person, or a new calibration)."""
        self._history.clear()
        self._start_s, self._frozen = None, None

    def current(self) -> dict[str, float]:
        """The baseline as it stands (NaN for ROIs without enough readings)."""
        if self._frozen is not None:
            return dict(self._frozen)
        readings = [reading for _, reading in self._history]
        return baseline_of(readings, self.settings.min_samples)

    @property
    def calibrated(self) -> bool:
        """Calibration mode only: True once the calm period is over and the baseline frozen."""
        return self._frozen is not None

    def update(self, ts_s: float, means: Mapping[str, float]) -> dict[str, float]:
        """Deltas of ``means`` (ROI -> °C at ``ts_s``) against the baseline, then learn it."""
        if self._start_s is None:
            self._start_s = ts_s
        if self.settings.mode == "rolling":
            self._forget_before(ts_s - self.settings.window_s)
            result = deltas(means, self.current())
            self._history.append((ts_s, dict(means)))
            return result
        return self._calibration_update(ts_s, means)

    def _calibration_update(self, ts_s: float, means: Mapping[str, float]) -> dict[str, float]:
        start_s = ts_s if self._start_s is None else self._start_s
        if self._frozen is None and ts_s - start_s >= self.settings.calibration_s:
            self._frozen = self.current()
            self._history.clear()
        if self._frozen is None:
            self._history.append((ts_s, dict(means)))
            return deltas(means, {})  # NaN until the calm period is over
        return deltas(means, self._frozen)

    def _forget_before(self, oldest_s: float) -> None:
        while self._history and self._history[0][0] < oldest_s:
            self._history.popleft()
