"""Accuracy against on-device cost: candidate models on FER2013 features, cold and warm caches.

On the device the classifier runs right after the MediaPipe landmarker, which evicts the CPU
caches. This benchmark fits each candidate on Training, scores it on PrivateTest (rows with a
face), exports it to ONNX, opens it exactly as the device does, and times one-row calls with warm
caches and after sweeping a buffer larger than the last-level cache (``--evict-mb``), which is
what the landmarker does to the classifier.

    emotion-trainer extract --out runs/fer-features.npz
    python -m trainer.bench_latency runs/fer-features.npz \\
        hist_gradient_boosting:max_iter=150 hist_gradient_boosting:max_iter=300
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import accuracy_score, f1_score

from trainer.errors import DatasetError, UsageError
from trainer.export import to_onnx
from trainer.model_config import parse_spec
from trainer.train import fit_model

CALLS = 300


def load_features(path: Path) -> dict[str, npt.NDArray[Any]]:
    """The npz written by ``emotion-trainer extract --out``."""
    if not path.is_file():
        raise DatasetError(
            f"features file {path} does not exist: run emotion-trainer extract --out"
        )
    with np.load(path) as data:
        missing = {"features", "labels", "usage", "face_found"} - set(data.files)
        if missing:
            raise DatasetError(f"{path} lacks {sorted(missing)}: write it with extract --out")
        return {key: data[key] for key in data.files}


def bench_spec(spec: str, data: dict[str, npt.NDArray[Any]], evict_mb: int) -> dict[str, Any]:
    choice = parse_spec(spec)
    faces = data["face_found"].astype(bool)
    train = faces & (data["usage"] == "Training")
    test = faces & (data["usage"] == "PrivateTest")
    x, y = data["features"], data["labels"]
    model = fit_model(choice.name, x, y, train, **choice.params)
    predicted = model.predict(x[test])
    onnx_bytes = to_onnx(model, x.shape[1])
    timings = time_onnx(onnx_bytes, x[test][:CALLS].astype(np.float32), evict_mb)
    return {
        "spec": spec,
        "accuracy": round(float(accuracy_score(y[test], predicted)), 4),
        "macro_f1": round(float(f1_score(y[test], predicted, average="macro")), 4),
        "onnx_bytes": len(onnx_bytes),
        **timings,
    }


def time_onnx(onnx_bytes: bytes, rows: npt.NDArray[np.float32], evict_mb: int) -> dict[str, float]:
    """Median ms per one-row call, warm and after evicting the caches."""
    from device.inference.classifier import open_session

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.onnx"
        path.write_bytes(onnx_bytes)
        session = open_session(path)
    feed, outputs = session.get_inputs()[0].name, [session.get_outputs()[-1].name]
    buffer = np.ones(evict_mb * 131_072)  # float64: 8 bytes each
    result = {}
    for label, evict in (("warm_ms", False), ("cold_ms", True)):
        times = []
        for row in rows:
            if evict:
                buffer.sum()
            t0 = time.perf_counter()
            session.run(outputs, {feed: row.reshape(1, -1)})
            times.append(time.perf_counter() - t0)
        result[label] = round(statistics.median(times) * 1000.0, 4)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.bench_latency", description=__doc__)
    parser.add_argument("features", type=Path, help="npz from emotion-trainer extract --out")
    parser.add_argument("specs", nargs="+", help="model:key=value,... (see trainer/train.py)")
    parser.add_argument("--evict-mb", type=int, default=64, help="buffer swept between calls")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    try:
        data = load_features(args.features)
        results = [bench_spec(spec, data, args.evict_mb) for spec in args.specs]
    except (DatasetError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for result in results:
        print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
