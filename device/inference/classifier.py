"""ONNX classifiers with their manifest (the only module that imports onnxruntime)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import ModelMismatch
from device.features.schema import FEATURE_NAMES
from device.inference.manifest import (
    ModelManifest,
    check_manifest,
    manifest_path_for,
    read_manifest,
)

logger = logging.getLogger(__name__)

BUILTIN_MODEL = Path(__file__).resolve().parent.parent / "models" / "fer2013_blendshapes_hgb.onnx"
_SCHEMA_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


class OnnxClassifier:
    """One model: takes a full schema vector, returns probabilities in ``labels`` order."""

    def __init__(self, onnx_path: Path) -> None:
        self.manifest: ModelManifest = read_manifest(manifest_path_for(onnx_path))
        check_manifest(self.manifest, onnx_path)
        self.labels: tuple[str, ...] = tuple(self.manifest.labels)
        self.name = self.manifest.name
        self._columns = np.array([_SCHEMA_INDEX[n] for n in self.manifest.feature_names])
        self._session = open_session(onnx_path)
        self._input = self.manifest.input_name
        self._output = [self.manifest.probabilities_output]
        self._check_io(onnx_path)
        self.predict_proba(np.zeros(len(FEATURE_NAMES), dtype=np.float32))  # warm-up

    def predict_proba(self, schema_vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities for one row given in FEATURE_NAMES order (missing features = NaN)."""
        row = schema_vector[self._columns].reshape(1, -1)
        (probs,) = self._session.run(self._output, {self._input: row})
        return np.asarray(probs[0], dtype=np.float32)

    def _check_io(self, onnx_path: Path) -> None:
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if self._input not in inputs or self._output[0] not in outputs:
            raise ModelMismatch(
                f"model {onnx_path.name} has inputs {inputs} and outputs {outputs}, but its "
                f"manifest names {self._input!r} and {self._output[0]!r}"
            )
        probe = self._session.run(
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


def open_session(onnx_path: Path) -> Any:
    ort = load_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one row per call: threads only add latency
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ModelMismatch(
            f"model file {onnx_path} cannot be loaded by onnxruntime: {exc}"
        ) from exc


class ModelHolder:
    """The model in service; a failed reload keeps the previous model running."""

    def __init__(self, path: Path | None) -> None:
        self.path = path or BUILTIN_MODEL
        self.current = OnnxClassifier(self.path)

    def reload(self, path: Path | None = None) -> bool:
        """Load ``path`` (default: the same file again); on any problem log it and keep the old."""
        target = path or self.path
        try:
            candidate = OnnxClassifier(target)
        except ModelMismatch as exc:
            logger.error("model not replaced, still running %s: %s", self.current.name, exc)
            return False
        self.current, self.path = candidate, target
        logger.info("model now %s", candidate.name)
        return True
