"""ONNX export through skl2onnx, an onnxruntime parity check, and the model manifest.

The exported graph takes float32 ``features`` [None, n_features] and gives ``label`` (class
index) and ``probabilities`` [None, n_classes] as a plain tensor (no ZipMap), columns in the
order of the manifest's ``labels``.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.pipeline import Pipeline

from device.inference.manifest import ModelManifest, manifest_path_for, sha256_of, write_manifest
from trainer.errors import ModelBudgetError, ParityError

logger = logging.getLogger(__name__)

INPUT_NAME = "features"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}  # skl2onnx lowers each domain to what the graph needs
MIN_ARGMAX_AGREEMENT = 0.999
MAX_ABS_DIFF = 1e-4
VERSIONED_PACKAGES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "mediapipe")


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    manifest_path: Path
    size_bytes: int
    parity: dict[str, Any]
    manifest: ModelManifest


def to_onnx(pipeline: Pipeline, n_features: int, input_name: str = INPUT_NAME) -> bytes:
    """The serialised ONNX graph of a fitted classifier pipeline (opsets as low as possible)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

    n_classes = len(pipeline.classes_)
    model = convert_sklearn(
        pipeline,
        initial_types=[(input_name, FloatTensorType([None, n_features]))],
        final_types=[
            (LABEL_OUTPUT, Int64TensorType([None])),
            (PROBABILITIES_OUTPUT, FloatTensorType([None, n_classes])),
        ],
        options={"zipmap": False},
        target_opset=TARGET_OPSET,
    )
    _make_reproducible(model)
    return bytes(model.SerializeToString())


def _make_reproducible(model: Any) -> None:
    """Same fitted model, same bytes: skl2onnx names the graph with a random uuid and
    lists opsets in set order."""
    model.producer_name = "emotion-edge trainer (skl2onnx)"
    model.graph.name = "emotion_edge_classifier"
    opsets = sorted((entry.domain, entry.version) for entry in model.opset_import)
    del model.opset_import[:]
    for domain, version in opsets:
        model.opset_import.add(domain=domain, version=version)


def onnx_probabilities(onnx_bytes: bytes, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    from device.inference.classifier import load_onnxruntime

    session = load_onnxruntime().InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {INPUT_NAME: np.ascontiguousarray(rows, dtype=np.float32)}
    probabilities: npt.NDArray[np.float32] = session.run([PROBABILITIES_OUTPUT], feeds)[0]
    return probabilities


def measure_parity(
    onnx_bytes: bytes, pipeline: Pipeline, rows: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """onnxruntime vs predict_proba on ``rows``: largest difference and argmax agreement.

    ``argmax_agreement_ties_allowed`` also accepts an ONNX argmax that scikit-learn scores
    within MAX_ABS_DIFF of its top class: a RandomForest's probabilities are vote fractions,
    so exact ties are common and float32 rounding may break them either way.
    """
    if len(rows) == 0:
        raise ParityError("no rows to check ONNX parity on; pass held-out rows with a face")
    expected = pipeline.predict_proba(rows)
    actual = onnx_probabilities(onnx_bytes, rows)
    picked = expected[np.arange(len(rows)), actual.argmax(axis=1)]
    return {
        "n_rows": len(rows),
        "max_abs_diff": float(np.abs(actual - expected).max()),
        "argmax_agreement": float((actual.argmax(axis=1) == expected.argmax(axis=1)).mean()),
        "argmax_agreement_ties_allowed": float(
            (expected.max(axis=1) - picked <= MAX_ABS_DIFF).mean()
        ),
    }


def check_parity(
    onnx_bytes: bytes, pipeline: Pipeline, rows: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """``measure_parity``, raising ParityError when ONNX and scikit-learn disagree."""
    parity = measure_parity(onnx_bytes, pipeline, rows)
    agreement = parity["argmax_agreement_ties_allowed"]
    if agreement < MIN_ARGMAX_AGREEMENT or parity["max_abs_diff"] > MAX_ABS_DIFF:
        raise ParityError(
            f"ONNX and scikit-learn disagree: argmax agreement {agreement:.4f} (ties allowed), "
            f"max probability difference {parity['max_abs_diff']:.2e} (limits "
            f"{MIN_ARGMAX_AGREEMENT}, {MAX_ABS_DIFF:g}); check the skl2onnx and protobuf versions"
        )
    return parity


def export_model(
    pipeline: Pipeline,
    out_dir: Path,
    name: str,
    *,
    class_names: tuple[str, ...],
    feature_names: tuple[str, ...],
    parity_rows: npt.NDArray[np.float32],
    max_bytes: int | None = None,
    **manifest_fields: Any,
) -> ExportResult:
    """Write ``<name>.onnx`` and its ``<name>.json`` manifest after the parity check.

    ``manifest_fields``: ``metrics``, ``training_data``, ``feature_extraction`` (dicts).
    """
    onnx_bytes = to_onnx(pipeline, len(feature_names))
    _check_budget(name, len(onnx_bytes), max_bytes)
    parity = check_parity(onnx_bytes, pipeline, parity_rows)
    logger.info("ONNX parity: %s", parity)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    onnx_path.write_bytes(onnx_bytes)
    manifest = _manifest(
        pipeline,
        onnx_path,
        class_names=class_names,
        feature_names=feature_names,
        parity=parity,
        fields=manifest_fields,
    )
    manifest_path = manifest_path_for(onnx_path)
    write_manifest(manifest, manifest_path)
    return ExportResult(onnx_path, manifest_path, len(onnx_bytes), parity, manifest)


def _check_budget(name: str, size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise ModelBudgetError(
            f"{name}.onnx would be {size / 1e6:.2f} MB, over the {max_bytes / 1e6:.2f} MB budget; "
            "use fewer trees or leaves"
        )


def _manifest(
    pipeline: Pipeline,
    onnx_path: Path,
    *,
    class_names: tuple[str, ...],
    feature_names: tuple[str, ...],
    parity: dict[str, Any],
    fields: dict[str, Any],
) -> ModelManifest:
    from device.features.schema import FEATURE_SCHEMA_VERSION

    return ModelManifest(
        onnx_file=onnx_path.name,
        sha256=sha256_of(onnx_path),
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        feature_names=list(feature_names),
        labels=[class_names[int(index)] for index in pipeline.classes_],
        input_name=INPUT_NAME,
        probabilities_output=PROBABILITIES_OUTPUT,
        model_kind=f"sklearn.{type(pipeline[-1]).__name__}",
        metrics={**fields.get("metrics", {}), "onnx_parity": parity},
        training_data=fields.get("training_data", {}),
        feature_extraction=fields.get("feature_extraction", {}),
        software=software_versions(onnx_path.read_bytes()),
        created=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )


def onnx_opsets(onnx_bytes: bytes) -> dict[str, int]:
    """The opset of each domain the graph uses ('' is the default ONNX domain)."""
    import onnx

    model = onnx.load_model_from_string(onnx_bytes)
    return {entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import}


def software_versions(onnx_bytes: bytes) -> dict[str, Any]:
    """Versions that shaped the model, plus this checkout's git commit when there is one."""
    versions: dict[str, Any] = {"python": platform.python_version()}
    for package in ("emotion-edge", *VERSIONED_PACKAGES):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["onnx_opsets"] = onnx_opsets(onnx_bytes)
    versions["emotion_edge_git_sha"] = git_sha(Path(__file__).resolve().parents[1])
    return versions


def git_sha(repo: Path) -> str | None:
    """HEAD's commit read from ``repo/.git`` (no git process); None outside a checkout."""
    git_dir = repo / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head.removeprefix("ref: ")
        if (git_dir / ref).is_file():
            return (git_dir / ref).read_text().strip() or None
        return _packed_ref(git_dir / "packed-refs", ref)
    except OSError:
        return None


def _packed_ref(packed: Path, ref: str) -> str | None:
    for line in packed.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == ref:
            return parts[0]
    return None
