"""Reports on the real FER2013 slice: every file written, every PNG readable and linked."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from threadpoolctl import threadpool_limits

from trainer.cli import main
from trainer.datasets.fer2013 import FerDataset
from trainer.errors import UsageError
from trainer.evaluate import LabelledFeatures
from trainer.extract import Features
from trainer.protocols import make_protocol
from trainer.report import (
    Report,
    ReportSettings,
    build_report,
    feature_distribution_figure,
    fer_protocols,
)


@pytest.fixture(autouse=True, scope="module")
def one_openmp_thread() -> Iterator[None]:
    """HistGradientBoosting's OpenMP threads crawl on a busy shared machine; one is plenty here."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


FAST = {
    "random_forest": {"n_estimators": 10, "n_jobs": 1},
    "hist_gradient_boosting": {"max_iter": 10},
}
SETTINGS = ReportSettings(
    models=("random_forest", "hist_gradient_boosting"),
    n_permutations=2,
    n_boot=200,
    model_params=FAST,
)


@pytest.fixture(scope="module")
def data(fer_slice: FerDataset, fer_slice_features: Features) -> LabelledFeatures:
    return LabelledFeatures(
        fer_slice_features.values,
        fer_slice_features.face_found,
        fer_slice.labels,
        fer_slice.usage,
        fer_slice.class_names,
    )


@pytest.fixture(scope="module")
def fer_report(
    data: LabelledFeatures, fer_slice_features: Features, tmp_path_factory: pytest.TempPathFactory
) -> Report:
    out = tmp_path_factory.mktemp("report")
    protocols = fer_protocols(data, ("cv5", "official"), seed=0)
    return build_report(
        data, fer_slice_features.feature_names, protocols, out, SETTINGS, command=["test"]
    )


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas


def _links(markdown: Path) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown.read_text())


def test_report_writes_figures_markdown_metrics_and_manifest(fer_report: Report) -> None:
    out = fer_report.out_dir
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == sorted(p.relative_to(out).as_posix() for p in fer_report.figures.values())
    assert {"figures/fig2_feature_per_class.png", "figures/fig3_folds_cv5.png"} <= set(pngs)
    assert "figures/confusion_official_hist_gradient_boosting.png" in pngs
    for png in pngs:
        _assert_png(out / png)
    links = _links(fer_report.markdown)
    assert sorted(links) == pngs  # every figure linked, every link a figure
    manifest = json.loads(fer_report.manifest.read_text())
    assert manifest["command"] == ["test"] and manifest["seed"] == 0
    assert manifest["software"]["scikit-learn"] and manifest["settings"]["n_boot"] == 200
    assert set(pngs) | {"report.md", "metrics.json"} == set(manifest["files"])


def test_report_tabulates_mean_std_and_significance(fer_report: Report) -> None:
    text = fer_report.markdown.read_text()
    cv5 = fer_report.results["protocols"]["cv5"]
    acc = cv5["models"]["random_forest"]["face_found"]["accuracy"]
    assert f"{acc['mean']:.3f} ± {acc['std']:.3f}" in text
    assert "| majority class |" in text and "random_forest vs hist_gradient_boosting" in text
    permutation = cv5["significance"]["permutation"]["random_forest"]
    assert permutation["n_permutations"] == 2 and permutation["p_value"] >= 1 / 3
    assert len(cv5["models"]["hist_gradient_boosting"]["folds"]) == 5
    saved = json.loads(fer_report.metrics.read_text())
    assert saved["protocols"]["official"]["models"]["random_forest"]["folds"][0]["n_test"] == 56


def test_feature_figure_shows_smiles_for_happy(
    data: LabelledFeatures, fer_slice_features: Features, tmp_path: Path
) -> None:
    names = fer_slice_features.feature_names
    stats = feature_distribution_figure(data, names, tmp_path / "fig2.png")
    _assert_png(tmp_path / "fig2.png")
    others = [s["median"] for name, s in stats.items() if name != "happy"]
    assert stats["happy"]["median"] > 3 * max(others)
    assert sum(s["n"] for s in stats.values()) == int(data.face_found.sum())
    with pytest.raises(UsageError, match="unknown feature 'smile'"):
        feature_distribution_figure(data, names, tmp_path / "x.png", ("smile",))


def test_subject_protocols_draw_figure_4(
    data: LabelledFeatures, fer_slice_features: Features, tmp_path: Path
) -> None:
    n = len(data.labels)
    subjects = np.array([f"S{i % 3}" for i in range(n)])
    clips = np.array([f"c{i % 9}" for i in range(n)])
    with_subjects = replace(data, subjects=subjects)
    protocols = {
        "loso": make_protocol("loso", subjects=subjects),
        "person_specific": make_protocol(
            "person_specific", subjects=subjects, clips=clips, times=np.arange(n) * 0.1
        ),
    }
    settings = replace(SETTINGS, models=("random_forest",), n_permutations=0)
    report = build_report(
        with_subjects, fer_slice_features.feature_names, protocols, tmp_path, settings
    )
    for key in ("fig4_loso", "fig4_person_specific"):
        _assert_png(report.figures[key])
    links = _links(report.markdown)
    assert {"figures/fig4_subjects_loso.png", "figures/fig4_subjects_person_specific.png"} <= set(
        links
    )
    per = report.results["protocols"]["person_specific"]["models"]["random_forest"]
    assert set(per["per_subject"]) == {"S0", "S1", "S2"} and per["per_subject_summary"]
    assert "accuracy per subject" in report.markdown.read_text()
    tests = report.results["protocols"]
    boot = tests["person_specific"]["significance"]["vs_majority"]["random_forest"]["bootstrap"]
    assert (boot["resampled"], boot["n_units"]) == ("groups", 9)  # clips c0..c8
    loso = tests["loso"]["significance"]["vs_majority"]["random_forest"]["bootstrap"]
    assert loso["n_units"] == 3  # subjects


def test_report_command_on_a_tiny_npz(
    fer_slice: FerDataset, landmarker_path: Path, tmp_path: Path
) -> None:
    rows = np.concatenate([np.flatnonzero(fer_slice.labels == k)[:8] for k in range(7)])
    npz = tmp_path / "fer.npz"
    np.savez(
        npz,
        images=fer_slice.images[rows],
        labels=fer_slice.labels[rows],
        usage=np.where(np.arange(len(rows)) % 4 == 0, "PrivateTest", "Training"),
    )
    out = tmp_path / "report"
    argv = ["report", "--data", str(npz), "--cache-dir", str(tmp_path / "cache"), "--jobs", "1"]
    argv += ["--landmarker", str(landmarker_path), "--no-progress", "--out", str(out)]
    argv += ["--protocol", "official", "--model", "random_forest", "--bootstrap", "100"]
    assert main(argv) == 0
    assert (out / "report.md").is_file() and (out / "manifest.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"][:4] == ["emotion-trainer", "report", "--data", str(npz)]
    assert manifest["command"][-4:] == ["--min-face-confidence", "0.5", "--feature-set", "all"]
    argv += ["--feature-set", "blendshapes", "--out", str(tmp_path / "paper")]
    assert main(argv) == 0
    paper = json.loads((tmp_path / "paper" / "manifest.json").read_text())["inputs"]
    assert len(paper["feature_columns"]) == 52
    assert manifest["inputs"]["dataset"]["n_images"] == len(rows)
    assert main([*argv, "--protocol", "loso"]) == 2  # not a FER2013 protocol
