"""argparse value types shared by the trainer's commands (one-line errors, never tracebacks)."""

from __future__ import annotations

import argparse

from device.argtypes import positive_int, whole_number

__all__ = ["channels", "decay", "fold_jobs", "positive_int", "whole_number"]


def fold_jobs(text: str) -> int:
    """joblib's n_jobs: how many folds at once, or -1 for all cores (0 is no count at all)."""
    value = whole_number(text)
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(
            f"{value}: give a number of folds at once, or -1 for all cores"
        )
    return value


def channels(text: str) -> tuple[tuple[int, int], ...]:
    """A CNN shape: 'width,convs' per block, e.g. '32,1 48,1 96,2 160,1'."""
    try:
        blocks = tuple(tuple(int(v) for v in block.split(",")) for block in text.split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: blocks are 'width,convs' pairs") from None
    if not blocks or any(len(b) != 2 or min(b) < 1 for b in blocks):
        raise argparse.ArgumentTypeError(f"{text!r}: blocks are 'width,convs' pairs")
    return blocks  # type: ignore[return-value]


def decay(text: str) -> float:
    """A moving average's decay per step: 0 (off) up to, not including, 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value}: a decay lies from 0 (off) up to below 1")
    return value
