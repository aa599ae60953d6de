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


def test_bench_rounds_compares_models_run_by_run(
    short_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import statistics

    from device.cli import main
    from device.inference.classifier import BUILTIN_BLENDSHAPES, BUILTIN_FUSED

    out = tmp_path / "rounds.json"
    args = ["bench-rounds", str(BUILTIN_FUSED), str(BUILTIN_BLENDSHAPES), "--rounds", "2"]
    args += ["--video", str(short_video), "--frames", str(WARM_UP_FRAMES + 8)]
    assert main([*args, "--json", str(out), "--no-progress"]) == 0
    table = capsys.readouterr().out
    fused, blend = json.loads(out.read_text())["models"]
    assert fused["runs"] == blend["runs"] == 2
    each = fused["extra_cost_ms"]["each"]
    assert len(each) == 2 and fused["extra_cost_ms"]["mean"] == pytest.approx(
        statistics.fmean(each), abs=1e-4
    )
    assert fused["extra_cost_ms"]["min"] <= fused["extra_cost_ms"]["median"]
    assert fused["blendshape_only_model"] == blend["name"]  # the fused bundle's own baseline
    assert "extra_cost_ms" not in blend and blend["peak_rss_mb"] > 0
    assert "models/fer2013_fused.json" in table and "models/fer2013_blendshapes_hgb.onnx" in table


def test_bench_rounds_names_a_missing_model_and_a_failed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from device.cli import main

    assert main(["bench-rounds", str(tmp_path / "none.json"), "--no-progress"]) == 2
    assert "none.json does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench-rounds", str(tmp_path / "none.json"), "--rounds", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("--rounds: 0 must be at least 1")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert main(["bench-rounds", str(broken), "--rounds", "1", "--no-progress"]) == 78
    error = capsys.readouterr().err.strip()
    assert error.startswith("emotion-device: bench of") and "\n" not in error
    assert "manifest" in error and error.count("emotion-device:") == 1


def test_bench_refuses_a_run_that_times_no_frame(
    short_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from device.bench import NothingToTime
    from device.cli import main

    with pytest.raises(NothingToTime, match="warm-up"):
        run_bench(BenchOptions(video=short_video, frames=WARM_UP_FRAMES))
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--frames", "-3"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("--frames: -3 must be 0 or more")


def test_extra_cost_is_none_without_faces_on_both_paths() -> None:
    from device.bench import BLEND_ONLY, FUSED_STAGES, Samples, _fused_report

    fused = Samples(*FUSED_STAGES, BLEND_ONLY)
    fused.add(crop=1e-4, cnn=3e-4, blendshapes=3e-4, fusion=4e-5, fused_classifier=8e-4)
    report = _fused_report(fused, "fer2013_blendshapes_hgb@x")
    assert report["extra_cost_ms"] is None and report["extra_cost_median_ms"] is None
    fused.add(**{BLEND_ONLY: 4e-4})
    assert _fused_report(fused, "fer2013_blendshapes_hgb@x")["extra_cost_ms"] == pytest.approx(0.4)
