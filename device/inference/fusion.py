"""Late fusion of the RGB and thermal models' probabilities over the labels both know.

Both models' smoothed probabilities are restricted to their shared labels, renormalised and
combined by a weighted geometric mean (a product of experts), then renormalised. Models whose
label sets do not meet cannot be fused: ``shared_labels`` is empty and the device says so.
Name thermal classes like the RGB model's (``happy``, ``fear``, ``neutral``) to fuse them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Probs = npt.NDArray[np.float64]
EPS = 1e-6


def shared_labels(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    """Labels in both, in ``first``'s order."""
    return tuple(label for label in first if label in second)


def restrict(labels: Sequence[str], probs: Sequence[float], keep: Sequence[str]) -> Probs:
    """``probs`` (in ``labels`` order) for ``keep`` only, renormalised."""
    index = {label: i for i, label in enumerate(labels)}
    values = np.array([probs[index[label]] for label in keep], dtype=np.float64) + EPS
    normalised: Probs = values / values.sum()
    return normalised


def fuse(rgb: Probs, thermal: Probs, thermal_weight: float = 0.5) -> Probs:
    """Weighted geometric mean of two distributions over the same labels."""
    logp = (1.0 - thermal_weight) * np.log(rgb + EPS) + thermal_weight * np.log(thermal + EPS)
    weights = np.exp(logp - logp.max())
    fused: Probs = weights / weights.sum()
    return fused
