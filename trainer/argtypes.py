"""argparse value types shared by the trainer's commands (one-line errors, never tracebacks)."""

from __future__ import annotations

import argparse


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def fold_jobs(text: str) -> int:
    """joblib's n_jobs: how many folds at once, or -1 for all cores (0 is no count at all)."""
    value = whole_number(text)
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(
            f"{value}: give a number of folds at once, or -1 for all cores"
        )
    return value
