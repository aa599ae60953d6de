"""The CNN in 8-bit integers: onnxruntime's static quantization, calibrated on training crops.

Weights become int8 per output channel, activations uint8 with ranges measured (min/max) on a
fixed sample of training crops; the final softmax stays in float32 (quantized, its probabilities
would come in steps of 1/255 and small ones would be 0, which the stacker's logarithm cannot
use), and the graph keeps float32 input and output, so the device runs it as it ran the float
model. On the development machine this cuts the CNN from 1.1 MB to 0.3 MB and
its onnxruntime time per face from 0.28 to 0.13 ms with the same PrivateTest accuracy
(docs/fused.md). ``int8_parity`` says how far the int8 model is from the float one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from trainer.cnn import INPUT_NAME, cnn_probs, probability_agreement

CALIBRATION_ROWS = 3000
MIN_ARGMAX_AGREEMENT = 0.95  # the int8 CNN must name the float CNN's class this often


class CropReader(CalibrationDataReader):  # type: ignore[misc]
    """Feeds calibration crops one at a time, as the device does."""

    def __init__(self, crops: npt.NDArray[np.uint8]) -> None:
        self._rows: Iterator[npt.NDArray[np.uint8]] = iter(crops)

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        crop = next(self._rows, None)
        if crop is None:
            return None
        return {INPUT_NAME: crop.astype(np.float32)[None, None]}


def calibration_sample(
    crops: npt.NDArray[np.uint8], seed: int, rows: int = CALIBRATION_ROWS
) -> npt.NDArray[np.uint8]:
    """A fixed random sample of the training crops (the same for the same seed)."""
    pick = np.random.default_rng(seed).permutation(len(crops))[:rows]
    return crops[np.sort(pick)]


def quantize_cnn(
    float_path: Path,
    out_path: Path,
    calibration: npt.NDArray[np.uint8],
    *,
    float_ops: tuple[str, ...] = ("Softmax",),
    only_ops: tuple[str, ...] | None = None,
) -> None:
    """Write the int8 (QDQ) version of the float CNN at ``float_path`` to ``out_path``.

    Nodes of the types in ``float_ops`` stay float; ``only_ops`` limits quantization to those
    types (the defaults are what the bundle ships; ``trainer.fused_variants`` tries others).
    """
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))
        graph = onnx.load(str(prepared)).graph
        kept_float = [n.name for n in graph.node if n.op_type in float_ops]
        quantize_static(
            str(prepared),
            str(out_path),
            CropReader(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=kept_float,
            op_types_to_quantize=list(only_ops) if only_ops else None,
        )


def int8_parity(
    float_path: Path, int8_path: Path, crops: npt.NDArray[np.uint8]
) -> dict[str, float]:
    """The int8 CNN against the float CNN on ``crops``: argmax agreement and max |Δp|."""
    return probability_agreement(cnn_probs(float_path, crops), cnn_probs(int8_path, crops))
