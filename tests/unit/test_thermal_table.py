"""Table 1 (mean ROI temperature per condition, shifts from baseline) from CSV and sessions.

The synthetic sessions plant shifts in the paper's range (0.1-1.2 °C between baseline, fear
and happiness). The paper's per-ROI numbers are not public, so these values are our own,
plausible choices (documented in docs/thermal-recording.md, "Synthetic sessions"):

| ROI       | baseline °C | fear - baseline | happiness - baseline |
|-----------|------------:|----------------:|---------------------:|
| nose      | 33.0        | -1.20           | -0.40                |
| forehead  | 34.6        | +0.30           | +0.15                |
| left_eye  | 35.2        | +0.50           | +0.20                |
| right_eye | 35.1        | +0.40           | +0.20                |

Subject s1 shows the shifts x1.0, s2 x0.9, s3 x0.8 (all still 0.12-1.2 °C), and each subject
has its own absolute offset (0, +1.5, -2.0 °C: a Lepton's ±5 °C absolute error), which the
differences must not see. Neutral is planted equal to baseline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.features.schema import THERMAL_ROIS
from device.features.thermal_roi import Box, landmarks_from_box
from device.sources.thermal.recording import ThermalRecording, write_recording
from device.sources.thermal.synthetic import PlantedSegment, ThermalFaceSpec, synthetic_session
from trainer.datasets.thermal_table import ThermalRow, load_rows, read_table
from trainer.errors import DatasetError
from trainer.thermal import OVERALL, main, table1, to_markdown

BASELINE_C = {"nose": 33.0, "forehead": 34.6, "left_eye": 35.2, "right_eye": 35.1}
SHIFT_C = {
    "fear": {"nose": -1.2, "forehead": 0.3, "left_eye": 0.5, "right_eye": 0.4},
    "happiness": {"nose": -0.4, "forehead": 0.15, "left_eye": 0.2, "right_eye": 0.2},
    "neutral": dict.fromkeys(THERMAL_ROIS, 0.0),
}
SUBJECTS = {"s1": (1.0, 0.0), "s2": (0.9, 1.5), "s3": (0.8, -2.0)}  # shift factor, offset °C
TOLERANCE_C = 0.05
REPO = Path(__file__).resolve().parents[2]


def _planted(subject: str, condition: str) -> dict[str, float]:
    factor, offset = SUBJECTS[subject]
    shift = SHIFT_C.get(condition, dict.fromkeys(THERMAL_ROIS, 0.0))
    return {roi: BASELINE_C[roi] + offset + factor * shift[roi] for roi in THERMAL_ROIS}


def _write_sessions(folder: Path) -> None:
    spec = ThermalFaceSpec(glasses_fraction=0.15, hair_fraction=0.15, noise_c=0.045)
    for number, subject in enumerate(SUBJECTS):
        segments = [
            PlantedSegment(condition, _planted(subject, condition), 1.5)
            for condition in ("baseline", "neutral", "fear", "happiness")
        ]
        session = synthetic_session(subject, segments, spec, seed=10 * number)
        if subject == "s2":  # this one carries landmarks (a shape predictor) instead of boxes
            assert session.face_boxes is not None
            marks = np.stack([landmarks_from_box_row(row) for row in session.face_boxes])
            session = ThermalRecording(
                session.frames, session.ts_s, session.metadata, session.segments,
                landmarks=marks.astype(np.float32),
            )  # fmt: skip
        write_recording(folder / f"{subject}.npz", session, units="centikelvin")


def landmarks_from_box_row(row: np.ndarray) -> np.ndarray:
    return landmarks_from_box(Box(*(float(v) for v in row)))


def test_table1_reproduced_from_synthetic_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions, out = tmp_path / "sessions", tmp_path / "out"
    sessions.mkdir()
    _write_sessions(sessions)
    assert main(["table", str(sessions), "--out", str(out)]) == 0
    table = table1(load_rows(sessions))
    assert table.conditions == ("baseline", "neutral", "fear", "happiness")
    worst = 0.0
    for subject in SUBJECTS:
        for roi in THERMAL_ROIS:
            row = table.row(subject, roi)
            for condition in table.conditions:
                worst = max(worst, abs(row.mean_c[condition] - _planted(subject, condition)[roi]))
            for condition in ("fear", "happiness"):
                planted = SUBJECTS[subject][0] * SHIFT_C[condition][roi]
                worst = max(worst, abs(row.minus_baseline_c[condition] - planted))
    for roi in THERMAL_ROIS:
        overall = table.row(OVERALL, roi)
        for condition in ("fear", "happiness"):
            planted = 0.9 * SHIFT_C[condition][roi]  # the mean of the factors 1.0, 0.9, 0.8
            worst = max(worst, abs(overall.minus_baseline_c[condition] - planted))
    markdown = (out / "table1.md").read_text()
    print(f"\nTable 1 from synthetic sessions; worst error {worst:.4f} °C\n{markdown}")
    assert worst <= TOLERANCE_C
    assert "| s1 | nose |" in markdown and (out / "table1.csv").read_text().startswith(
        "subject,roi"
    )


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.csv"
    path.write_text(text)
    return path


def test_table1_from_a_tidy_csv(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "subject,condition,roi,temp_c\n"
        "A,baseline,nose,33.0\nA,baseline,nose,33.2\nA,Fear,nose,32.0\nA,happiness,nose,32.8\n"
        "B,baseline,nose,34.0\nB,fear,nose,33.4\n",
    )
    table = table1(read_table(path))
    a, b, overall = (table.row(s, "nose") for s in ("A", "B", OVERALL))
    assert a.mean_c["baseline"] == pytest.approx(33.1) and a.count["baseline"] == 2
    assert a.minus_baseline_c["fear"] == pytest.approx(-1.1)
    assert a.minus_baseline_c["happiness"] == pytest.approx(-0.3)
    assert b.minus_baseline_c["fear"] == pytest.approx(-0.6)
    assert np.isnan(b.minus_baseline_c["happiness"])
    assert overall.minus_baseline_c["fear"] == pytest.approx(-0.85)
    assert overall.minus_baseline_c["happiness"] == pytest.approx(-0.3)
    assert "| B | nose | 34.00 | 33.40 | n/a | -0.60 | n/a |" in to_markdown(table)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subject,roi,temp_c\nA,nose,33\n", "lacks column(s) condition"),
        (
            "subject,condition,roi,temp_c\nA,baseline,nose,33\nA,fear,nose,warm\n",
            "line 3: temp_c 'warm' is not a number",
        ),
        (
            "subject,condition,roi,temp_c\nA,baseline,nose,306.2\n",
            "line 2: temp_c 306.2 is outside",
        ),
        ("subject,condition,roi,temp_c\nA,baseline,nose,nan\n", "line 2: temp_c nan is outside"),
        ("subject,condition,roi,temp_c\n,baseline,nose,33\n", "line 2: subject is empty"),
        ("subject,condition,roi,temp_c\n", "no rows"),
    ],
)
def test_bad_tables_give_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        read_table(_csv(tmp_path, text))
    assert "\n" not in str(info.value)


def test_table1_needs_a_baseline_and_a_free_overall_name() -> None:
    with pytest.raises(DatasetError, match="baseline"):
        table1([ThermalRow("A", "fear", "nose", 33.0)])
    with pytest.raises(DatasetError, match="overall"):
        table1([ThermalRow("overall", "baseline", "nose", 33.0)])


def test_sessions_without_subject_or_faces_are_refused(tmp_path: Path) -> None:
    temps = _planted("s1", "baseline")
    session = synthetic_session("s1", [PlantedSegment("baseline", temps, 0.3)], fps_hz=10.0)
    anonymous = ThermalRecording(
        session.frames, session.ts_s, {}, session.segments, session.face_boxes
    )
    with pytest.raises(DatasetError, match=r"metadata\.subject"):
        load_rows(write_recording(tmp_path / "anon.npz", anonymous))
    faceless = ThermalRecording(session.frames, session.ts_s, session.metadata, session.segments)
    with pytest.raises(DatasetError, match="no labelled frame with a measurable face"):
        load_rows(write_recording(tmp_path / "faceless.npz", faceless))
    with pytest.raises(DatasetError, match="neither"):
        load_rows(_csv(tmp_path, "x").rename(tmp_path / "table.txt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no thermal sessions"):
        load_rows(empty)


def test_module_runs_as_a_command(tmp_path: Path) -> None:
    path = _csv(tmp_path, "subject,condition,roi,temp_c\nA,baseline,nose,33\nA,fear,nose,32\n")
    ok = subprocess.run(
        [sys.executable, "-m", "trainer.thermal", "table", str(path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o" / "table1.md").is_file()
    bad = main(["table", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")])
    assert bad == DatasetError.exit_code
