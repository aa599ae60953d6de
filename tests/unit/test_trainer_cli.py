"""emotion-trainer: user mistakes give one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.features.schema import RGB_FEATURES
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
