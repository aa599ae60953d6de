"""The forms the face-crop CNN can ship in (``build-fused --cnn-precision``), without importing
onnx: the command line lists them. ``trainer.quantize`` makes them; docs/fused.md measures them.
"""

from __future__ import annotations

# name: how the CNN is stored and computed; the first is the default of build-fused
PRECISIONS: dict[str, str] = {
    "float32": "float32 weights and arithmetic (the export as it is)",
    "int8-weights": "int8 weights per channel, dequantized before each layer: float arithmetic",
    "int8-7bit": "uint8 activations x int8 weights with reduce_range (7-bit weights)",
    "s8s8": "int8 activations x int8 weights",
    "int8": "uint8 activations x int8 weights (AVX2 without VNNI saturates: CPU-dependent)",
}
DEFAULT_PRECISION = "float32"
