"""Thermal ROI temperatures as tidy rows ``subject, condition, roi, temp_c``.

Two inputs give the same rows:
- a CSV with (at least) the columns ``subject,condition,roi,temp_c`` — results computed
  elsewhere, e.g. the published numbers of a study; one row per measurement;
- labelled thermal sessions in the project's recording format (``emotion-edge-thermal/1``,
  ``docs/thermal-recording.md``): every frame inside a labelled segment gives one row per ROI,
  measured with the device's own ROI code (landmarks if the session has them, else the face
  detector boxes). The subject comes from the session's ``metadata.subject``.

Every problem is a one-line DatasetError naming the file (and the line, for CSV).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.errors import SourceUnavailable
from device.features.schema import THERMAL_ROIS
from device.features.thermal_roi import Box, ThermalRois, extract_thermal_rois
from device.sources.thermal.recording import ThermalRecording, read_recording
from trainer.errors import DatasetError

COLUMNS = ("subject", "condition", "roi", "temp_c")
TEMP_RANGE_C = (0.0, 50.0)  # outside this a value is in the wrong unit (K, °F) or corrupt


@dataclass(frozen=True, slots=True)
class ThermalRow:
    subject: str
    condition: str
    roi: str
    temp_c: float


# ---------------------------------------------------------------- CSV


def read_table(path: Path) -> list[ThermalRow]:
    """Rows of a tidy CSV; raises DatasetError with the line number of the first bad row."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            _check_columns(reader.fieldnames, path)
            rows = [_parse_row(record, path, reader.line_num) for record in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read thermal table {path}: {exc}") from exc
    if not rows:
        raise DatasetError(f"thermal table {path} has a header but no rows")
    return rows


def _check_columns(fieldnames: Iterable[str] | None, path: Path) -> None:
    present = [name.strip() for name in fieldnames or ()]
    missing = [name for name in COLUMNS if name not in present]
    if missing:
        raise DatasetError(
            f"thermal table {path} lacks column(s) {', '.join(missing)}; "
            f"expected a header {','.join(COLUMNS)}"
        )


def _parse_row(record: dict[str | None, str | None], path: Path, line: int) -> ThermalRow:
    values = {str(k).strip(): (v or "").strip() for k, v in record.items() if k is not None}
    where = f"{path}, line {line}"
    for name in ("subject", "condition", "roi"):
        if not values[name]:
            raise DatasetError(f"{where}: {name} is empty")
    temp_c = _parse_temperature(values["temp_c"], where)
    return ThermalRow(values["subject"], values["condition"].lower(), values["roi"], temp_c)


def _parse_temperature(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: temp_c {text!r} is not a number") from None
    low, high = TEMP_RANGE_C
    if not math.isfinite(value) or not low <= value <= high:
        raise DatasetError(f"{where}: temp_c {text} is outside {low:g}-{high:g} °C (kelvin or °F?)")
    return value


# ---------------------------------------------------------------- sessions


def session_frames(path: Path) -> list[tuple[str, str, dict[str, float]]]:
    """(subject, label, ROI -> °C) for every labelled frame of a thermal recording with a face."""
    try:
        recording = read_recording(path)
    except SourceUnavailable as exc:
        raise DatasetError(str(exc)) from exc
    subject = str(recording.metadata.get("subject", "")).strip()
    if not subject:
        raise DatasetError(f"thermal session {path} has no metadata.subject")
    if not recording.radiometric:
        raise DatasetError(f"thermal session {path} holds raw counts, not temperatures")
    frames = []
    for index, label in enumerate(recording.labels()):
        rois = None if label is None else _frame_rois(recording, index)
        if label is not None and rois is not None:
            frames.append((subject, label, rois.means()))
    return frames


def rows_from_session(path: Path) -> list[ThermalRow]:
    """One row per ROI per labelled frame of a thermal recording (unmeasurable ROIs skipped)."""
    rows = [
        ThermalRow(subject, label, roi, means[roi])
        for subject, label, means in session_frames(path)
        for roi in THERMAL_ROIS
    ]
    rows = [row for row in rows if math.isfinite(row.temp_c)]
    if not rows:
        raise DatasetError(f"thermal session {path} has no labelled frame with a measurable face")
    return rows


def _frame_rois(recording: ThermalRecording, index: int) -> ThermalRois | None:
    """ROIs of frame ``index``: from its landmarks, else its face box, else None."""
    frame = recording.frames[index]
    if recording.landmarks is not None and np.all(np.isfinite(recording.landmarks[index])):
        return extract_thermal_rois(frame, landmarks=recording.landmarks[index])
    if recording.face_boxes is not None and np.all(np.isfinite(recording.face_boxes[index])):
        x0, y0, x1, y1 = (float(v) for v in recording.face_boxes[index])
        return extract_thermal_rois(frame, face_box=Box(x0, y0, x1, y1))
    return None


def session_paths(path: Path) -> list[Path]:
    """One session file, or the sessions in a folder."""
    if path.is_dir():
        return _session_paths(path)
    if not path.is_file():
        raise DatasetError(f"thermal input {path} does not exist")
    return [path]


def _session_paths(folder: Path) -> list[Path]:
    paths = sorted(folder.glob("*.npz"))
    if not paths:
        raise DatasetError(f"{folder} holds no thermal sessions (*.npz)")
    return paths


def load_rows(path: Path) -> list[ThermalRow]:
    """Rows from a CSV table, one session (.npz), or a folder of sessions."""
    if path.is_dir():
        return [row for session in _session_paths(path) for row in rows_from_session(session)]
    if not path.is_file():
        raise DatasetError(f"thermal input {path} does not exist")
    if path.suffix.lower() == ".npz":
        return rows_from_session(path)
    if path.suffix.lower() == ".csv":
        return read_table(path)
    raise DatasetError(f"thermal input {path} is neither a .csv table nor a .npz session")
