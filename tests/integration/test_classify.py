"""``emotion-device classify`` on real photos: the device's own landmarker and model, no broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.classify import ClassifyOptions, run_classify

FACES = Path(__file__).resolve().parents[3] / "shared" / "assets" / "faces_rgb"
KEYS = {"path", "label", "probabilities", "face"}


def classify_json(capsys: pytest.CaptureFixture[str], *paths: Path, **kw: object) -> list[dict]:
    code = run_classify(ClassifyOptions(paths=paths, as_json=True, **kw))  # type: ignore[arg-type]
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 0
    sys.stderr.write(captured.err)  # for tests that read the summary
    return rows


def test_sample_faces_get_their_expressions(capsys: pytest.CaptureFixture[str]) -> None:
    happy, surprise = FACES / "pyfeat_0-f15-hao-ph.jpg", FACES / "pyfeat_0-f1-su-ph.jpg"
    rows = classify_json(capsys, happy, surprise)
    assert [set(r) for r in rows] == [KEYS, KEYS]
    assert [(r["label"], r["face"]) for r in rows] == [("happy", True), ("surprise", True)]
    probabilities = rows[0]["probabilities"]
    assert len(probabilities) == 7 and sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)


def test_image_without_a_face_is_the_no_face_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    (row,) = classify_json(capsys, blank)
    assert row == {"path": str(blank), "label": "no_face", "probabilities": {}, "face": False}


def test_folder_is_walked(capsys: pytest.CaptureFixture[str]) -> None:
    rows = classify_json(capsys, FACES)
    expected = sorted(p for p in FACES.iterdir() if p.suffix in {".jpg", ".png"})
    assert [r["path"] for r in rows] == [str(p) for p in expected]


def test_progress_bar_on_stderr_leaves_the_json_lines_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = classify_json(capsys, FACES, progress=True)
    expected = sorted(p for p in FACES.iterdir() if p.suffix in {".jpg", ".png"})
    assert [r["path"] for r in rows] == [str(p) for p in expected]  # every line parsed as JSON
    bar = capsys.readouterr().err
    assert "classify: 100%" in bar and f"{len(expected)}/{len(expected)}" in bar
    classify_json(capsys, FACES)  # not a terminal: no bar by default
    assert "classify:" not in capsys.readouterr().err


def test_unreadable_file_is_one_line_and_the_rest_still_runs(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    happy = FACES / "pyfeat_0-f15-hao-ph.jpg"
    command = [sys.executable, "-m", "device.cli", "classify", str(broken), str(happy)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 65
    assert done.stderr.strip() == f"emotion-device: {broken} cannot be read as an image"
    assert done.stdout.split()[0] == "happy"


def test_evaluate_a_labelled_folder(
    tmp_path: Path, fer_npz_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with np.load(fer_npz_path) as data:
        images, labels, names = data["images"], data["labels"], data["class_names"]
    for label in (3, 5):  # happy, surprise: six FER faces each, in folders named by label
        folder = tmp_path / str(names[label])
        folder.mkdir()
        for i in np.flatnonzero(labels == label)[:6]:
            cv2.imwrite(str(folder / f"{i}.png"), images[i])
    rows = classify_json(capsys, tmp_path, evaluate=True)
    assert len(rows) == 12
    err = capsys.readouterr().err
    assert "evaluate: 12 labelled images" in err and "accuracy" in err
