"""The CNN in 8-bit integers: onnxruntime's static quantization, calibrated on training crops.

Weights become int8 per output channel, activations uint8 with ranges measured (min/max) on a
fixed sample of training crops; the final softmax stays in float32 (quantized, its probabilities
would come in steps of 1/255 and small ones would be 0, which the stacker's logarithm cannot
use), and the graph keeps float32 input and output, so the device runs it as it ran the float
model. On the development machine this cuts the CNN from 1.1 MB to 0.3 MB and
its onnxruntime time per face from 0.28 to 0.13 ms with the same PrivateTest accuracy
(docs/fused.md). ``int8_parity`` says how far the int8 model is from the float one.

Activations uint8 x weights int8 (``int8``) is onnxruntime's fastest form, but its x86 AVX2
kernel sums pairs of products in 16 bits and saturates: a CPU without VNNI gives other answers
than one with it (issue 15). ``PRECISIONS`` names the forms measured against that
(docs/fused.md, "One answer on every CPU"); ``check_kernel_parity`` refuses a model whose
optimized answers on this CPU differ from onnxruntime's reference execution.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from trainer.cnn import INPUT_NAME, cnn_probs, probability_agreement
from trainer.errors import ParityError

CALIBRATION_ROWS = 3000
MIN_ARGMAX_AGREEMENT = 0.95  # the int8 CNN must name the float CNN's class this often
# The largest |Δp| allowed between a model's optimized session and its reference execution on
# the same CPU, and between two CPUs (the device's self-check, device/inference/golden.py).
KERNEL_TOLERANCE = 1e-3

# quantize_static's settings per precision that uses it
_STATIC: dict[str, dict[str, Any]] = {
    "int8-7bit": {"activation_type": QuantType.QUInt8, "reduce_range": True},
    "s8s8": {"activation_type": QuantType.QInt8, "reduce_range": False},
    "int8": {"activation_type": QuantType.QUInt8, "reduce_range": False},
}


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


def store_cnn(
    float_path: Path, out_path: Path, precision: str, calibration: npt.NDArray[np.uint8]
) -> None:
    """Write the float CNN at ``float_path`` to ``out_path`` in ``precision`` (``PRECISIONS``)."""
    if precision == "float32":
        out_path.write_bytes(float_path.read_bytes())
    elif precision == "int8-weights":
        int8_weights(float_path, out_path)
    else:
        quantize_cnn(float_path, out_path, calibration, **_STATIC[precision])


def quantize_cnn(
    float_path: Path,
    out_path: Path,
    calibration: npt.NDArray[np.uint8],
    *,
    float_ops: tuple[str, ...] = ("Softmax",),
    only_ops: tuple[str, ...] | None = None,
    activation_type: QuantType = QuantType.QUInt8,
    reduce_range: bool = False,
) -> None:
    """Write the int8 (QDQ) version of the float CNN at ``float_path`` to ``out_path``.

    Nodes of the types in ``float_ops`` stay float; ``only_ops`` limits quantization to those
    types (``trainer.fused_variants`` tries others); ``reduce_range`` keeps weights in 7 bits.
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
            activation_type=activation_type,
            weight_type=QuantType.QInt8,
            reduce_range=reduce_range,
            nodes_to_exclude=kept_float,
            op_types_to_quantize=list(only_ops) if only_ops else None,
        )


def int8_weights(float_path: Path, out_path: Path) -> None:
    """The float CNN with each Conv and Gemm weight stored in int8 (symmetric, per output
    channel) behind a DequantizeLinear: a quarter of the size, float arithmetic at run time."""
    model = onnx.load(str(float_path))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    done: set[str] = set()
    dequantize = []
    for node in graph.node:
        name = node.input[1] if len(node.input) > 1 else ""
        if node.op_type not in ("Conv", "Gemm") or name not in weights or name in done:
            continue
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        axis = 0 if node.op_type == "Conv" or trans_b else 1
        tensors, node_dq = _int8_tensor(numpy_helper.to_array(weights[name]), name, axis)
        graph.initializer.remove(weights[name])
        graph.initializer.extend(tensors)
        dequantize.append(node_dq)
        done.add(name)
    for position, node_dq in enumerate(dequantize):
        graph.node.insert(position, node_dq)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))


def _int8_tensor(
    weight: npt.NDArray[np.float32], name: str, axis: int
) -> tuple[list[onnx.TensorProto], onnx.NodeProto]:
    """``weight`` as int8 + per-channel scale along ``axis``, and the node that restores it."""
    others = tuple(i for i in range(weight.ndim) if i != axis)
    scale = np.abs(weight).max(axis=others) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    shape = [1] * weight.ndim
    shape[axis] = -1
    quantized = np.clip(np.rint(weight / scale.reshape(shape)), -127, 127).astype(np.int8)
    tensors = [
        numpy_helper.from_array(quantized, f"{name}_int8"),
        numpy_helper.from_array(scale, f"{name}_scale"),
        numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{name}_zero_point"),
    ]
    node = helper.make_node(
        "DequantizeLinear",
        [f"{name}_int8", f"{name}_scale", f"{name}_zero_point"],
        [name],
        name=f"{name}_dequantize",
        axis=axis,
    )
    return tensors, node


def int8_parity(
    float_path: Path, int8_path: Path, crops: npt.NDArray[np.uint8]
) -> dict[str, float]:
    """The int8 CNN against the float CNN on ``crops``: argmax agreement and max |Δp|.

    The int8 CNN runs in onnxruntime's reference execution, so the figure does not depend on
    this CPU's int8 kernels (``kernel_parity`` says whether they agree with it).
    """
    return probability_agreement(
        cnn_probs(float_path, crops), cnn_probs(int8_path, crops, reference=True)
    )


def kernel_parity(path: Path, crops: npt.NDArray[np.uint8]) -> dict[str, float]:
    """The CNN's optimized session (as the device runs it) against its reference execution on
    this CPU: argmax agreement and max |Δp| on ``crops``."""
    return probability_agreement(cnn_probs(path, crops, reference=True), cnn_probs(path, crops))


def check_kernel_parity(
    path: Path, crops: npt.NDArray[np.uint8], precision: str
) -> dict[str, float]:
    """``kernel_parity``, raising ParityError beyond ``KERNEL_TOLERANCE``."""
    parity = kernel_parity(path, crops)
    if parity["max_abs_diff"] > KERNEL_TOLERANCE:
        raise ParityError(
            f"the {precision} CNN answers differently on this CPU's optimized kernels than in "
            f"onnxruntime's reference execution (max |dp| {parity['max_abs_diff']:.3g} > "
            f"{KERNEL_TOLERANCE}, same class on {parity['argmax_agreement']:.1%} of "
            f"{parity['rows']} crops), so its labels would depend on the processor; "
            "build with --cnn-precision float32"
        )
    return parity


def dequantized(source: Path, out_path: Path) -> None:
    """A float32 graph computing what the QDQ CNN at ``source`` computes, without the rounding.

    Each weight's DequantizeLinear becomes its float tensor; each activation's QuantizeLinear →
    DequantizeLinear pair becomes a Clip to the range that pair can represent (which keeps the
    ReLU the quantizer folded into it). A graph without QuantizeLinear is copied as it is.
    """
    model = onnx.load(str(source))
    graph = model.graph
    if not any(n.op_type == "QuantizeLinear" for n in graph.node):
        out_path.write_bytes(source.read_bytes())
        return
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes, tensors = [], []
    rename: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            tensors.append(_dequantize_constant(node, constants))
        elif node.op_type == "DequantizeLinear":
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
        elif node.op_type == "QuantizeLinear":
            clip, bounds = _clip_for(node, constants)
            nodes.append(clip)
            tensors.extend(bounds)
            rename[node.output[0]] = clip.output[0]
        else:
            nodes.append(node)
    for node in nodes:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    used = {name for node in nodes for name in node.input}
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(t for t in tensors if t.name in used)
    graph.initializer.extend(
        numpy_helper.from_array(v, k) for k, v in constants.items() if k in used
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))


def _dequantize_constant(node: onnx.NodeProto, constants: dict[str, Any]) -> onnx.TensorProto:
    values = constants[node.input[0]].astype(np.float64)
    scale = constants[node.input[1]].astype(np.float64)
    zero = constants[node.input[2]].astype(np.float64) if len(node.input) > 2 else 0.0
    if scale.ndim == 1 and values.ndim > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * values.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), np.reshape(zero, shape)
    return numpy_helper.from_array(((values - zero) * scale).astype(np.float32), node.output[0])


def _clip_for(
    node: onnx.NodeProto, constants: dict[str, Any]
) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    scale = float(constants[node.input[1]])
    zero = constants[node.input[2]]
    limits = np.iinfo(zero.dtype)
    low, high = [(bound - float(zero)) * scale for bound in (limits.min, limits.max)]
    names = [f"{node.output[0]}_low", f"{node.output[0]}_high"]
    bounds = [
        numpy_helper.from_array(np.array(v, np.float32), n)
        for v, n in zip((low, high), names, strict=True)
    ]
    clip = helper.make_node("Clip", [node.input[0], *names], [f"{node.output[0]}_clipped"])
    return clip, bounds
