"""Probability smoothing over a time window, with hysteresis so the label does not flicker."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class SmoothedLabel:
    label: str
    confidence: float


class LabelSmoother:
    """Averages class probabilities over the last ``window_s`` seconds of observations.

    An observation is a probability vector, or None for a frame without a face. The label
    changes only when the new class beats the current one by ``switch_margin`` and reaches
    ``min_confidence``; more than half the window without a face gives ``no_face_label``.
    The first label needs half a window of observations, so one odd first frame is not news.
    """

    def __init__(
        self,
        labels: tuple[str, ...],
        window_s: float,
        min_confidence: float,
        switch_margin: float,
        no_face_label: str = "no_face",
    ) -> None:
        self.labels = labels
        self.window_s = window_s
        self.min_confidence = min_confidence
        self.switch_margin = switch_margin
        self.no_face_label = no_face_label
        # Plain floats, not numpy: seven numbers per frame cost less as a list (bench shows it).
        self._window: deque[tuple[float, list[float] | None]] = deque()
        self._sum = [0.0] * len(labels)
        self._faces = 0
        self.current = SmoothedLabel(no_face_label, 1.0)
        self._first_ts_s: float | None = None
        self._decided = False

    @property
    def ready(self) -> bool:
        """False until the first label has been decided (half a window of observations)."""
        return self._decided

    def update(self, ts_s: float, probs: npt.NDArray[np.float32] | None) -> SmoothedLabel:
        self._add(ts_s, probs)
        self._expire(ts_s)
        if self._first_ts_s is None:
            self._first_ts_s = ts_s
        if ts_s - self._first_ts_s >= self.window_s / 2:
            self.current = self._decide()
            self._decided = True
        return self.current

    def _add(self, ts_s: float, probs: npt.NDArray[np.float32] | None) -> None:
        row = None if probs is None else probs.tolist()
        self._window.append((ts_s, row))
        if row is not None:
            self._sum = [a + b for a, b in zip(self._sum, row, strict=True)]
            self._faces += 1

    def _expire(self, now_s: float) -> None:
        while self._window and self._window[0][0] <= now_s - self.window_s:
            _, row = self._window.popleft()
            if row is not None:
                self._sum = [a - b for a, b in zip(self._sum, row, strict=True)]
                self._faces -= 1

    def _decide(self) -> SmoothedLabel:
        if self._faces * 2 <= len(self._window):
            share = 1.0 - self._faces / max(len(self._window), 1)
            return SmoothedLabel(self.no_face_label, share)
        mean = [total / self._faces for total in self._sum]
        best = _argmax(mean)
        held = self.current.label
        if held == self.labels[best] or mean[best] < self.min_confidence:
            return self._keep(mean)
        if held in self.labels and mean[best] < mean[self.labels.index(held)] + self.switch_margin:
            return self._keep(mean)
        return SmoothedLabel(self.labels[best], float(mean[best]))

    def _keep(self, mean: list[float]) -> SmoothedLabel:
        held = self.current.label
        if held in self.labels:
            return SmoothedLabel(held, float(mean[self.labels.index(held)]))
        best = _argmax(mean)  # coming back from no_face below min_confidence
        return SmoothedLabel(self.labels[best], float(mean[best]))


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)
