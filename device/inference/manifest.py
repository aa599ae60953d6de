"""The model manifest: the JSON sidecar next to every ``.onnx`` (pure, no onnxruntime).

The trainer writes it, the device reads it and refuses a model that does not fit its schema.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from device.errors import ModelMismatch
from device.features.schema import FEATURE_SCHEMA_VERSION, unknown_features

MANIFEST_FORMAT = "emotion-edge-model"
MANIFEST_VERSION = 1
M = TypeVar("M", bound="Provenance")


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """What every manifest records about the run that made its model (all optional)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    software: dict[str, Any] = field(default_factory=dict)
    created: str = ""


@dataclass(frozen=True)
class ModelManifest(Provenance):
    onnx_file: str  # file name, relative to the manifest's folder
    sha256: str
    feature_schema_version: int
    feature_names: list[str]
    labels: list[str]
    input_name: str = "features"
    probabilities_output: str = "probabilities"
    model_kind: str = ""
    feature_extraction: dict[str, Any] = field(default_factory=dict)
    format: str = MANIFEST_FORMAT
    manifest_version: int = MANIFEST_VERSION

    @property
    def name(self) -> str:
        """A short model id for label events: file stem plus the first 8 hex of its hash."""
        return f"{Path(self.onnx_file).stem}@{self.sha256[:8]}"


def manifest_path_for(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(manifest: Provenance, path: Path) -> None:
    """Any manifest (model or bundle) as sorted, indented JSON."""
    path.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n")


def read_manifest(path: Path) -> ModelManifest:
    """Parse a model manifest file; any problem becomes one ModelMismatch sentence."""
    raw = read_manifest_json(
        path,
        MANIFEST_FORMAT,
        missing=f"model manifest {path} is missing; it must sit next to the .onnx",
        other_format=f"{path} is not an emotion-edge model manifest",
    )
    return manifest_from(ModelManifest, raw, f"model manifest {path}")


def read_manifest_json(
    path: Path, expected_format: str, *, missing: str, other_format: str
) -> dict[str, Any]:
    """The JSON object in ``path`` whose ``format`` is ``expected_format``, read once."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelMismatch(missing) from exc
    except (OSError, ValueError) as exc:
        raise ModelMismatch(f"{path} is not readable JSON ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != expected_format:
        raise ModelMismatch(other_format)
    return raw


def manifest_from(kind: type[M], raw: dict[str, Any], what: str) -> M:
    try:
        return kind(**raw)
    except TypeError as exc:
        raise ModelMismatch(f"{what} has wrong or missing keys ({exc})") from exc


def check_manifest(manifest: ModelManifest, onnx_path: Path) -> None:
    """Refuse a model whose file, hash or feature schema does not match this device."""
    if manifest.feature_schema_version != FEATURE_SCHEMA_VERSION:
        raise ModelMismatch(
            f"model {onnx_path.name} was built for feature schema "
            f"v{manifest.feature_schema_version}, this device speaks v{FEATURE_SCHEMA_VERSION}; "
            "retrain it with this version's emotion-trainer"
        )
    unknown = unknown_features(manifest.feature_names)
    if unknown:
        raise ModelMismatch(
            f"model {onnx_path.name} asks for features this device does not have: {unknown[:3]}"
        )
    if not manifest.labels:
        raise ModelMismatch(f"model manifest for {onnx_path.name} lists no labels")
    if not onnx_path.is_file():
        raise ModelMismatch(f"model file {onnx_path} is missing")
    actual = sha256_of(onnx_path)
    if actual != manifest.sha256:
        raise ModelMismatch(
            f"model file {onnx_path} is corrupt or was replaced: sha256 {actual[:12]}… "
            f"but its manifest expects {manifest.sha256[:12]}…"
        )
