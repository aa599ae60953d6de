"""BAUM-1 loader on a BAUM-1-shaped tree made from the real sample face videos.

The sheets carry the quirks of the real ones: a title row merged over the header, a notes sheet
before the data, a side legend after ``Gender`` whose header repeats ``Emotion``, extra spaces,
mixed case, label spellings that differ from the legend, blank rows, a duplicate, a bad code.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from trainer.datasets.baum1 import clip_key, load_baum1
from trainer.datasets.common import load_merge_map, merge_map_from_dict
from trainer.errors import DatasetError

ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets"
SHORT_VIDEO = ASSETS / "video_rgb" / "pyfeat_single_face.mp4"  # 30 fps, 72 frames
LONG_VIDEO = ASSETS / "video_rgb" / "pyfeat_WolfgangLanger_Pexels.mp4"  # 23.976 fps, 472 frames

HEADER = ["Number", "Subject Label", "Clip", "Clip Name", "Emotion", "Emotion Code", "Gender"]
LEGEND_HEADER = ["", "Code", "Emotion", "Count"]
# (data row, legend cells). Numbers are as hand-made: Clip/Subject out of step with Clip Name.
ROWS: list[tuple[list[object], list[object]]] = [
    ([1, "S001", 1, "S001_001", "Happiness", 8, "F"], ["", 1, "Anger", 40]),
    ([2, 1, 3, "  s001_003 ", "happy ", "8 ", "f"], ["", 2, "Boredom", 3]),
    ([3, "S001", 4, "S001_004", "Contempt", 5, "F"], ["", 5, "Contempt", 7]),
    ([None] * 7, []),  # blank row
    ([4, "S002", 1, "S002_001", "unsure", 13, "M"], []),
    ([5, "S002", 2, "S002_002", "Fear", 7, "M"], []),  # no video
    ([6, "S003", 2, "S003_002", "Sadness", "10", "F"], []),
    ([7, "S003", 3, "S003_003", "Surprise", "eleven", "F"], []),  # code not a number
    ([8, "S003", 9, "", "Surprise", 11, "F"], []),  # no clip name
    ([9, "S001", 1, "S001_001", "Happiness", 8, "F"], []),  # duplicate
    ([10, "S004", 1, "S004_001", "?", 99, "M"], []),  # code outside the legend
    ([11, "S003", 7, "S003_007", "Anger", 1, "F"], []),  # unreadable video
]


def build_videos(root: Path, folder: str = "BAUM1s_MP4 - All") -> Path:
    """Subject folders in mixed case, clip numbers not contiguous, one junk file, one orphan."""
    videos = root / folder
    links = {
        "S001/S001_001.mp4": SHORT_VIDEO,
        "S001/S001_003.mp4": SHORT_VIDEO,
        "S001/S001_004.mp4": SHORT_VIDEO,
        "s002/s002_001.mp4": SHORT_VIDEO,
        "S003/S003_002.mp4": LONG_VIDEO,
        "S003/S003_005.mp4": SHORT_VIDEO,  # no row
    }
    for name, target in links.items():
        (videos / name).parent.mkdir(parents=True, exist_ok=True)
        (videos / name).symlink_to(target)
    (videos / "S003" / "S003_007.mp4").write_bytes(b"not a video" * 50)
    (videos / "S001" / "notes.txt").write_text("ignored\n")
    return videos


def sheet_rows() -> list[list[object]]:
    rows: list[list[object]] = [HEADER + LEGEND_HEADER]
    rows += [data + legend for data, legend in ROWS]
    return rows


def write_xlsx(path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "Notes"
    notes.append(["BAUM-1s annotations, see the paper"])
    sheet = book.create_sheet("Annotations")
    sheet.append(["BAUM-1s: spontaneous"])
    sheet.merge_cells("A1:G1")
    for row in sheet_rows():
        sheet.append(row)
    book.save(path)
    return path


def write_csv(path: Path, line_end: str = "\r\n", delimiter: str = ",") -> Path:
    text_rows = [["" if cell is None else str(cell) for cell in row] for row in sheet_rows()]
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator=line_end)
        writer.writerow(["BAUM-1s: spontaneous"])
        writer.writerows(text_rows)
    return path


def build_baum_tree(root: Path, sheet: str = "xlsx") -> Path:
    build_videos(root)
    if sheet == "xlsx":
        write_xlsx(root / "Annotations_BAUM1s.xlsx")
    else:
        write_csv(root / "Annotations_BAUM1s.csv")
    return root


PAPER = merge_map_from_dict({"merge": {"contempt": "anger"}, "drop": ["unsure"]})


@pytest.mark.parametrize("sheet", ["xlsx", "csv"])
def test_items_labels_and_merge_map(tmp_path: Path, sheet: str) -> None:
    dataset = load_baum1(build_baum_tree(tmp_path, sheet), "baum1s", merge_map=PAPER)
    by_clip = {item.clip: item for item in dataset.items}
    assert sorted(by_clip) == ["S001_001", "S001_003", "S001_004", "S003_002"]
    assert by_clip["S001_003"].label == "happiness"  # from code 8, not the sheet's "happy "
    assert by_clip["S001_004"].label == "anger"
    assert by_clip["S001_004"].source_label == "contempt"
    assert {item.subject for item in dataset.items} == {"S001", "S003"}
    assert dataset.dropped == {"unsure": 1}
    assert by_clip["S003_002"].info is not None
    assert by_clip["S003_002"].info.frame_count == 472


@pytest.mark.parametrize("sheet", ["xlsx", "csv"])
def test_every_problem_is_reported_with_its_row_or_file(tmp_path: Path, sheet: str) -> None:
    dataset = load_baum1(build_baum_tree(tmp_path, sheet), "baum1s", merge_map=PAPER)
    found = sorted((p.kind, p.file, p.row) for p in dataset.problems)
    name = f"Annotations_BAUM1s.{sheet}"
    # rows of the file: a title (1), the header (2), then ROWS from row 3 (a blank one at 6)
    expected = [
        ("bad_row", name, 10),
        ("bad_row", name, 11),
        ("duplicate_row", name, 12),
        ("row_without_video", name, 8),
        ("unknown_code", name, 13),
        ("unreadable_video", "BAUM1s_MP4 - All/S003/S003_007.mp4", 14),
        ("video_without_row", "BAUM1s_MP4 - All/S003/S003_005.mp4", None),
    ]
    assert found == sorted(expected)
    messages = " | ".join(p.message for p in dataset.problems)
    assert "S002_002 has no video file" in messages
    assert "'eleven', not a number" in messages


def test_identity_map_keeps_unsure_and_contempt(tmp_path: Path) -> None:
    dataset = load_baum1(build_baum_tree(tmp_path), "baum1s")
    labels = sorted(item.label for item in dataset.items)
    assert labels == ["contempt", "happiness", "happiness", "sadness", "unsure"]
    assert dataset.dropped == {}
    assert dataset.summary().to_dict()["n_subjects"] == 3


def test_summary_counts_after_the_merge_map(tmp_path: Path) -> None:
    summary = load_baum1(build_baum_tree(tmp_path), "baum1s", merge_map=PAPER).summary()
    data = summary.to_dict()
    assert data["items"] == 4 and data["subjects"] == ["S001", "S003"]
    assert data["label_counts"] == {"anger": 1, "happiness": 2, "sadness": 1}
    # 3 short clips x 24 ticks (0..2.3 s) + the long one, 0..19.6 s: 197 ticks
    assert data["expected_frames"] == {"anger": 24, "happiness": 48, "sadness": 197}
    assert data["problem_counts"]["bad_row"] == 2


def test_strict_mode_raises_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"7 problem\(s\); first: "):
        load_baum1(build_baum_tree(tmp_path), "baum1s", strict=True)


def test_two_line_header_semicolons_and_old_mac_line_ends(tmp_path: Path) -> None:
    build_videos(tmp_path, "BAUM1s_MP4_all")
    lines = [
        "Number;Subject;Clip;Clip;Emotion;Emotion;Gender",
        ";Label;;Name;;Code;",
        "1;S001;1;S001_001;Happiness;8;F",
        "2;S001;3;S001_003;Sadness;10;F",
    ]
    (tmp_path / "annotations_baum1s.csv").write_bytes("\r".join(lines).encode("cp1252"))
    dataset = load_baum1(tmp_path, "baum1s", probe=False)
    assert [(i.clip, i.label, i.row) for i in dataset.items] == [
        ("S001_001", "happiness", 3),
        ("S001_003", "sadness", 4),
    ]


def test_baum1a_legend_and_video_folder_given_directly(tmp_path: Path) -> None:
    videos = build_videos(tmp_path, "BAUM1a_MP4 - All")
    sheet = tmp_path / "Annotations_BAUM1a.csv"
    sheet.write_text("Clip Name,Emotion Code\nS001_001,6\nS001_003,9\n")
    dataset = load_baum1(videos, "baum1a", annotations=sheet, merge_map=PAPER, probe=False)
    assert [(i.clip, i.label) for i in dataset.items] == [("S001_001", "interest")]
    assert dataset.dropped == {"unsure": 1}


@pytest.mark.parametrize(
    ("text", "key"),
    [("S001_001", "S001_001"), (" s1_02.MP4 ", "S001_002"), ("S012-100", "S012_100"), ("x", None)],
)
def test_clip_key(text: str, key: str | None) -> None:
    assert clip_key(text) == key


def test_missing_parts_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_baum1(tmp_path / "nope")
    with pytest.raises(DatasetError, match="MP4 - All"):
        load_baum1(tmp_path)
    build_videos(tmp_path)
    with pytest.raises(DatasetError, match=r"no Annotations_BAUM1s\.xlsx or \.csv"):
        load_baum1(tmp_path)
    (tmp_path / "Annotations_BAUM1s.xlsx").write_text("not a workbook")
    with pytest.raises(DatasetError, match="not a readable xlsx"):
        load_baum1(tmp_path)


def test_sheet_without_the_key_columns(tmp_path: Path) -> None:
    build_videos(tmp_path)
    (tmp_path / "Annotations_BAUM1s.csv").write_text("Clip,Emotion\n1,Happiness\n")
    with pytest.raises(
        DatasetError, match="no header row with the columns Clip Name, Emotion Code"
    ):
        load_baum1(tmp_path)


def test_merge_map_files_and_their_errors(tmp_path: Path) -> None:
    toml = tmp_path / "paper.toml"
    toml.write_text('drop = ["Unsure"]\n[merge]\nContempt = "Anger"\n')
    assert load_merge_map(toml) == PAPER
    (tmp_path / "paper.json").write_text('{"merge": {"contempt": "anger"}, "drop": ["unsure"]}')
    assert load_merge_map(tmp_path / "paper.json") == PAPER
    assert load_merge_map("paper") == PAPER
    chained = {"merge": {"contempt": "anger", "anger": "negative"}}
    with pytest.raises(DatasetError, match="themselves merged"):
        merge_map_from_dict(chained)
    with pytest.raises(DatasetError, match="unknown keys"):
        merge_map_from_dict({"rename": {}})
    (tmp_path / "bad.toml").write_text("merge = [")
    with pytest.raises(DatasetError, match="cannot be parsed"):
        load_merge_map(tmp_path / "bad.toml")
