"""A thermal classifier from labelled thermal sessions, exported with the device's manifest.

Features per labelled frame: the four ROI temperatures measured with the device's own ROI code,
as deltas against the subject's baseline — the median of the subject's frames labelled
``baseline_label`` when there are any, else of all the subject's frames. On the device the
baseline is the person's rolling median, which this approximates. Absolute temperatures are
left out by default: a Lepton is only accurate to ±5 °C, its deltas carry the signal.

Name the conditions like the RGB model's labels (``neutral``, ``fear``, ``happy``) and the
device fuses the two models over the labels they share.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict

from device.features.schema import THERMAL_ROIS
from trainer.datasets.thermal_table import session_frames, session_paths
from trainer.errors import DatasetError
from trainer.export import ExportResult, export_model
from trainer.model_config import ModelChoice
from trainer.train import build_model

DELTA_FEATURES = tuple(f"thermal.{roi}.delta_c" for roi in THERMAL_ROIS)
MEAN_FEATURES = tuple(f"thermal.{roi}.mean_c" for roi in THERMAL_ROIS)
DEFAULT_CHOICE = ModelChoice("hist_gradient_boosting", {"max_iter": 100, "max_leaf_nodes": 15})


@dataclass(frozen=True)
class ThermalSamples:
    values: npt.NDArray[np.float32]  # one row per frame, columns = feature_names
    labels: npt.NDArray[np.int64]
    subjects: npt.NDArray[np.str_]
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]


Frame = tuple[str, str, dict[str, float]]  # subject, condition, ROI -> °C


def load_frames(input_path: Path) -> list[Frame]:
    """Labelled frames with all four ROIs measurable, from one session or a folder of them."""
    frames = [f for path in session_paths(input_path) for f in session_frames(path)]
    frames = [f for f in frames if all(math.isfinite(v) for v in f[2].values())]
    if not frames:
        raise DatasetError(f"{input_path} has no labelled frame with all four ROIs measurable")
    return frames


def subject_baselines(frames: Sequence[Frame], baseline_label: str) -> dict[str, dict[str, float]]:
    by_subject: dict[str, list[tuple[str, dict[str, float]]]] = defaultdict(list)
    for subject, condition, means in frames:
        by_subject[subject].append((condition, means))
    baselines = {}
    for subject, items in by_subject.items():
        calm = [m for c, m in items if c == baseline_label] or [m for _, m in items]
        baselines[subject] = {roi: float(np.median([m[roi] for m in calm])) for roi in THERMAL_ROIS}
    return baselines


def build_samples(
    frames: Sequence[Frame], baseline_label: str, with_absolute: bool = False
) -> ThermalSamples:
    baselines = subject_baselines(frames, baseline_label)
    class_names = tuple(sorted({condition for _, condition, _ in frames}))
    if len(class_names) < 2:
        raise DatasetError(f"a classifier needs two or more conditions; found {class_names}")
    names = DELTA_FEATURES + (MEAN_FEATURES if with_absolute else ())
    values = [_row(means, baselines[s], with_absolute) for s, _, means in frames]
    return ThermalSamples(
        values=np.asarray(values, dtype=np.float32),
        labels=np.array([class_names.index(c) for _, c, _ in frames], dtype=np.int64),
        subjects=np.array([s for s, _, _ in frames]),
        class_names=class_names,
        feature_names=names,
    )


def _row(means: dict[str, float], baseline: dict[str, float], absolute: bool) -> list[float]:
    row = [means[roi] - baseline[roi] for roi in THERMAL_ROIS]
    return row + ([means[roi] for roi in THERMAL_ROIS] if absolute else [])


def leave_one_subject_out(samples: ThermalSamples, choice: ModelChoice) -> dict[str, Any]:
    """Accuracy and macro-F1 when each subject is predicted by a model that never saw them."""
    if len(set(samples.subjects.tolist())) < 2:
        return {"protocol": "loso", "note": "one subject only: not evaluated"}
    model = build_model(choice.name, **choice.params)
    predicted = cross_val_predict(
        model, samples.values, samples.labels, groups=samples.subjects, cv=LeaveOneGroupOut()
    )
    return {
        "protocol": "loso",
        "n": len(samples.labels),
        "accuracy": float(accuracy_score(samples.labels, predicted)),
        "macro_f1": float(f1_score(samples.labels, predicted, average="macro")),
    }


def train_thermal_model(
    input_path: Path,
    out_dir: Path,
    name: str = "thermal_rois",
    choice: ModelChoice = DEFAULT_CHOICE,
    baseline_label: str = "neutral",
) -> tuple[ExportResult, dict[str, Any]]:
    """Fit on every labelled frame of ``input_path`` and export ``name.onnx`` + manifest."""
    samples = build_samples(load_frames(input_path), baseline_label)
    metrics = leave_one_subject_out(samples, choice)
    model = build_model(choice.name, **choice.params).fit(samples.values, samples.labels)
    result = export_model(
        model,
        out_dir,
        name,
        class_names=samples.class_names,
        feature_names=samples.feature_names,
        parity_rows=samples.values,
        metrics=metrics,
        training_data=_summary(samples, input_path, baseline_label),
    )
    return result, metrics


def _summary(samples: ThermalSamples, source: Path, baseline_label: str) -> dict[str, Any]:
    counts = np.bincount(samples.labels, minlength=len(samples.class_names))
    return {
        "source": str(source),
        "frames": len(samples.labels),
        "subjects": sorted(set(samples.subjects.tolist())),
        "per_label": dict(zip(samples.class_names, map(int, counts), strict=True)),
        "baseline": f"median of each subject's {baseline_label!r} frames",
    }
