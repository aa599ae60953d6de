"""CNN shapes against the device's time budget: parameters, ONNX size and onnxruntime latency.

    python -m trainer.cnn_latency "32,1 48,1 96,2 160,1" "32,1 64,2 96,2 128,1"

Each argument is one network: blocks as ``width,convs``. The weights are random (latency does not
depend on them); one onnxruntime thread, one crop per call, as on the device.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from device.inference.classifier import open_session
from trainer.argtypes import channels as parse_channels
from trainer.cnn import CHANNELS, FaceCnn, export_onnx, parameter_count

CALLS = 400
WARM_UP = 50


def measure(channels: tuple[tuple[int, int], ...], folder: Path) -> dict[str, float]:
    net = FaceCnn(7, channels=channels)
    path = folder / "cnn.onnx"
    export_onnx(net, path)
    session = open_session(path)
    crop = np.random.default_rng(0).uniform(0, 255, (1, 1, 48, 48)).astype(np.float32)
    times = []
    for i in range(WARM_UP + CALLS):
        started = time.perf_counter()
        session.run(["probabilities"], {"crop": crop})
        if i >= WARM_UP:
            times.append(time.perf_counter() - started)
    return {
        "parameters": parameter_count(net),
        "onnx_bytes": path.stat().st_size,
        "median_ms": round(statistics.median(times) * 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.cnn_latency", description=__doc__)
    parser.add_argument("shapes", nargs="*", type=parse_channels, help="e.g. '32,1 48,1 96,2'")
    args = parser.parse_args(argv)
    for channels in args.shapes or [CHANNELS]:
        with tempfile.TemporaryDirectory() as folder:
            facts = measure(channels, Path(folder))
        shape = " ".join(f"{w},{c}" for w, c in channels)
        print(
            f"{shape:<28} {facts['parameters']:>9,} parameters  {facts['onnx_bytes']:>10,} B  "
            f"{facts['median_ms']:.3f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
