"""emotion-trainer: user mistakes give one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.features.schema import RGB_FEATURES
from tests.unit.test_transfer import SHORT_VIDEO, build_tree
from trainer.cli import DATA_ENV, main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)


def test_missing_data_option_and_env(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["evaluate"], capsys)
    assert code == 2
    assert err == [f"emotion-trainer: no FER2013 data given: pass --data PATH or set {DATA_ENV}"]


def test_data_from_env_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "missing.npz"))
    code, err = run(["extract"], capsys)
    assert code == 65 and len(err) == 1 and "does not exist" in err[0]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["fly"], "invalid choice: 'fly'"),
        (["evaluate", "--protocol", "loso"], "invalid choice: 'loso'"),
        (["evaluate", "--model", "svm"], "invalid choice: 'svm'"),
        (["extract", "--jobs", "0"], "0 must be at least 1"),
        (["build-fused", "--channels", "8"], "blocks are 'width,convs' pairs"),
        (["build-fused", "--ema", "1"], "a decay lies from 0 (off) up to below 1"),
        (["build-fused", "--ema", "fast"], "'fast' is not a number"),
        (["build-fused", "--self-distil", "2"], "2.0 must lie between 0 and 1"),
        (["build-fused", "--ferplus-share", "x"], "'x' is not a number"),
        (["train", "--out", "x", "--face-margin", "-1"], "-1.0 must lie between 0 and 1"),
        (["report", "--out", "x", "--fold-jobs", "0"], "or -1 for all cores"),
        (["transfer", "--target", "x", "--out", "x", "--fold-jobs", "-3"], "or -1 for all cores"),
        (["train", "--data", "x.npz"], "the following arguments are required: --out"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(argv, capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith("emotion-trainer: ") and fragment in err[0]


def test_wrong_csv_columns_exit_65(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "fer.csv"
    path.write_text("Usage,Image name,neutral\nTraining,fer0000000.png,4\n")
    code, err = run(["extract", "--data", str(path), "--cache-dir", str(tmp_path)], capsys)
    assert code == 65 and len(err) == 1 and "expected emotion,pixels,Usage" in err[0]


def test_missing_landmarker_file_exit_78(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "fer.npz"
    np.savez(data, images=np.zeros((1, 48, 48), np.uint8), labels=[0], usage=["Training"])
    argv = ["extract", "--data", str(data), "--landmarker", str(tmp_path / "none.task")]
    code, err = run(argv, capsys)
    assert code == 78 and len(err) == 1 and "not found" in err[0]


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "trainer.bench_fer", "--data", str(tmp_path / "none.npz")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 65
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"emotion-trainer: FER2013 path {tmp_path / 'none.npz'} does not exist"
    ]


def test_extract_end_to_end_on_a_tiny_npz(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fer_slice: object
) -> None:
    images = fer_slice.images[:6]  # type: ignore[attr-defined]
    data = tmp_path / "fer.npz"
    np.savez(data, images=images, labels=np.arange(6) % 7, usage=["Training"] * 6)
    out = tmp_path / "features.npz"
    argv = ["extract", "--data", str(data), "--cache-dir", str(tmp_path / "c"), "--jobs", "1"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "6 images, face found in" in stdout and "one landmarker on one core" in stdout
    with np.load(out) as saved:
        assert (
            saved["features"].shape == (6, len(RGB_FEATURES)) and saved["face_found"].dtype == bool
        )


# --- labelled frames: report and transfer on a BAUM-1-shaped tree of the real sample videos ---

SMALL_TREE = {
    "S001": [("happiness", SHORT_VIDEO), ("contempt", SHORT_VIDEO)],
    "S002": [("happiness", SHORT_VIDEO), ("sadness", SHORT_VIDEO)],
}


def _frame_options(tmp_path: Path, landmarker_path: Path) -> list[str]:
    argv = ["--cache-dir", str(tmp_path / "cache"), "--jobs", "1", "--no-progress"]
    return [*argv, "--landmarker", str(landmarker_path), "--seed", "0"]


def test_report_on_a_baum_tree_under_loso_and_person_specific(
    tmp_path: Path, landmarker_path: Path
) -> None:
    tree = build_tree(tmp_path / "baum", SMALL_TREE)
    out = tmp_path / "report"
    argv = ["report", "--kind", "baum1s", "--data", str(tree), "--out", str(out)]
    argv += ["--model", "random_forest", "--bootstrap", "50"]
    assert main([*argv, *_frame_options(tmp_path, landmarker_path)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["protocols"]) == {"loso", "person_specific"}  # the default for frames
    assert metrics["class_names"] == ["anger", "happiness", "sadness"]  # contempt → anger
    loso = metrics["protocols"]["loso"]["models"]["random_forest"]
    assert [fold["fold"] for fold in loso["folds"]] == ["S001", "S002"]
    person = metrics["protocols"]["person_specific"]["models"]["random_forest"]
    assert len(person["folds"]) == 2 * 5 and set(person["per_subject"]) == {"S001", "S002"}
    for name in ("fig4_subjects_loso.png", "fig4_subjects_person_specific.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"][:8] == [
        "emotion-trainer", "report", "--kind", "baum1s", "--data", str(tree),
        "--merge-map", "paper",
    ]  # fmt: skip
    assert manifest["inputs"]["dataset"]["label_counts"] == {
        "anger": 1,
        "happiness": 2,
        "sadness": 1,
    }
    assert manifest["inputs"]["frames"] == 4 * 24


def test_report_on_a_feature_table_from_the_same_tree(
    tmp_path: Path, landmarker_path: Path
) -> None:
    tree = build_tree(tmp_path / "baum", SMALL_TREE)
    table = tmp_path / "frames.csv"
    extract = ["datasets", "extract", str(tree), "--kind", "baum1s", "--merge-map", "paper"]
    extract += ["--out", str(table), "--cache-dir", str(tmp_path / "cache"), "--jobs", "1"]
    assert main([*extract, "--landmarker", str(landmarker_path), "--no-progress"]) == 0
    out = tmp_path / "report"
    argv = ["report", "--kind", "table", "--data", str(table), "--out", str(out)]
    argv += ["--model", "logistic_regression", "--bootstrap", "50", "--protocol"]
    assert main([*argv, "loso", "clip_kfold"]) == 65  # 4 clips cannot fill 5 clip folds
    assert main([*argv, "loso"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["protocols"]) == ["loso"] and metrics["n_rows"] == 4 * 24


def test_transfer_command_writes_metrics_markdown_and_manifest(
    tmp_path: Path, landmarker_path: Path, fer_slice: object, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = fer_slice.labels  # type: ignore[attr-defined]
    rows = np.concatenate([np.flatnonzero(labels == k)[:10] for k in range(7)])
    fer = tmp_path / "fer.npz"
    images = fer_slice.images[rows]  # type: ignore[attr-defined]
    np.savez(fer, images=images, labels=labels[rows], usage=["Training"] * len(rows))
    tree = build_tree(tmp_path / "baum", SMALL_TREE)
    out = tmp_path / "transfer"
    argv = ["transfer", "--data", str(fer), "--kind", "baum1s", "--target", str(tree)]
    argv += ["--out", str(out), "--model", "random_forest:n_estimators=10,n_jobs=1"]
    argv += ["--threshold", "0.2", "--bootstrap", "50", "--chunk-size", "100"]
    assert main([*argv, *_frame_options(tmp_path, landmarker_path)]) == 0
    stdout = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    pruning = metrics["pruning"]
    assert f"pruning kept {pruning['kept']} of {pruning['frames_with_face']}" in stdout
    assert "loso fer_plus_pruned_baum: accuracy" in stdout
    assert pruning["kept"] + pruning["pruned"] == pruning["frames_with_face"] == 4 * 24
    assert set(metrics["protocols"]) == {"loso", "person_specific"}
    assert "| fer_plus_pruned_baum |" in (out / "transfer.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"][:4] == ["emotion-trainer", "transfer", "--data", str(fer)]
    assert "--threshold" in manifest["command"] and manifest["settings"]["threshold"] == 0.2
    assert manifest["inputs"]["fer2013"]["n_images"] == len(rows)


# --- thermal commands through emotion-trainer ---------------------------------------------


def test_thermal_table_from_emotion_trainer(tmp_path: Path) -> None:
    table = tmp_path / "rois.csv"
    table.write_text(
        "subject,condition,roi,temp_c\nA,baseline,nose,33.0\nA,fear,nose,32.0\nA,happiness,nose,32.8\n"
    )
    assert main(["thermal", "table", str(table), "--out", str(tmp_path / "out")]) == 0
    assert "| A | nose | 33.00 |" in (tmp_path / "out" / "table1.md").read_text()


def test_thermal_landmarks_from_emotion_trainer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.test_thermal_landmarks import _write

    for index in range(8):
        _write(tmp_path / "train", index, as_npy=index % 2 == 0)
    model = tmp_path / "thermal54.dat"
    argv = ["thermal-landmarks", "--train", str(tmp_path / "train"), "--out", str(model)]
    assert main([*argv, "--oversampling", "2", "--cascade-depth", "3"]) == 0
    assert model.stat().st_size > 0 and "from 8 faces" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["thermal"], 2, "the following arguments are required: ACTION"),
        (["thermal", "table", "missing.csv", "--out", "o"], 65, "missing.csv does not exist"),
        (["thermal", "train", "missing", "--out", "o"], 65, "missing"),
        (["thermal-landmarks", "--train", "none", "--out", "m.dat"], 65, "does not exist"),
        (["thermal-landmarks", "--train", "t", "--out", "m", "--threads", "0"], 2, "at least 1"),
        (["report", "--kind", "baum1s", "--out", "r"], 2, "--kind baum1s needs --data"),
        (["transfer", "--kind", "baum1s", "--out", "r"], 2, "required: --target"),
        (["transfer", "--kind", "x", "--target", "t", "--out", "r"], 2, "invalid choice: 'x'"),
        (["transfer", "--threshold", "2", "--kind", "table"], 2, "2.0 must lie between 0 and 1"),
        (["transfer", "--protocol", "official"], 2, "invalid choice: 'official'"),
    ],
)
def test_new_commands_give_one_line_errors(
    argv: list[str], code: int, fragment: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        got, err = run(argv, capsys)
    finally:
        os.chdir(cwd)
    assert got == code and len(err) == 1
    assert err[0].startswith("emotion-trainer: ") and fragment in err[0]


def test_ferplus_share_without_votes_is_one_line_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from trainer.fused import ferplus_labels, ferplus_votes

    path = tmp_path / "fer.csv"  # FER2013's own CSV: no FER+ votes
    path.write_text("emotion,pixels,Usage\n0," + " ".join(["0"] * 2304) + ",Training\n")
    names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert ferplus_votes(path, names) is None and len(ferplus_labels(path, names)) == 0
    for option in (["--ferplus-share", "0.5"], ["--stacker-labels", "ferplus"]):
        argv = ["build-fused", "--data", str(path), *option]
        code, err = run(
            [*argv, "--cache-dir", str(tmp_path / "cache"), "--work-dir", str(tmp_path)], capsys
        )
        assert code == 2 and len(err) == 1 and "has no FER+ votes" in err[0]
        assert f"drop {option[0]}" in err[0]
        assert not (tmp_path / "cache").exists()  # refused before extracting anything
