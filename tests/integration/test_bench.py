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
    fused = report["fused_path"]  # the default model is the fused bundle
    # the warm-up frames are not timed; every other pair runs the blendshape-only path
    assert report["frames"] == 10 and fused["frames"]["blendshape_only"] == 10
    assert fused["frames"]["fused"] == report["faces_found"]
    assert fused["blendshape_only_model"].startswith("fer2013_blendshapes_hgb@")
    assert {"crop", "cnn", "blendshapes", "fusion"} <= set(fused["stages_ms"])
    assert fused["stages_ms"]["cnn"]["mean_ms"] > 0
    expected = fused["stages_ms"]["fused_classifier"]["mean_ms"]
    expected -= fused["stages_ms"]["blendshape_only_classifier"]["mean_ms"]
    assert fused["extra_cost_ms"] == pytest.approx(expected, abs=1e-3)
    median = fused["stages_ms"]["fused_classifier"]["median_ms"]
    median -= fused["stages_ms"]["blendshape_only_classifier"]["median_ms"]
    assert fused["extra_cost_median_ms"] == pytest.approx(median, abs=1e-3)
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


def test_blendshape_only_bench_times_every_frame(short_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    options = BenchOptions(
        video=short_video, frames=WARM_UP_FRAMES + 6, json_path=out, builtin="blendshapes"
    )
    assert run_bench(options) == 0
    report = json.loads(out.read_text())
    assert report["frames"] == 6 and "fused_path" not in report
    assert report["model"].startswith("fer2013_blendshapes_hgb@")
