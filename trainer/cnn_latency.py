"""CNNs against the device's time budget: parameters, ONNX size and onnxruntime latency.

    python -m trainer.cnn_latency "32,1 48,1 96,2 160,1" "32,1 64,2 96,2 128,1" [--int8]
    python -m trainer.cnn_latency --onnx device/models/fer2013_crop_cnn.onnx [B.onnx] [--batch 2]

Each shape argument is one network, blocks as ``width,convs``, with random weights (latency does
not depend on them); ``--int8`` quantizes it as ``build-fused`` does. ``--onnx`` times exported
files instead, all of them for each frame (an ensemble), ``--batch 2`` feeding two crops per call
(a crop and its mirror). One onnxruntime thread, as on the device. Two medians: *warm* (calls
back to back) and *cold* (a 32 MB write between calls evicts the caches, as the landmarker does
on the device between frames).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.inference.bundle import CNN_IO
from device.inference.classifier import open_session
from trainer.argtypes import channels as parse_channels
from trainer.argtypes import positive_int

INPUT_NAME, OUTPUT_NAME = CNN_IO

CALLS = 400
WARM_UP = 50
COLD_CALLS = 200
FLUSH_FLOATS = 8_000_000  # 32 MB, more than the caches of the machines we measure on


def time_files(paths: Sequence[Path], batch: int = 1) -> dict[str, float]:
    """Median ms per frame of running every file on ``batch`` crops, warm and cache-cold."""
    sessions = [open_session(path) for path in paths]
    crops = np.random.default_rng(0).uniform(0, 255, (batch, 1, 48, 48)).astype(np.float32)

    def frame() -> None:
        for session in sessions:
            session.run([OUTPUT_NAME], {INPUT_NAME: crops})

    return warm_and_cold_ms(frame)


def warm_and_cold_ms(frame: Callable[[], Any]) -> dict[str, float]:
    """Median ms of ``frame()`` back to back (warm) and after a 32 MB write each time (cold)."""
    warm = [_timed(frame) for _ in range(WARM_UP + CALLS)][WARM_UP:]
    flush = np.ones(FLUSH_FLOATS, np.float32)
    cold = []
    for _ in range(COLD_CALLS):
        flush += 1.0
        cold.append(_timed(frame))
    return {
        "warm_ms": round(statistics.median(warm) * 1000, 3),
        "cold_ms": round(statistics.median(cold) * 1000, 3),
    }


def measure(
    channels: tuple[tuple[int, int], ...], folder: Path, int8: bool = False
) -> dict[str, Any]:
    """A random network of this shape, exported (and quantized with ``int8``), then timed."""
    from trainer.cnn import FaceCnn, export_onnx, parameter_count  # torch: shapes only

    net = FaceCnn(7, channels=channels)
    path = folder / "cnn.onnx"
    export_onnx(net, path)
    if int8:
        from trainer.quantize import quantize_cnn

        calibration = np.random.default_rng(0).integers(0, 256, (100, 48, 48), dtype=np.uint8)
        quantize_cnn(path, folder / "cnn_int8.onnx", calibration)
        path = folder / "cnn_int8.onnx"
    return {
        "parameters": parameter_count(net),
        "onnx_bytes": path.stat().st_size,
        **time_files([path]),
    }


def _timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _line(name: str, facts: dict[str, Any]) -> str:
    parameters = f"{facts['parameters']:>9,} parameters" if "parameters" in facts else " " * 20
    return (
        f"{name:<28} {parameters}  {facts['onnx_bytes']:>10,} B  "
        f"warm {facts['warm_ms']:.3f} ms  cold {facts['cold_ms']:.3f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.cnn_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shapes", nargs="*", type=parse_channels, help="e.g. '32,1 48,1 96,2'")
    parser.add_argument("--int8", action="store_true", help="quantize each shape first")
    parser.add_argument("--onnx", type=Path, nargs="+", help="exported CNN files, run together")
    parser.add_argument("--batch", type=positive_int, default=1, help="crops per call (--onnx)")
    args = parser.parse_args(argv)
    if args.onnx:
        missing = [str(p) for p in args.onnx if not p.is_file()]
        if missing:
            parser.error(f"no such ONNX file: {', '.join(missing)}")
        facts = {
            "onnx_bytes": sum(p.stat().st_size for p in args.onnx),
            **time_files(args.onnx, args.batch),
        }
        print(_line(" + ".join(str(p) for p in args.onnx) + f" (batch {args.batch})", facts))
        return 0
    from trainer.cnn import CHANNELS

    for channels in args.shapes or [CHANNELS]:
        with tempfile.TemporaryDirectory() as folder:
            facts = measure(channels, Path(folder), args.int8)
        print(_line(" ".join(f"{w},{c}" for w, c in channels), facts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
