"""Golden inputs: a bundle's own answers on a few synthetic inputs, checked by the device at load.

An onnxruntime kernel can answer differently on another processor (issue 15: the int8 CNN's
AVX2 kernel saturated where VNNI did not). So the trainer runs each component of a bundle on
inputs made from a seed, in onnxruntime's reference execution, and writes the answers into the
manifest (``golden``); the device makes the same inputs, runs its own sessions and compares. The
inputs are noise and smooth patterns, never face images; the manifest stores only the seed that
makes them and the probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

GOLDEN_SEED = 20261208
GOLDEN_ROWS = 8
# The largest |Δp| allowed between this CPU's answers and the reference answers in the manifest.
TOLERANCE = 1e-3
_COARSE = 6  # the smooth crops are upscaled from 6x6 random pixels


@dataclass(frozen=True)
class GoldenInputs:
    """What each component of a bundle is fed: crops, blendshape-model rows, stacker logits."""

    crops: npt.NDArray[np.uint8]  # (rows, size, size)
    features: npt.NDArray[np.float32]  # (rows, the blendshape model's columns)
    logits: npt.NDArray[np.float32]  # (rows, 2 x labels)

    def of(self, component: str) -> npt.NDArray[Any]:
        arrays: dict[str, npt.NDArray[Any]] = {
            "cnn": self.crops,
            "blendshapes": self.features,
            "stacker": self.logits,
        }
        return arrays[component]


def golden_inputs(
    seed: int, rows: int, crop_size: int, n_features: int, n_labels: int
) -> GoldenInputs:
    """The same inputs on every machine for the same arguments (NumPy's PCG64 stream)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (rows - rows // 2, crop_size, crop_size), dtype=np.uint8)
    coarse = rng.integers(0, 256, (rows // 2, _COARSE, _COARSE), dtype=np.uint8)
    grid = np.arange(crop_size) * _COARSE // crop_size
    smooth = coarse[:, grid][:, :, grid]
    features = rng.uniform(0.0, 1.0, (rows, n_features)).astype(np.float32)
    blend = rng.dirichlet(np.ones(n_labels), rows)
    cnn = rng.dirichlet(np.ones(n_labels), rows)
    logits = np.log(np.concatenate([blend, cnn], axis=1)).astype(np.float32)
    return GoldenInputs(np.concatenate([noise, smooth]), features, logits)


def golden_record(
    seed: int, rows: int, outputs: dict[str, npt.NDArray[np.float32]]
) -> dict[str, Any]:
    """The manifest's ``golden`` entry: how to remake the inputs, and the reference answers."""
    return {
        "seed": seed,
        "rows": rows,
        "tolerance": TOLERANCE,
        "outputs": {c: np.asarray(p, np.float64).round(7).tolist() for c, p in outputs.items()},
    }


def differences(
    golden: dict[str, Any], outputs: dict[str, npt.NDArray[np.float32]]
) -> dict[str, float]:
    """Max |Δp| per component between ``outputs`` (this CPU) and the manifest's answers; a
    component whose best class differs on any row counts as 1.0."""
    result = {}
    for component, answers in outputs.items():
        expected = np.asarray(golden["outputs"][component], np.float32)
        if expected.shape != answers.shape:
            result[component] = 1.0
            continue
        same_class = bool((expected.argmax(1) == answers.argmax(1)).all())
        result[component] = float(np.abs(expected - answers).max()) if same_class else 1.0
    return result


def failed(golden: dict[str, Any], diffs: dict[str, float]) -> list[str]:
    """The components that answer beyond the manifest's tolerance, in ``diffs``' order."""
    tolerance = float(golden.get("tolerance", TOLERANCE))
    return [c for c, diff in diffs.items() if diff > tolerance]


def reference_outputs(
    sessions: dict[str, Any], io_names: dict[str, tuple[str, str]], inputs: GoldenInputs
) -> dict[str, npt.NDArray[np.float32]]:
    """Each component's answers, one row per call as the device runs them; ``sessions`` are
    onnxruntime sessions (the trainer passes reference ones), ``io_names`` (input, output)."""
    outputs = {}
    for component, session in sessions.items():
        name_in, name_out = io_names[component]
        rows = inputs.of(component).astype(np.float32)
        if component == "cnn":
            rows = rows[:, None]
        answers = [session.run([name_out], {name_in: row[None]})[0][0] for row in rows]
        outputs[component] = np.asarray(answers, np.float32)
    return outputs
