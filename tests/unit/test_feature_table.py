"""Feature tables a user brings: CSV (and Parquet when pyarrow is installed)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from device.features.schema import BLENDSHAPE_FEATURES
from trainer.datasets.common import load_merge_map
from trainer.datasets.table import FeatureTable, load_feature_table, write_feature_table
from trainer.errors import DatasetError

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


def make_table(n_rows: int = 6) -> FeatureTable:
    rng = np.random.default_rng(0)
    values = rng.random((n_rows, len(BLENDSHAPE_FEATURES)), dtype=np.float32)
    values[2] = np.nan  # no face in this frame
    return FeatureTable(
        values=values,
        feature_names=BLENDSHAPE_FEATURES,
        subjects=np.array(["S001", "S001", "S001", "S002", "S002", "S002"][:n_rows]),
        labels=np.array(["anger", "happiness", "anger", "sadness", "unsure", "contempt"][:n_rows]),
        clips=np.array(["S001_001"] * 3 + ["S002_004"] * 3),
        times=np.array([0.0, 0.1, 0.2, 0.0, 0.1, 0.2]),
        face_found=~np.isnan(values[:, 0]),
    )


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict[str, str]], header: list[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_round_trip_keeps_every_value(tmp_path: Path) -> None:
    table = make_table()
    dataset = load_feature_table(write_feature_table(table, tmp_path / "features.csv"))
    back = dataset.table
    assert back.feature_names == BLENDSHAPE_FEATURES and dataset.problems == ()
    np.testing.assert_array_equal(back.values, table.values)
    assert back.face_found.tolist() == [True, True, False, True, True, True]
    assert back.clips.tolist() == table.clips.tolist()
    assert np.allclose(back.times, table.times)
    assert back.class_names == ("anger", "contempt", "happiness", "sadness", "unsure")
    assert back.label_indices().tolist() == [0, 2, 0, 3, 4, 1]


def test_merge_map_and_summary(tmp_path: Path) -> None:
    path = write_feature_table(make_table(), tmp_path / "features.csv")
    dataset = load_feature_table(path, merge_map=load_merge_map("paper"))
    assert dataset.table.labels.tolist() == ["anger", "happiness", "anger", "sadness", "anger"]
    summary = dataset.summary().to_dict()
    assert summary["label_counts"] == {"anger": 3, "happiness": 1, "sadness": 1}
    assert summary["dropped_by_merge_map"] == {"unsure": 1}
    assert summary["rows_with_face"] == 4 and summary["subjects"] == ["S001", "S002"]


def test_bad_rows_and_unknown_columns_are_problems(tmp_path: Path) -> None:
    source = write_feature_table(make_table(), tmp_path / "features.csv")
    rows = rows_of(source)
    header = ["Subject", "Label", "time_s", "note", "blendshape.frown", *BLENDSHAPE_FEATURES]
    for row in rows:
        row.update(Subject=row["subject"], Label=row["label"], time_s=row["time"], note="x")
    rows[1]["blendshape.jawOpen"] = "n/a"
    rows[3]["Label"] = " "
    path = write_rows(tmp_path / "quirky.csv", rows, header)
    dataset = load_feature_table(path)
    assert [(p.kind, p.row) for p in dataset.problems] == [
        ("unknown_column", None),
        ("bad_row", 3),
        ("bad_row", 5),
    ]
    assert dataset.problems[1].message == "row 3: blendshape.jawOpen is not a number"
    assert dataset.problems[2].message == "row 5: empty label"
    assert len(dataset.table) == 4 and set(dataset.table.clips.tolist()) == {""}
    assert np.allclose(dataset.table.times, [0.0, 0.2, 0.1, 0.2])
    assert dataset.summary().to_dict()["ignored_columns"] == ["note", "blendshape.frown"]


def test_missing_columns_are_one_sentence(tmp_path: Path) -> None:
    rows = rows_of(write_feature_table(make_table(), tmp_path / "features.csv"))
    header = ["subject", "label", *BLENDSHAPE_FEATURES[:-2]]
    with pytest.raises(DatasetError, match=r"lacks 2 of the 52 blendshape columns \(first: "):
        load_feature_table(write_rows(tmp_path / "short.csv", rows, header))
    header = ["subject", *BLENDSHAPE_FEATURES]
    with pytest.raises(DatasetError, match="no header row with the columns subject, label"):
        load_feature_table(write_rows(tmp_path / "nolabel.csv", rows, header))
    with pytest.raises(DatasetError, match=r"is not a \.csv or \.parquet"):
        load_feature_table(write_rows(tmp_path / "table.txt", rows, header))


@pytest.mark.skipif(HAS_PYARROW, reason="pyarrow is installed")
def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path) -> None:
    path = tmp_path / "features.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DatasetError, match="needs pyarrow, which is not installed: pip install"):
        load_feature_table(path)
    with pytest.raises(DatasetError, match="needs pyarrow"):
        write_feature_table(make_table(), path)


@pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow is not installed")
def test_parquet_round_trip(tmp_path: Path) -> None:
    table = make_table()
    back = load_feature_table(write_feature_table(table, tmp_path / "features.parquet")).table
    np.testing.assert_array_equal(back.values, table.values)
    assert back.labels.tolist() == table.labels.tolist()
