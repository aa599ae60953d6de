"""The parity probe: the device's inference on fixed inputs, run on the host and in the emulated Pi.

    python tests/emulated/probe.py INPUTS.npz OUTPUTS.npz [--landmarker]

Plain script (no pytest, no trainer imports): it runs inside the emulated userland through
``deploy/pi-emulated.sh ... -- python tests/emulated/probe.py ...`` and with the host's venv python,
and ``test_pi_parity.py`` compares the two ``OUTPUTS.npz``. Inputs (all made on the host):

- ``crops`` (N, 48, 48) uint8: face crops for the bundle's CNN (``FusedModel.predict_crop``);
- ``rows`` (M, len(FEATURE_NAMES)) float32: schema vectors for the blendshape model
  (``OnnxClassifier.predict_proba``, the device's own call; thermal features NaN);
- ``stack_blend``, ``stack_cnn`` (K, 7) float32: fixed inputs for the stacker
  (``FusedModel.stack``);
- ``frames`` (F, H, W, 3) uint8 RGB and ``crop_points`` (F, 4, 2) float32: video frames, and eye
  corners (normalised) for ``face_crop`` on each frame;
- with ``--landmarker``, the frames also go through the device's ``BlendshapeExtractor`` (IMAGE
  mode): the 52 blendshape scores per frame (NaN where no face was found), and the bundle's
  probabilities on that face (``FusedModel.predict_face``: crop, CNN, blendshape model, stacker).

Outputs: ``cnn``, ``blend``, ``stacked``, ``fused`` (the stacker on this machine's own blendshape
and CNN probabilities, pairs i = 0..min(N, M)), ``crops_out``, ``blendshapes``, ``frame_probs``,
and ``meta`` (JSON:
model name, versions, machine, HWCAP, seconds per stage).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "device" / "models" / "fer2013_fused.json"
AT_HWCAP, AT_HWCAP2 = 16, 26


def hwcap() -> dict[str, int]:
    """The kernel's (here: qemu's) CPU feature bits, as the Pi's libraries read them."""
    try:
        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        return {"hwcap": int(libc.getauxval(AT_HWCAP)), "hwcap2": int(libc.getauxval(AT_HWCAP2))}
    except (OSError, AttributeError):
        return {}


def versions() -> dict[str, str]:
    import numpy

    found = {"python": platform.python_version(), "numpy": numpy.__version__}
    for name in ("onnxruntime", "cv2", "mediapipe"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = "absent"
    return found


def run_models(
    model: Any, inputs: dict[str, np.ndarray], times: dict[str, float]
) -> dict[str, np.ndarray]:
    t0 = time.perf_counter()
    cnn = np.stack([model.predict_crop(crop) for crop in inputs["crops"]])
    times["cnn_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    blend = np.stack([model.blendshapes.predict_proba(row) for row in inputs["rows"]])
    times["blendshapes_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pairs = zip(inputs["stack_blend"], inputs["stack_cnn"], strict=True)
    stacked = np.stack([model.stack(b, c) for b, c in pairs])
    n = min(len(cnn), len(blend))
    fused = np.stack([model.stack(blend[i], cnn[i]) for i in range(n)])
    times["stacker_s"] = time.perf_counter() - t0
    return {
        "cnn": cnn,
        "blend": blend,
        "stacked": stacked,
        "fused": fused,
        "model_name": np.array(model.name),
    }


def run_crops(inputs: dict[str, np.ndarray], times: dict[str, float]) -> np.ndarray:
    from device.features.crop import CROP_POINTS, CropSpec, face_crop
    from device.inference.bundle import read_bundle

    spec = CropSpec.from_dict(read_bundle(BUNDLE).crop)
    assert len(CROP_POINTS) == inputs["crop_points"].shape[1]
    t0 = time.perf_counter()
    crops = [
        face_crop(f, p, spec) for f, p in zip(inputs["frames"], inputs["crop_points"], strict=True)
    ]
    times["crop_s"] = time.perf_counter() - t0
    return np.stack(crops).astype(np.uint8)


def run_landmarker(
    model: Any, frames: np.ndarray, times: dict[str, float]
) -> dict[str, np.ndarray]:
    """Blendshapes per frame, and the bundle's answer on each face (the device's whole path)."""
    from device.assets import AssetResolver
    from device.features.blendshapes import BlendshapeExtractor, FaceFeatures

    path = AssetResolver(allow_download=False).resolve("face_landmarker")
    t0 = time.perf_counter()
    extractor = BlendshapeExtractor(path, "image")
    times["landmarker_load_s"] = time.perf_counter() - t0
    scores = np.full((len(frames), 52), np.nan, np.float32)
    probs = np.full((len(frames), len(model.labels)), np.nan, np.float32)
    t0 = time.perf_counter()
    try:
        for i, frame in enumerate(frames):
            face = extractor.extract(frame)
            if isinstance(face, FaceFeatures):
                scores[i] = face.blendshapes
                probs[i] = model.predict_face(face, frame)
    finally:
        extractor.close()
    times["landmarker_s"] = time.perf_counter() - t0
    return {"blendshapes": scores, "frame_probs": probs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", type=Path)
    parser.add_argument("outputs", type=Path)
    parser.add_argument(
        "--landmarker", action="store_true", help="also run MediaPipe on the frames"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    with np.load(args.inputs) as data:
        inputs = {key: data[key] for key in data.files}
    times: dict[str, float] = {}
    from device.inference.bundle import FusedModel

    t0 = time.perf_counter()
    model = FusedModel(BUNDLE)
    times["load_s"] = time.perf_counter() - t0
    check = model.self_check()  # the bundle's golden answers, as the device checks at load
    out = run_models(model, inputs, times)
    out["crops_out"] = run_crops(inputs, times)
    if args.landmarker:
        out.update(run_landmarker(model, inputs["frames"], times))
    times["total_s"] = time.perf_counter() - started
    meta = {
        "machine": os.uname().machine,
        "cpu_features": next(
            (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("Features")),
            "",
        ),
        **hwcap(),
        "versions": versions(),
        "times": times,
        "executable": sys.executable,
        "self_check": {"failed": check.failed, "diffs": check.diffs},
    }
    out["meta"] = np.array(json.dumps(meta))
    np.savez(args.outputs, **out)
    return 0


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


if __name__ == "__main__":
    sys.exit(main())
