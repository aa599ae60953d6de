"""The crop-sampling diagnostic on the real sample video: both crops through the shipped CNN."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainer.crop_sampling import flips, main

VIDEOS = Path(__file__).resolve().parents[3] / "shared" / "assets" / "video_rgb"
SHORT_VIDEO = VIDEOS / "pyfeat_single_face.mp4"  # 640x360, 72 frames, one face


def test_flips_counts_changes_between_neighbours() -> None:
    assert flips([1, 1, 2, 2, 1]) == pytest.approx(0.5)
    assert flips([3]) == 0.0


def test_diagnostic_reports_both_crops_on_a_real_video(
    landmarker_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(SHORT_VIDEO), "--frames", "12"]) == 0
    out = capsys.readouterr().out
    faces = int(re.findall(r"(\d+) frames with a face", out)[0])
    assert 0 < faces <= 12
    scale = float(re.findall(r"median (\d+\.\d+)", out)[0])
    assert 3.0 < scale < 5.0  # this video's face: about 4 image pixels per crop pixel
    same = float(re.findall(r"same class on (\d+\.\d)%", out)[0])
    assert 0.0 <= same <= 100.0
    assert "classes, shipped crop:" in out and "classes, area-averaged:" in out


def test_missing_video_is_one_line_exit_2(
    landmarker_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["nothere.mp4"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "nothere.mp4 does not exist" in err and "\n" not in err
