"""``emotion-trainer datasets check|extract``: JSON summaries, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_baum1 import SHORT_VIDEO, build_baum_tree
from trainer.cli import main
from trainer.datasets.table import load_feature_table


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def clean_videos(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "a.mp4").symlink_to(SHORT_VIDEO)
    (root / "b.mp4").symlink_to(SHORT_VIDEO)
    labels = "path,subject,label,start_s,end_s\na.mp4,P1,happy,0,0.2\nb.mp4,P2,Sad,1.0,1.1\n"
    (root / "labels.csv").write_text(labels)
    return root


def test_check_json_lists_every_problem_and_exits_65(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_baum_tree(tmp_path / "baum", "csv")
    out = tmp_path / "summary.json"
    argv = ["datasets", "check", "--kind", "baum1s", str(root), "--merge-map", "paper"]
    code, stdout, err = run([*argv, "--json", "--out", str(out)], capsys)
    assert code == 65 and err == []
    summary = json.loads(stdout)
    assert summary == json.loads(out.read_text())
    assert summary["items"] == 4 and summary["n_subjects"] == 2
    assert summary["label_counts"] == {"anger": 1, "happiness": 2, "sadness": 1}
    assert summary["dropped_by_merge_map"] == {"unsure": 1}
    assert summary["merge_map"] == {"merge": {"contempt": "anger"}, "drop": ["unsure"]}
    assert sum(summary["problem_counts"].values()) == len(summary["problems"]) == 7
    first = summary["problems"][0]
    assert first == {
        "kind": "row_without_video",
        "file": "Annotations_BAUM1s.csv",
        "row": 8,
        "message": "row 8: clip S002_002 has no video file",
    }


def test_check_of_a_clean_dataset_exits_0_with_a_readable_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, err = run(
        ["datasets", "check", "--kind", "videos", str(clean_videos(tmp_path / "v"))], capsys
    )
    assert code == 0 and err == []
    lines = stdout.splitlines()
    assert lines[0].endswith("labels.csv: 2 items, 2 subjects, ~5 frames every 100 ms")
    assert lines[1:] == ["labels: happy 1, sad 1", "problems: 0"]


def test_check_table_and_fer2013(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fer = tmp_path / "fer2013.csv"
    pixels = " ".join(["128"] * 2304)
    fer.write_text(f"emotion,pixels,Usage\n3,{pixels},Training\n0,{pixels},PrivateTest\n")
    code, stdout, _ = run(["datasets", "check", "--kind", "fer2013", str(fer), "--json"], capsys)
    summary = json.loads(stdout)
    assert code == 0 and summary["label_counts"] == {"angry": 1, "happy": 1}
    assert summary["usage_counts"] == {"Training": 1, "PrivateTest": 1}
    table = tmp_path / "t.csv"
    table.write_text("subject,label\n")
    code, _, err = run(["datasets", "check", "--kind", "table", str(table)], capsys)
    assert code == 65 and len(err) == 1 and "lacks 52 of the 52 blendshape columns" in err[0]


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["datasets", "check", "x"], 2, "the following arguments are required: --kind"),
        (["datasets", "check", "--kind", "baum2", "x"], 2, "invalid choice: 'baum2'"),
        (["datasets", "extract", "--kind", "table", "x"], 2, "invalid choice: 'table'"),
        (["datasets", "check", "--kind", "baum1a", "nowhere"], 65, "does not exist"),
        (["datasets", "check", "--kind", "videos", ".", "--merge-map", "m.toml"], 65, "m.toml"),
    ],
)
def test_user_mistakes_are_one_line(
    argv: list[str], code: int, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    got, _, err = run(argv, capsys)
    assert got == code and len(err) == 1
    assert err[0].startswith("emotion-trainer: ") and fragment in err[0]


def test_extract_writes_a_feature_table_the_table_reader_accepts(
    tmp_path: Path, landmarker_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "features.csv"
    argv = ["datasets", "extract", "--kind", "videos", str(clean_videos(tmp_path / "v"))]
    argv += [
        "--out",
        str(out),
        "--jobs",
        "1",
        "--no-progress",
        "--landmarker",
        str(landmarker_path),
    ]
    code, stdout, _ = run([*argv, "--cache-dir", str(tmp_path / "cache")], capsys)
    assert code == 0
    assert stdout.splitlines()[0] == "5 frames from 2 clips, face found in 100.0%"
    table = load_feature_table(out).table
    assert table.labels.tolist() == ["happy"] * 3 + ["sad"] * 2
    assert table.clips.tolist() == ["a@0-0.2"] * 3 + ["b@1-1.1"] * 2
    assert table.face_found.all()


def test_images_writes_one_usage_as_pngs_in_label_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2
    import numpy as np

    images = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    usage = np.array(["Training", "PrivateTest", "PrivateTest", "PublicTest", "PrivateTest"])
    npz = tmp_path / "fer.npz"
    np.savez(npz, images=images, labels=np.array([0, 3, 6, 3, 3]), usage=usage)
    out = tmp_path / "private"
    assert main(["datasets", "images", str(npz), "--out", str(out)]) == 0
    assert "3 PrivateTest images" in capsys.readouterr().out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["happy/00001.png", "happy/00004.png", "neutral/00002.png"]
    assert np.array_equal(
        cv2.imread(str(out / "neutral/00002.png"), cv2.IMREAD_GRAYSCALE), images[2]
    )
    assert main(["datasets", "images", str(npz), "--usage", "Test", "--out", str(out)]) == 2
    assert "has no Test rows" in capsys.readouterr().err
