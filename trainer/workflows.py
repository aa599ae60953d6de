"""Workflows the CLI runs: FER2013 load + extract, fit + score + export, the shipped model;
labelled frames (BAUM-1, labelled videos, feature tables) for reports and the transfer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.datasets.fer2013 import FerDataset, load_fer2013
from trainer.errors import DatasetError, UsageError
from trainer.evaluate import TEST_USAGE, LabelledFeatures, official_split
from trainer.export import ExportResult, export_model
from trainer.extract import ExtractionConfig, Features, extract_features
from trainer.train import DEFAULT_SEED

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "fer2013_blendshapes_hgb"
DEFAULT_MODEL_KIND = "hist_gradient_boosting"
DEFAULT_MODEL_MAX_BYTES = 5_000_000


@dataclass(frozen=True)
class Prepared:
    """A dataset and its features, row for row."""

    dataset: FerDataset
    features: Features

    def labelled(self) -> LabelledFeatures:
        return LabelledFeatures(
            values=self.features.values,
            face_found=self.features.face_found,
            labels=self.dataset.labels,
            usage=self.dataset.usage,
            class_names=self.dataset.class_names,
        )


def prepare(data_path: Path, config: ExtractionConfig) -> Prepared:
    """Load FER2013 from ``data_path`` and extract (or read cached) blendshapes."""
    dataset = load_fer2013(data_path)
    logger.info("loaded %d FER2013 images from %s", len(dataset), dataset.source)
    return Prepared(dataset, extract_features(dataset.images, config))


def default_models_dir() -> Path:
    """``device/models``: where the device package looks for its shipped model."""
    import device

    return Path(device.__file__).resolve().parent / "models"


def train_and_export(
    prepared: Prepared,
    model_name: str,
    out_dir: Path,
    name: str,
    *,
    seed: int = DEFAULT_SEED,
    max_bytes: int | None = None,
) -> ExportResult:
    """Fit on Training, score on PrivateTest, export with those honest scores in the manifest."""
    data = prepared.labelled()
    model, scores = official_split(model_name, data, seed)
    held_out = np.isin(data.usage, TEST_USAGE) & data.face_found
    return export_model(
        model,
        out_dir,
        name,
        class_names=data.class_names,
        feature_names=prepared.features.feature_names,
        parity_rows=data.values[held_out],
        max_bytes=max_bytes,
        metrics=manifest_metrics(scores),
        training_data=training_summary(prepared, scores, model_name, seed),
        feature_extraction=prepared.features.extraction_summary(),
    )


def build_default(
    prepared: Prepared, out_dir: Path | None = None, seed: int = DEFAULT_SEED
) -> ExportResult:
    """The model the device ships: HGB 150 x 31 on FER2013 Training, at most 5 MB of ONNX."""
    return train_and_export(
        prepared,
        DEFAULT_MODEL_KIND,
        out_dir or default_models_dir(),
        DEFAULT_MODEL_NAME,
        seed=seed,
        max_bytes=DEFAULT_MODEL_MAX_BYTES,
    )


def manifest_metrics(scores: dict[str, Any]) -> dict[str, Any]:
    """The official-split scores without the per-class detail of the baselines."""
    keep = ("protocol", "train_usage", "test_usage", "face_found", "all_rows", "majority_class")
    metrics = {key: scores[key] for key in keep}
    metrics["majority_baseline"] = {
        "face_found": _headline(scores["majority_face_found"]),
        "all_rows": _headline(scores["majority_all_rows"]),
    }
    metrics["coverage"] = {"train": scores["coverage_train"], "test": scores["coverage_test"]}
    metrics["all_rows_rule"] = "a row without a face counts as the training majority class"
    return metrics


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: metrics[key] for key in ("n", "accuracy", "macro_f1") if key in metrics}


def training_summary(
    prepared: Prepared, scores: dict[str, Any], model_name: str, seed: int
) -> dict[str, Any]:
    return {
        **prepared.dataset.summary(),
        "fitted_on_usage": scores["train_usage"],
        "fitted_rows_with_face": scores["n_train_faces"],
        "evaluated_on_usage": scores["test_usage"],
        "model": model_name,
        "seed": seed,
    }


FRAME_KINDS = ("baum1s", "baum1a", "videos", "table")


@dataclass(frozen=True)
class Frames:
    """Labelled frames (BAUM-1, labelled videos or a feature table) and where they came from."""

    table: Any  # trainer.datasets.table.FeatureTable
    summary: dict[str, Any]


def load_frames(
    kind: str,
    path: Path,
    merge_map: Any,
    *,
    annotations: Path | None = None,
    video_config: Any = None,
) -> Frames:
    """Frames of a video dataset (features extracted, cached) or of a feature table."""
    if kind == "table":
        from trainer.datasets.table import load_feature_table

        dataset = load_feature_table(path, merge_map=merge_map)
        return _frames(dataset.table, dataset.summary().to_dict(), len(dataset.problems), {})
    if kind not in FRAME_KINDS:
        raise UsageError(f"unknown dataset kind {kind!r}; expected one of {', '.join(FRAME_KINDS)}")
    if video_config is None:
        raise UsageError(f"dataset kind {kind!r} needs a video extraction configuration")
    from trainer.datasets_cli import load_videos
    from trainer.video_features import extract_video_features

    videos = load_videos(kind, path, merge_map, annotations)
    features = extract_video_features(videos.items, video_config)
    problems = len(videos.problems) + len(features.problems)
    extraction = {**features.provenance, "timings": features.timings}
    return _frames(features.table, videos.summary().to_dict(), problems, extraction)


def _frames(
    table: Any, summary: dict[str, Any], problems: int, extraction: dict[str, Any]
) -> Frames:
    if problems:
        logger.warning(
            "%d dataset problem(s) left out (see `emotion-trainer datasets check`)", problems
        )
    if len(table) == 0:
        raise DatasetError(f"{summary.get('source')}: no labelled frame to use")
    coverage = float(table.face_found.mean())
    counts = {"frames": len(table), "coverage": round(coverage, 6)}
    return Frames(table, {"dataset": summary, **counts, "feature_extraction": extraction})
