"""Smoothing: windowed probabilities, hysteresis against flicker, explicit no-face state."""

from __future__ import annotations

import numpy as np

from device.inference.smoothing import LabelSmoother

LABELS = ("happy", "sad", "neutral")


def smoother(**kw: float) -> LabelSmoother:
    args = {"window_s": 1.0, "min_confidence": 0.4, "switch_margin": 0.1} | kw
    return LabelSmoother(LABELS, **args)  # type: ignore[arg-type]


def p(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_starts_as_no_face_and_picks_up_a_clear_label() -> None:
    s = smoother()
    assert s.current.label == "no_face" and not s.ready
    assert s.update(0.0, p(0.8, 0.1, 0.1)).label == "no_face"  # half a window first
    assert not s.ready
    out = s.update(0.5, p(0.8, 0.1, 0.1))
    assert s.ready
    assert out.label == "happy"
    assert abs(out.confidence - 0.8) < 1e-6


def test_alternating_frames_do_not_flicker() -> None:
    s = smoother()
    labels = []
    for i in range(40):
        probs = p(0.52, 0.48, 0.0) if i % 2 == 0 else p(0.47, 0.53, 0.0)
        labels.append(s.update(i * 0.1, probs).label)
    decided = labels[5:]  # after the first half window
    assert len(set(decided)) == 1
    assert decided[0] in {"happy", "sad"}


def test_switches_when_new_label_wins_by_the_margin() -> None:
    s = smoother()
    t = 0.0
    for _ in range(10):
        s.update(t, p(0.9, 0.05, 0.05))
        t += 0.1
    seen = []
    for _ in range(20):
        seen.append(s.update(t, p(0.1, 0.85, 0.05)).label)
        t += 0.1
    assert seen[0] == "happy"  # one frame is not enough
    assert seen[-1] == "sad"
    first_sad = seen.index("sad")
    assert all(label == "sad" for label in seen[first_sad:])


def test_below_min_confidence_keeps_the_old_label() -> None:
    s = smoother(min_confidence=0.6)
    s.update(0.0, p(0.9, 0.05, 0.05))
    s.update(0.5, p(0.9, 0.05, 0.05))
    for i in range(6, 30):
        out = s.update(i * 0.1, p(0.2, 0.45, 0.35))
    assert out.label == "happy"


def test_no_face_for_most_of_the_window() -> None:
    s = smoother()
    s.update(0.0, p(0.9, 0.05, 0.05))
    assert s.update(0.5, p(0.9, 0.05, 0.05)).label == "happy"
    out = None
    for i in range(6, 20):
        out = s.update(i * 0.1, None)
    assert out is not None
    assert out.label == "no_face"
    assert out.confidence == 1.0


def test_old_observations_leave_the_window() -> None:
    s = smoother(window_s=0.5)
    s.update(0.0, p(0.9, 0.05, 0.05))
    assert s.update(0.3, p(0.9, 0.05, 0.05)).label == "happy"
    out = s.update(10.0, p(0.05, 0.9, 0.05))
    assert out.label == "sad"
    assert abs(out.confidence - 0.9) < 1e-6
