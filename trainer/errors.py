"""Trainer-specific errors; each carries one sentence a person can act on."""

from __future__ import annotations

from device.errors import EmotionEdgeError

EX_USAGE = 2  # argparse's own code for a bad command line
EX_DATAERR = 65  # sysexits.h: the input data was incorrect
EX_SOFTWARE = 70  # sysexits.h: an internal check failed


class UsageError(EmotionEdgeError):
    """A bad or missing command-line argument."""

    exit_code = EX_USAGE


class DatasetError(EmotionEdgeError):
    """A dataset path is missing, or its files do not have the expected shape."""

    exit_code = EX_DATAERR


class ParityError(EmotionEdgeError):
    """The exported ONNX model does not reproduce scikit-learn's probabilities."""

    exit_code = EX_SOFTWARE


class ModelBudgetError(EmotionEdgeError):
    """The exported model is larger than the size budget for the device."""

    exit_code = EX_SOFTWARE
