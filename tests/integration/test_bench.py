"""``emotion-device bench`` on a real sample video: every stage timed, the JSON report written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.assets import AssetResolver
from device.bench import WARM_UP_FRAMES, BenchOptions, run_bench

STAGES = {"decode", "bare_landmarker", "landmarker", "classifier", "smoothing", "publish"}


@pytest.fixture(scope="module")
def short_video() -> Path:
    return AssetResolver().resolve("sample_video_short")


def test_bench_reports_every_stage_and_memory(short_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    frames = WARM_UP_FRAMES + 20
    assert run_bench(BenchOptions(video=short_video, frames=frames, json_path=out)) == 0
    report = json.loads(out.read_text())
    assert report["frames"] == 20  # the warm-up frames are not timed
    assert set(report["stages_ms"]) >= STAGES
    assert report["stages_ms"]["landmarker"]["mean_ms"] > 0
    assert report["faces_found"] > 0 and report["stages_ms"]["classifier"]["mean_ms"] > 0
    assert report["device_step_over_bare_landmarker"] > 0
    assert 0 < report["peak_rss_mb"] <= report["peak_rss_mb_with_bare_landmarker"]


def test_compare_modes_reports_both_modes(short_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "modes.json"
    options = BenchOptions(video=short_video, frames=15, json_path=out, compare_modes=True)
    assert run_bench(options) == 0
    report = json.loads(out.read_text())
    assert set(report["ms_per_frame"]) == {"image", "video"}
    assert report["frames"] == 15
    assert 0.0 <= report["classifier_label_agreement"] <= 1.0
    assert report["max_abs_blendshape_diff"]["max"] >= 0.0
