"""The fused model bundle: blendshape model + face-crop CNN + a stacker, under one manifest.

A bundle is a JSON manifest (``format: emotion-edge-bundle``) next to its ONNX files:
- ``blendshapes``: an ordinary schema model (its own .onnx + .json, checked as usual);
- ``cnn``: the crop CNN, input ``crop`` (N, 1, size, size) float32 0..255 → ``probabilities``;
- ``stacker``: input ``logits`` (N, 2 x labels) = log of both models' probabilities, blendshape
  model first → ``probabilities``.
The manifest names the crop spec (``device.features.crop.CropSpec``), the labels, every file's
sha256, and the metrics of the run that made it. A frame without a face never reaches the bundle
(the pipeline's explicit no-face state); ``predict_crop`` runs the CNN alone on an image that is
already a face crop (``emotion-device classify --pre-cropped``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import ModelMismatch
from device.features.blendshapes import FaceFeatures
from device.features.crop import CROP_POINTS, CROP_VERSION, CropSpec, face_crop
from device.inference import golden
from device.inference.classifier import BoundRun, OnnxClassifier, open_session
from device.inference.manifest import (
    ModelManifest,
    Provenance,
    manifest_from,
    manifest_path_for,
    read_manifest,
    read_manifest_json,
    sha256_of,
)

BUNDLE_FORMAT = "emotion-edge-bundle"
BUNDLE_VERSION = 1
COMPONENTS = ("blendshapes", "cnn", "stacker")
PROB_FLOOR = 1e-6
CNN_IO = ("crop", "probabilities")  # the CNN's input and output names
STACKER_IO = ("logits", "probabilities")
Probs = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BundleManifest(Provenance):
    name: str
    labels: list[str]
    crop: dict[str, Any]
    files: dict[str, dict[str, str]]  # component → {"file": name, "sha256": hex}
    golden: dict[str, Any] = field(default_factory=dict)  # device.inference.golden
    format: str = BUNDLE_FORMAT
    manifest_version: int = BUNDLE_VERSION


@dataclass
class StageTimes:
    """Seconds of the last ``predict_face``: crop, CNN, blendshape model, stacker."""

    crop_s: float = 0.0
    cnn_s: float = 0.0
    blendshapes_s: float = 0.0
    fusion_s: float = 0.0


def read_bundle(path: Path) -> BundleManifest:
    """The bundle manifest at ``path``, read once; any problem is one ModelMismatch sentence."""
    raw = read_manifest_json(
        path,
        BUNDLE_FORMAT,
        missing=f"model bundle {path} does not exist",
        other_format=f"{path} is not a model bundle; give a bundle .json or a model .onnx",
    )
    manifest = manifest_from(BundleManifest, raw, f"model bundle {path}")
    missing = [c for c in COMPONENTS if c not in manifest.files]
    if missing:
        raise ModelMismatch(f"model bundle {path} lacks its {', '.join(missing)}")
    version = manifest.crop.get("version")
    if version != CROP_VERSION:
        raise ModelMismatch(
            f"model bundle {path} was trained on crop version {version}, this device makes "
            f"version {CROP_VERSION}; rebuild it with emotion-trainer build-fused"
        )
    return manifest


def component_path(manifest_path: Path, manifest: BundleManifest, component: str) -> Path:
    """The checked path of one component file (sha256 must match the manifest)."""
    entry = manifest.files[component]
    path = manifest_path.parent / entry["file"]
    if not path.is_file():
        raise ModelMismatch(f"model bundle {manifest_path.name} needs {path}, which is missing")
    if sha256_of(path) != entry["sha256"]:
        raise ModelMismatch(f"{path} does not match the sha256 in {manifest_path.name}")
    return path


def component_io(blendshapes: ModelManifest) -> dict[str, tuple[str, str]]:
    """Each component's (input, output) names; the blendshape model's are in its manifest."""
    return {
        "blendshapes": (blendshapes.input_name, blendshapes.probabilities_output),
        "cnn": CNN_IO,
        "stacker": STACKER_IO,
    }


def golden_answers(files: dict[str, Path], crop_size: int, n_labels: int) -> dict[str, Any]:
    """The manifest's ``golden`` entry for the component files at ``files``: their answers in
    onnxruntime's reference execution on the golden inputs (the trainer writes it)."""
    blend = read_manifest(manifest_path_for(files["blendshapes"]))
    seed, rows = golden.GOLDEN_SEED, golden.GOLDEN_ROWS
    inputs = golden.golden_inputs(seed, rows, crop_size, len(blend.feature_names), n_labels)
    sessions = {c: open_session(files[c], reference=True) for c in COMPONENTS}
    outputs = golden.reference_outputs(sessions, component_io(blend), inputs)
    return golden.golden_record(seed, rows, outputs)


@dataclass(frozen=True)
class SelfCheck:
    """The outcome of ``FusedModel.self_check``: max |Δp| per component, those beyond tolerance."""

    state: str
    diffs: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Short words for the status message."""
        if self.failed:
            return "failed: " + ",".join(self.failed) + "; blendshapes alone"
        return "ok" if self.state == "checked" else "unchecked"


class FusedModel:
    """The bundle as one RGB model: a face and its frame in, probabilities in ``labels`` order."""

    def __init__(self, manifest_path: Path) -> None:
        manifest = read_bundle(manifest_path)
        self.manifest = manifest
        self.labels: tuple[str, ...] = tuple(manifest.labels)
        self.crop_spec = CropSpec.from_dict(manifest.crop)
        self.name = f"{manifest.name}@{sha256_of(manifest_path)[:8]}"
        paths = {c: component_path(manifest_path, manifest, c) for c in COMPONENTS}
        self.blendshapes = OnnxClassifier(paths["blendshapes"])
        if self.blendshapes.labels != self.labels:
            raise ModelMismatch(f"{paths['blendshapes'].name} has other labels than the bundle")
        self._cnn = open_session(paths["cnn"])
        self._stacker = open_session(paths["stacker"])
        self.times = StageTimes()
        self.check = "unchecked"  # set by device.inference.classifier.checked_bundle
        self._check_shapes(manifest_path)
        size, n = self.crop_spec.size, len(self.labels)
        self._cnn_one = BoundRun(self._cnn, CNN_IO, ((1, 1, size, size), (1, n)))
        self._stacker_one = BoundRun(self._stacker, STACKER_IO, ((1, 2 * n), (1, n)))

    def golden_inputs(self, seed: int, rows: int) -> golden.GoldenInputs:
        columns = len(self.blendshapes.manifest.feature_names)
        return golden.golden_inputs(seed, rows, self.crop_spec.size, columns, len(self.labels))

    def self_check(self) -> SelfCheck:
        """This CPU's answers on the manifest's golden inputs against the builder's."""
        record = self.manifest.golden
        if not record:
            return SelfCheck("no golden inputs in the bundle")
        inputs = self.golden_inputs(int(record["seed"]), int(record["rows"]))
        sessions = {
            "blendshapes": self.blendshapes.session,
            "cnn": self._cnn,
            "stacker": self._stacker,
        }
        io = component_io(self.blendshapes.manifest)
        outputs = golden.reference_outputs(sessions, io, inputs)
        diffs = golden.differences(record, outputs)
        return SelfCheck("checked", diffs, golden.failed(record, diffs))

    def predict_face(self, face: FaceFeatures, image: npt.NDArray[np.uint8]) -> Probs:
        t0 = time.perf_counter()
        crop = face_crop(image, face.points_xy(CROP_POINTS), self.crop_spec)
        t1 = time.perf_counter()
        cnn = self.predict_crop(crop)
        t2 = time.perf_counter()
        blend = self.blendshapes.predict_face(face, image)
        t3 = time.perf_counter()
        probs = self.stack(blend, cnn)
        t4 = time.perf_counter()
        self.times = StageTimes(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
        return probs

    def predict_crop(self, crop: npt.NDArray[np.uint8]) -> Probs:
        """The CNN alone on one aligned (or already framed) grey crop of the spec's size."""
        np.copyto(self._cnn_one.inputs[0, 0], crop)
        self._cnn_one.run()
        probs: Probs = self._cnn_one.outputs[0].copy()
        return probs

    def stack(self, blend: Probs, cnn: Probs) -> Probs:
        """The stacker on both models' probabilities (logs, blendshape model first)."""
        logits = self._stacker_one.inputs[0]
        np.log(np.maximum(np.concatenate([blend, cnn]), PROB_FLOOR), out=logits)
        self._stacker_one.run()
        probs: Probs = self._stacker_one.outputs[0].copy()
        return probs

    def _check_shapes(self, manifest_path: Path) -> None:
        """Both graphs take what the manifest says and answer over its labels (before binding)."""
        n, size = len(self.labels), self.crop_spec.size
        crop = np.zeros((1, 1, size, size), np.float32)
        logits = np.full((1, 2 * n), np.log(1 / n), np.float32)
        try:
            (cnn,) = self._cnn.run(["probabilities"], {"crop": crop})
            (stacked,) = self._stacker.run(["probabilities"], {"logits": logits})
        except Exception as exc:  # onnxruntime's own error types: wrong names or shapes
            raise ModelMismatch(
                f"model bundle {manifest_path.name}: its CNN does not take a {size}x{size} "
                f"crop or its stacker {2 * n} logits ({type(exc).__name__})"
            ) from exc
        if cnn.shape != (1, n) or stacked.shape != (1, n):
            raise ModelMismatch(f"model bundle {manifest_path.name}: a component has other labels")
