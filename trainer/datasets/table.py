"""A feature table a user brings (or the video extraction writes): CSV or Parquet.

Columns: every ``blendshape.*`` name of the feature schema (other schema features such as
``thermal.*`` are optional), ``subject``, ``label``, and optionally ``clip``, ``time`` (seconds;
``time_s`` also accepted) and ``face_found``. Empty feature cells are NaN; without a
``face_found`` column a row has a face when all its blendshapes are numbers. Parquet needs
pyarrow, which is not a dependency of the trainer.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.features.schema import BLENDSHAPE_FEATURES, FEATURE_NAMES
from trainer.datasets.common import (
    IDENTITY_MAP,
    DatasetSummary,
    MergeMap,
    Problem,
    normalise_header,
    normalise_label,
    raise_if_strict,
)
from trainer.datasets.sheets import read_sheet
from trainer.errors import DatasetError

ID_COLUMNS = {"subject": "subject", "label": "label", "clip": "clip", "time": "time"}
ID_ALIASES = {"times": "time", "facefound": "face_found"}
SCHEMA_PREFIXES = ("blendshape.", "thermal.")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
TRUE_TEXTS = frozenset({"1", "true", "yes", "y", "t"})
Columns = dict[str, list[Any]]


@dataclass(frozen=True)
class FeatureTable:
    """One row per frame or image: features in schema order plus who, what and when."""

    values: npt.NDArray[np.float32]  # (N, F), NaN where no face
    feature_names: tuple[str, ...]
    subjects: npt.NDArray[np.str_]
    labels: npt.NDArray[np.str_]
    clips: npt.NDArray[np.str_]
    times: npt.NDArray[np.float64]  # seconds into the clip; NaN when unknown
    face_found: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.labels.tolist())))

    def label_indices(self) -> npt.NDArray[np.int64]:
        """Labels as indices into ``class_names``."""
        lookup = {name: index for index, name in enumerate(self.class_names)}
        return np.array([lookup[label] for label in self.labels.tolist()], dtype=np.int64)


@dataclass(frozen=True)
class TableDataset:
    table: FeatureTable
    source: str
    problems: tuple[Problem, ...]
    dropped: dict[str, int]
    merge_map: MergeMap
    ignored_columns: tuple[str, ...] = ()

    def summary(self) -> DatasetSummary:
        table = self.table
        return DatasetSummary(
            kind="table",
            source=self.source,
            items=len(table),
            subjects=tuple(sorted(set(table.subjects.tolist()))),
            label_counts=Counter(table.labels.tolist()),
            problems=self.problems,
            dropped=self.dropped,
            merge_map=self.merge_map,
            extra={
                "rows_with_face": int(table.face_found.sum()),
                "clips": len(set(table.clips.tolist()) - {""}),
                "feature_names": len(table.feature_names),
                "ignored_columns": list(self.ignored_columns),
            },
        )


def load_feature_table(
    path: Path | str, *, merge_map: MergeMap = IDENTITY_MAP, strict: bool = False
) -> TableDataset:
    """Read and check a CSV or Parquet feature table; unusable rows become problems."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"feature table {path} does not exist")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DatasetError(f"{path} is not a .csv or .parquet feature table")
    reader = _parquet_columns if path.suffix.lower() in (".parquet", ".pq") else _csv_columns
    header, columns, rows = reader(path)
    dataset = _build(path, header, columns, rows, merge_map)
    raise_if_strict(strict, f"feature table {path}", dataset.problems)
    return dataset


# --- reading ------------------------------------------------------------------------------


def _csv_columns(path: Path) -> tuple[list[str], Columns, list[int]]:
    sheet = read_sheet(path, ("subject", "label"))
    rows = [(number, cells) for number, cells in sheet.rows if any(cells)]
    width = len(sheet.header)
    columns: Columns = {name: [] for name in sheet.header}
    for _, cells in rows:
        padded = (cells + [""] * width)[:width]
        for name, cell in zip(sheet.header, padded, strict=True):
            columns[name].append(cell)
    return sheet.header, columns, [number for number, _ in rows]


def _parquet_columns(path: Path) -> tuple[list[str], Columns, list[int]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            f"reading {path.name} needs pyarrow, which is not installed: "
            "pip install pyarrow (or give the table as CSV)"
        ) from None
    try:
        data: Columns = pq.read_table(path).to_pydict()
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable Parquet file ({exc})") from None
    n_rows = len(next(iter(data.values()), []))
    return list(data), data, list(range(1, n_rows + 1))


# --- checking -----------------------------------------------------------------------------


def _build(
    path: Path, header: list[str], columns: Columns, rows: list[int], merge_map: MergeMap
) -> TableDataset:
    ids = _id_columns(path, header)
    features = _feature_columns(path, header)
    values, bad = _numeric_block(path, columns, features)
    n_rows = len(rows)
    subjects = _texts(columns, ids.get("subject"), n_rows)
    labels = [normalise_label(text) for text in _texts(columns, ids.get("label"), n_rows)]
    empty = [
        [role for role, text in (("subject", subject), ("label", label)) if not text]
        for subject, label in zip(subjects, labels, strict=True)
    ]
    problems = _unknown_columns(path, header)
    problems += _row_problems(path, rows, bad, features, empty)
    usable = ~bad.any(axis=1) & np.array([not e for e in empty], dtype=bool)
    mapped = [merge_map.apply(lab) if ok else None for lab, ok in zip(labels, usable, strict=True)]
    keep = usable & np.array([label is not None for label in mapped], dtype=bool)
    dropped = Counter(np.array(labels, dtype=np.str_)[usable & ~keep].tolist())
    table = FeatureTable(
        values=values[keep].astype(np.float32),
        feature_names=tuple(features),
        subjects=np.array(subjects, dtype=np.str_)[keep],
        labels=np.array([label or "" for label in mapped], dtype=np.str_)[keep],
        clips=np.array(_texts(columns, ids.get("clip"), n_rows), dtype=np.str_)[keep],
        times=_times(columns, ids.get("time"), n_rows)[keep],
        face_found=_face_found(columns, ids.get("face_found"), values)[keep],
    )
    ignored = tuple(name for name in header if name not in features and name not in ids.values())
    return TableDataset(table, str(path), tuple(problems), dict(dropped), merge_map, ignored)


def _id_columns(path: Path, header: list[str]) -> dict[str, str]:
    """Role (subject, label, clip, time, face_found) -> the column's name as written."""
    found: dict[str, str] = {}
    for name in header:
        key = normalise_header(name)
        role = ID_COLUMNS.get(key) or ID_ALIASES.get(key)
        if role and role not in found:
            found[role] = name
    missing = [role for role in ("subject", "label") if role not in found]
    if missing:
        raise DatasetError(f"{path} has no {' or '.join(missing)} column")
    return found


def _feature_columns(path: Path, header: list[str]) -> list[str]:
    """Schema features present, in schema order; every blendshape is required."""
    present = set(header)
    missing = [name for name in BLENDSHAPE_FEATURES if name not in present]
    if missing:
        raise DatasetError(
            f"{path} lacks {len(missing)} of the {len(BLENDSHAPE_FEATURES)} blendshape columns "
            f"(first: {', '.join(missing[:3])}); names as in device/features/schema.py"
        )
    return [name for name in FEATURE_NAMES if name in present]


def _unknown_columns(path: Path, header: list[str]) -> list[Problem]:
    known = set(FEATURE_NAMES)
    return [
        Problem("unknown_column", f"column {name} is not in the feature schema; ignored", path.name)
        for name in header
        if name.startswith(SCHEMA_PREFIXES) and name not in known
    ]


def _numeric_block(
    path: Path, columns: Columns, features: Sequence[str]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """(N, F) values and a mask of cells that are not numbers (empty cells are NaN)."""
    pairs = [_numeric(columns[name]) for name in features]
    if not pairs:
        return np.zeros((0, 0)), np.zeros((0, 0), dtype=bool)
    return np.stack([v for v, _ in pairs], axis=1), np.stack([b for _, b in pairs], axis=1)


def _numeric(cells: list[Any]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    try:
        values = np.array([math.nan if c in ("", None) else c for c in cells], dtype=np.float64)
        return values, np.zeros(len(cells), dtype=bool)
    except (ValueError, TypeError):
        parsed = [_float_or_none(cell) for cell in cells]
        values = np.array([math.nan if v is None else v for v in parsed], dtype=np.float64)
        return values, np.array([v is None for v in parsed], dtype=bool)


def _float_or_none(cell: Any) -> float | None:
    if cell in ("", None):
        return math.nan
    try:
        return float(cell)
    except (ValueError, TypeError):
        return None


def _texts(columns: Columns, name: str | None, n_rows: int) -> list[str]:
    if name is None:
        return [""] * n_rows
    return [" ".join(str(v).split()) if v is not None else "" for v in columns[name]]


def _times(columns: Columns, name: str | None, n_rows: int) -> npt.NDArray[np.float64]:
    if name is None:
        return np.full(n_rows, np.nan)
    parsed = (_float_or_none(value) for value in columns[name])
    return np.array([math.nan if v is None else v for v in parsed], dtype=np.float64)


def _face_found(
    columns: Columns, name: str | None, values: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    blendshapes = values[:, : len(BLENDSHAPE_FEATURES)]
    finite: npt.NDArray[np.bool_] = np.isfinite(blendshapes).sum(axis=1) == blendshapes.shape[1]
    if name is not None:
        flags = [str(v).strip().lower() in TRUE_TEXTS for v in columns[name]]
        finite &= np.array(flags, dtype=bool)
    return finite


def _row_problems(
    path: Path,
    rows: list[int],
    bad: npt.NDArray[np.bool_],
    features: Sequence[str],
    empty: list[list[str]],
) -> list[Problem]:
    """One problem per unusable row: empty subject/label, or a feature that is not a number."""
    problems = []
    for i, number in enumerate(rows):
        reasons = [f"empty {role}" for role in empty[i]]
        bad_columns = [features[int(j)] for j in np.flatnonzero(bad[i])]
        if bad_columns:
            more = f" (+{len(bad_columns) - 1} more)" if len(bad_columns) > 1 else ""
            reasons.append(f"{bad_columns[0]} is not a number{more}")
        if reasons:
            message = f"row {number}: {'; '.join(reasons)}"
            problems.append(Problem("bad_row", message, path.name, number))
    return problems


# --- writing ------------------------------------------------------------------------------


def write_feature_table(table: FeatureTable, path: Path) -> Path:
    """CSV (or Parquet, with pyarrow) that ``load_feature_table`` reads back unchanged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = _output_columns(table)
    if path.suffix.lower() in (".parquet", ".pq"):
        _write_parquet(columns, path)
    else:
        _write_csv(columns, path)
    return path


def _output_columns(table: FeatureTable) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {
        "subject": table.subjects.tolist(),
        "clip": table.clips.tolist(),
        "time": [round(float(t), 6) for t in table.times],
        "label": table.labels.tolist(),
        "face_found": [bool(f) for f in table.face_found],
    }
    for j, name in enumerate(table.feature_names):
        columns[name] = [float(v) for v in table.values[:, j]]
    return columns


def _write_csv(columns: dict[str, list[Any]], path: Path) -> None:
    names = list(columns)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in zip(*(columns[name] for name in names), strict=True):
            writer.writerow([_cell(value) for value in row])


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.9g}"
    return str(value)


def _write_parquet(columns: dict[str, list[Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            f"writing {path.name} needs pyarrow, which is not installed: "
            "pip install pyarrow (or write .csv)"
        ) from None
    pq.write_table(pa.table(columns), path)
