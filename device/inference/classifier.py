"""ONNX classifiers with their manifest (the only module that imports onnxruntime)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from device.errors import ModelMismatch
from device.features.blendshapes import FaceFeatures
from device.features.schema import FEATURE_NAMES, RGB_FEATURES
from device.inference.manifest import (
    ModelManifest,
    check_manifest,
    manifest_path_for,
    read_manifest,
)

if TYPE_CHECKING:
    from device.inference.bundle import FusedModel

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
BUILTIN_BLENDSHAPES = MODELS_DIR / "fer2013_blendshapes_hgb.onnx"
BUILTIN_FUSED = MODELS_DIR / "fer2013_fused.json"  # CNN + blendshapes (device.inference.bundle)
BUILTIN_MODEL = BUILTIN_BLENDSHAPES
_SCHEMA_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


class OnnxClassifier:
    """One model: takes a full schema vector, returns probabilities in ``labels`` order."""

    def __init__(self, onnx_path: Path) -> None:
        self.manifest: ModelManifest = read_manifest(manifest_path_for(onnx_path))
        check_manifest(self.manifest, onnx_path)
        self.labels: tuple[str, ...] = tuple(self.manifest.labels)
        self.name = self.manifest.name
        self.check = "unchecked"  # the status's model_check: a bundle's self-check, if any
        self._columns = np.array([_SCHEMA_INDEX[n] for n in self.manifest.feature_names])
        self.session = open_session(onnx_path)
        self._input = self.manifest.input_name
        self._output = [self.manifest.probabilities_output]
        self._check_io(onnx_path)
        self.predict_proba(np.zeros(len(FEATURE_NAMES), dtype=np.float32))  # warm-up

    def predict_proba(self, schema_vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities for one row given in FEATURE_NAMES order (missing features = NaN)."""
        row = schema_vector[self._columns].reshape(1, -1)
        (probs,) = self.session.run(self._output, {self._input: row})
        return np.asarray(probs[0], dtype=np.float32)

    def predict_face(self, face: FaceFeatures, image: object = None) -> npt.NDArray[np.float32]:
        """Probabilities for one RGB face (the frame is not needed by a schema model)."""
        row = np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
        row[: len(RGB_FEATURES)] = face.rgb_vector()
        return self.predict_proba(row)

    def predict_rows(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities for many rows of the manifest's own columns (the trainer's batches)."""
        (probs,) = self.session.run(self._output, {self._input: rows.astype(np.float32)})
        return np.asarray(probs, dtype=np.float32)

    def _check_io(self, onnx_path: Path) -> None:
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if self._input not in inputs or self._output[0] not in outputs:
            raise ModelMismatch(
                f"model {onnx_path.name} has inputs {inputs} and outputs {outputs}, but its "
                f"manifest names {self._input!r} and {self._output[0]!r}"
            )
        probe = self.session.run(
            self._output, {self._input: np.zeros((1, len(self._columns)), np.float32)}
        )
        if np.asarray(probe[0]).shape[-1] != len(self.labels):
            raise ModelMismatch(f"model {onnx_path.name} outputs a different number of labels")


def load_onnxruntime() -> Any:
    """Import onnxruntime with its telemetry switched off.

    onnxruntime >= 1.2x on Linux ships 1DS telemetry: at import it writes a device id under
    ~/.cache/Microsoft/DeveloperTools and may upload process events. That breaks the promise
    that nothing leaves the unit, so the opt-out must be set before the first import.
    """
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as ort

    return ort


class BoundRun:
    """One session on fixed-shape float32 buffers bound once (onnxruntime IO binding).

    Write the input into ``inputs``, call ``run()``, read ``outputs``: no array is allocated or
    converted per call, which saves ~0.02 ms per frame with the cold caches after the landmarker.
    """

    def __init__(
        self, session: Any, names: tuple[str, str], shapes: tuple[tuple[int, ...], tuple[int, ...]]
    ) -> None:
        self.inputs = np.zeros(shapes[0], np.float32)
        self.outputs = np.zeros(shapes[1], np.float32)
        self._session = session
        self._binding = session.io_binding()
        self._binding.bind_cpu_input(names[0], self.inputs)
        address = self.outputs.ctypes.data
        self._binding.bind_output(names[1], "cpu", 0, np.float32, list(shapes[1]), address)

    def run(self) -> None:
        self._session.run_with_iobinding(self._binding)


def open_session(onnx_path: Path, *, reference: bool = False) -> Any:
    """An onnxruntime session as the device runs it (every graph optimization on).

    ``reference``: no graph optimization at all, so each node runs as the ONNX standard
    defines it (a quantized graph dequantizes and computes in float). That answer does not
    depend on the CPU's kernels; the trainer and the device's self-check compare with it.
    """
    ort = load_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one row per call: threads only add latency
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if reference:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ModelMismatch(
            f"model file {onnx_path} cannot be loaded by onnxruntime: {exc}"
        ) from exc


class ModelHolder:
    """The model in service; a failed reload keeps the previous model running."""

    def __init__(self, path: Path | None, builtin: str = "fused") -> None:
        self.path = path or builtin_model(builtin)
        self.current: OnnxClassifier | FusedModel = load_rgb_model(self.path)

    def reload(self, path: Path | None = None) -> bool:
        """Load ``path`` (default: the same file again); on any problem log it and keep the old."""
        target = path or self.path
        try:
            candidate = load_rgb_model(target)
        except ModelMismatch as exc:
            logger.error("model not replaced, still running %s: %s", self.current.name, exc)
            return False
        self.current, self.path = candidate, target
        logger.info("model now %s", candidate.name)
        return True


def builtin_model(kind: str = "fused") -> Path:
    """The shipped model: the fused bundle when it is shipped and asked for, else blendshapes."""
    if kind == "fused" and BUILTIN_FUSED.is_file():
        return BUILTIN_FUSED
    return BUILTIN_BLENDSHAPES


def load_rgb_model(path: Path) -> OnnxClassifier | FusedModel:
    """An ``OnnxClassifier`` for a .onnx, a ``FusedModel`` for a bundle manifest (.json)."""
    if path.suffix != ".json":
        return OnnxClassifier(path)
    return checked_bundle(path)


def checked_bundle(path: Path) -> OnnxClassifier | FusedModel:
    """The bundle at ``path`` if this CPU answers its golden inputs as the builder's did; else
    its blendshape model alone (logged), so a kernel that differs never publishes labels."""
    from device.inference.bundle import FusedModel

    bundle = FusedModel(path)
    check = bundle.self_check()
    bundle.check = check.summary()
    if not check.failed:
        return bundle
    worst = max(check.diffs[c] for c in check.failed)
    if "blendshapes" in check.failed:
        raise ModelMismatch(
            f"model bundle {path.name}: this CPU answers its golden inputs differently from the "
            f"machine that built it, its blendshape model too (max |dp| {worst:.3g})"
        )
    logger.error(
        "model bundle %s: this CPU answers its golden inputs differently from the machine that "
        "built it (%s off by up to %.3g), so it runs the blendshape model alone",
        path.name,
        " and ".join(check.failed),
        worst,
    )
    fallback = bundle.blendshapes
    fallback.check = check.summary()
    return fallback
