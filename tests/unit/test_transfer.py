"""The FER2013 → BAUM-1 transfer on real data: a FER2013 slice and a BAUM-1-shaped tree.

The tree is made of the real sample face videos (``../shared/assets/video_rgb``): three subjects,
each with a short clip labelled happiness, a long clip labelled sadness and a short clip
labelled contempt (→ anger by the paper's merge map); one boredom clip has no FER2013 class.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from trainer.cli import main
from trainer.datasets.common import load_merge_map
from trainer.errors import EX_USAGE, DatasetError, UsageError
from trainer.evaluate import LabelledFeatures, parallel_backend
from trainer.report import SMILE
from trainer.transfer import (
    BASELINE,
    COMBINED,
    CONDITIONS,
    PRUNED,
    ZERO_SHOT,
    FeatureRule,
    TransferResult,
    TransferSettings,
    fit_plan,
    load_rules,
    rules_from_data,
    run_transfer,
)
from trainer.video_features import VideoExtractionConfig
from trainer.workflows import Frames, load_frames

ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets"
SHORT_VIDEO = ASSETS / "video_rgb" / "pyfeat_single_face.mp4"  # 30 fps, 72 frames
LONG_VIDEO = ASSETS / "video_rgb" / "pyfeat_WolfgangLanger_Pexels.mp4"  # 23.976 fps, 472 frames
HEADER = ["Number", "Subject Label", "Clip", "Clip Name", "Emotion", "Emotion Code", "Gender"]
CODES = {"happiness": 8, "sadness": 10, "contempt": 5, "boredom": 2}
FULL_TREE = {
    "S001": [("happiness", SHORT_VIDEO), ("sadness", LONG_VIDEO), ("contempt", SHORT_VIDEO)],
    "S002": [("happiness", SHORT_VIDEO), ("sadness", LONG_VIDEO), ("boredom", SHORT_VIDEO)],
    "S003": [("happiness", SHORT_VIDEO), ("sadness", LONG_VIDEO), ("contempt", SHORT_VIDEO)],
}
THRESHOLD = 0.3
RF = {"n_estimators": 15, "n_jobs": 1}


def build_tree(root: Path, subjects: dict[str, list[tuple[str, Path]]]) -> Path:
    """``BAUM1s_MP4 - All/Sxxx/Sxxx_yyy.mp4`` links and a CSV export of the annotation sheet."""
    videos = root / "BAUM1s_MP4 - All"
    rows: list[list[object]] = [HEADER]
    for subject, clips in subjects.items():
        (videos / subject).mkdir(parents=True)
        for number, (label, video) in enumerate(clips, start=1):
            clip = f"{subject}_{number:03d}"
            (videos / subject / f"{clip}.mp4").symlink_to(video)
            rows.append([len(rows), subject, number, clip, label.title(), CODES[label], "F"])
    with (root / "Annotations_BAUM1s.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return root


def video_config(landmarker_path: Path, cache: Path) -> VideoExtractionConfig:
    return VideoExtractionConfig(landmarker_path, cache_dir=cache, jobs=1, progress=False)


@pytest.fixture(autouse=True, scope="module")
def one_openmp_thread() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def frames(landmarker_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Frames:
    root = build_tree(tmp_path_factory.mktemp("baum"), FULL_TREE)
    config = video_config(landmarker_path, tmp_path_factory.mktemp("video-cache"))
    return load_frames("baum1s", root, load_merge_map("paper"), video_config=config)


@pytest.fixture(scope="module")
def fer(fer_slice: object, fer_slice_features: object) -> LabelledFeatures:
    return LabelledFeatures(
        fer_slice_features.values,  # type: ignore[attr-defined]
        fer_slice_features.face_found,  # type: ignore[attr-defined]
        fer_slice.labels,  # type: ignore[attr-defined]
        fer_slice.usage,  # type: ignore[attr-defined]
        fer_slice.class_names,  # type: ignore[attr-defined]
    )


@pytest.fixture(scope="module")
def settings() -> TransferSettings:
    return TransferSettings(
        model="random_forest", model_params=RF, threshold=THRESHOLD, n_boot=100, progress=False
    )


@pytest.fixture(scope="module")
def outcome(
    fer: LabelledFeatures,
    fer_slice_features: object,
    frames: Frames,
    settings: TransferSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> TransferResult:
    names = fer_slice_features.feature_names  # type: ignore[attr-defined]
    out = tmp_path_factory.mktemp("transfer")
    return run_transfer(fer, names, frames.table, settings, out, command=["test"])


def test_sources_share_classes_and_columns(outcome: TransferResult, frames: Frames) -> None:
    domains = outcome.domains
    assert domains.classes == ("anger", "happiness", "sadness")  # angry/happy/sad on FER's side
    assert outcome.results["left_out_labels"]["target"] == {"boredom": 24}
    assert set(outcome.results["left_out_labels"]["fer"]) == {
        "disgust",
        "fear",
        "surprise",
        "neutral",
    }
    assert domains.feature_names == frames.table.feature_names
    assert len(domains.target.labels) == len(frames.table) - 24
    fer_names = {domains.classes[k] for k in np.unique(domains.fer.labels)}
    assert fer_names == set(domains.classes)


def _independent_confidence(outcome: TransferResult) -> np.ndarray:
    """The FER model refitted here with scikit-learn alone: P(frame's own label)."""
    from sklearn.ensemble import RandomForestClassifier

    fer, target = outcome.domains.fer, outcome.domains.target
    model = RandomForestClassifier(random_state=0, **RF)
    model.fit(fer.values[fer.face_found], fer.labels[fer.face_found])
    proba = model.predict_proba(np.nan_to_num(target.values))
    return proba[np.arange(len(target.labels)), target.labels]


def test_pruning_keeps_exactly_the_confident_frames_that_pass_the_rules(
    outcome: TransferResult,
) -> None:
    target, pruning = outcome.domains.target, outcome.pruning
    confidence = _independent_confidence(outcome)
    found = target.face_found
    names = list(outcome.domains.feature_names)
    smile = target.values[:, [names.index(n) for n in SMILE]].mean(axis=1)
    happy = target.labels == outcome.domains.classes.index("happiness")
    expected = found & (confidence >= THRESHOLD) & (~happy | (smile >= 0.3))
    assert np.array_equal(pruning.kept, expected)
    assert np.all(confidence[pruning.kept] >= THRESHOLD)  # never a frame below the threshold
    assert np.all(smile[pruning.kept & happy] >= 0.3)
    summary = outcome.results["pruning"]
    assert summary["kept"] == int(expected.sum()) and summary["kept"] > 0
    assert summary["pruned"] == int(found.sum()) - summary["kept"] > 0
    assert sum(c["pruned"] for c in summary["per_class"].values()) == summary["pruned"]
    print(f"\npruning on the sample tree: {json.dumps(summary, indent=1)}")


def test_loso_never_trains_on_the_test_subject(outcome: TransferResult) -> None:
    loso = outcome.protocols["loso"]
    target = outcome.domains.target
    subjects = np.asarray(target.subjects)
    runs = loso.runs
    assert set(runs) == set(CONDITIONS)
    for condition, run in runs.items():
        assert np.array_equal(run.test_rows, runs[BASELINE].test_rows)  # same test frames
        for k, plan in enumerate(loso.plans[condition]):
            tested = set(subjects[run.test_rows[run.fold_index == k]].tolist())
            assert len(tested) == 1
            assert tested.isdisjoint(subjects[plan.target_rows].tolist())
            assert tested.isdisjoint(run.folds[k]["target_train_subjects"])
    assert sorted(runs[BASELINE].fold_names) == ["S001", "S002", "S003"]


def test_fer_plus_pruned_model_is_fitted_on_both_sources(outcome: TransferResult) -> None:
    context_free = outcome.protocols["person_specific"]
    target, kept = outcome.domains.target, outcome.pruning.kept
    n_fer = int(outcome.domains.fer.face_found.sum())
    for condition in (COMBINED, PRUNED, ZERO_SHOT, BASELINE):
        for fold, plan in zip(
            context_free.runs[condition].folds, context_free.plans[condition], strict=True
        ):
            assert fold["n_train_fer"] == (n_fer if condition != BASELINE else 0)
            assert fold["n_train_target"] == len(plan.target_rows)
            assert target.face_found[plan.target_rows].all()
            if condition == PRUNED:
                assert kept[plan.target_rows].all()
    pruned_folds = context_free.runs[PRUNED].folds
    combined_folds = context_free.runs[COMBINED].folds
    assert all(f["n_train_target"] > 0 for f in pruned_folds)
    assert sum(f["n_target_pruned"] for f in pruned_folds) > 0
    for pruned, combined in zip(pruned_folds, combined_folds, strict=True):
        assert pruned["n_train_target"] + pruned["n_target_pruned"] == combined["n_train_target"]
    assert all(f["n_train_target"] == 0 for f in context_free.runs[ZERO_SHOT].folds)


def test_the_fitted_forest_saw_every_fer_face_and_every_kept_frame(
    outcome: TransferResult, settings: TransferSettings
) -> None:
    from trainer.transfer import Context, _zero_shot, fit_fer

    domains = outcome.domains
    fer_model = fit_fer(domains, settings)
    context = Context(domains, settings, fer_model, outcome.pruning, _zero_shot(fer_model, domains))
    plan = outcome.protocols["loso"].plans[PRUNED][0]
    model = fit_plan(context, plan)
    seen = model[-1].estimators_[0].tree_.weighted_n_node_samples[0]  # bootstrap draws = rows
    assert seen == int(domains.fer.face_found.sum()) + len(plan.target_rows)
    assert len(plan.target_rows) > 0


def test_files_report_every_condition_and_the_pruned_count(outcome: TransferResult) -> None:
    files = outcome.files
    metrics = json.loads(files["metrics"].read_text())
    assert set(metrics["protocols"]) == {"loso", "person_specific"}
    for block in metrics["protocols"].values():
        assert set(block["conditions"]) == set(CONDITIONS)
        assert set(block["significance"]["vs_baum_only"]) == {ZERO_SHOT, COMBINED, PRUNED}
    person = metrics["protocols"]["person_specific"]["conditions"][BASELINE]
    assert len(person["folds"]) == 3 * 5
    text = files["markdown"].read_text()
    pruning = metrics["pruning"]
    assert f"Kept {pruning['kept']:,} of {pruning['frames_with_face']:,}" in text
    assert f"pruned {pruning['pruned']:,}" in text
    for condition in CONDITIONS:
        assert f"| {condition} |" in text
    assert "| majority class |" in text and "## loso" in text and "## person_specific" in text
    manifest = json.loads(files["manifest"].read_text())
    assert manifest["command"] == ["test"] and manifest["settings"]["threshold"] == THRESHOLD
    assert manifest["settings"]["rules"][0]["features"] == list(SMILE)
    print("\n" + text)


def test_two_loky_jobs_give_the_same_results_as_one(
    outcome: TransferResult,
    fer: LabelledFeatures,
    fer_slice_features: object,
    frames: Frames,
    settings: TransferSettings,
) -> None:
    """``outcome`` ran its folds one at a time (no joblib config: 1 job); here 2 loky workers."""
    names = fer_slice_features.feature_names  # type: ignore[attr-defined]
    with parallel_backend("loky", n_jobs=2):
        twin = run_transfer(fer, names, frames.table, settings)
    assert list(twin.protocols) == list(outcome.protocols)
    for name, result in outcome.protocols.items():
        other = twin.protocols[name]
        assert list(other.runs) == list(result.runs) == list(CONDITIONS)
        for condition, run in result.runs.items():
            again = other.runs[condition]
            for field in ("test_rows", "fold_index", "predicted", "baseline"):
                assert np.array_equal(getattr(run, field), getattr(again, field)), field
            assert _text({"folds": again.folds}) == _text({"folds": run.folds})
            rows = [plan.target_rows.tolist() for plan in result.plans[condition]]
            assert [plan.target_rows.tolist() for plan in other.plans[condition]] == rows
    assert _text(twin.results) == _text(outcome.results)  # all of metrics.json


def _text(results: dict[str, object]) -> str:
    return json.dumps(results, sort_keys=True, default=str)


def test_an_unknown_backend_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["transfer", "--kind", "baum1s", "--target", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*argv, "--backend", "spark", "--fold-jobs", "2"]) == EX_USAGE
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("emotion-trainer: ")
    assert "--backend: invalid choice: 'spark'" in err[0] and "loky" in err[0]
    assert not (tmp_path / "o").exists()


def test_rules_are_data(tmp_path: Path) -> None:
    assert load_rules(None) == load_rules("default")
    assert load_rules("none") == ()
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rules]]\nlabel = "Happy"\nfeatures = ["blendshape.mouthSmileLeft"]\nmin = 0.5\n'
        '[[rules]]\nlabel = "sadness"\nfeatures = ["blendshape.mouthSmileLeft"]\nmax = 0.2\n'
    )
    happy, sad = load_rules(path)
    assert (happy.label, happy.min, happy.max) == ("happy", 0.5, None)
    assert (sad.label, sad.max) == ("sadness", 0.2)
    values = np.array([[0.6], [0.4], [np.nan]])
    names = ["blendshape.mouthSmileLeft"]
    assert happy.holds(values, names).tolist() == [True, False, False]
    assert sad.holds(values, names).tolist() == [False, False, False]
    with pytest.raises(UsageError, match="unknown feature"):
        FeatureRule("happy", ("smile",), min=0.1).holds(values, names)
    with pytest.raises(UsageError, match="needs a min or a max"):
        rules_from_data([{"label": "happy", "features": ["x"]}])
    with pytest.raises(UsageError, match="unknown keys"):
        rules_from_data([{"label": "happy", "features": ["x"], "min": 1, "above": 2}])
    with pytest.raises(UsageError, match="does not exist"):
        load_rules(tmp_path / "none.toml")


def test_an_alias_named_rule_prunes_frames_with_aliased_labels(
    outcome: TransferResult, fer: LabelledFeatures, fer_slice_features: object, frames: Frames
) -> None:
    """A rule written with FER's name (``happy``) applies to BAUM's ``happiness`` frames."""
    rules = rules_from_data([{"label": "happy", "features": list(SMILE), "min": 2.0}])
    settings = TransferSettings(
        model="random_forest",
        model_params=RF,
        threshold=0.0,
        rules=rules,
        protocols=("loso",),
        conditions=(PRUNED,),
        n_boot=20,
        progress=False,
    )
    names = fer_slice_features.feature_names  # type: ignore[attr-defined]
    result = run_transfer(fer, names, frames.table, settings)
    happy = result.domains.target.labels == result.domains.classes.index("happiness")
    assert not result.pruning.kept[happy].any()  # no smile reaches 2.0
    assert result.pruning.kept[~happy & result.domains.target.face_found].all()
    assert result.files == {}  # nothing written without out_dir


def test_bad_settings_and_too_few_shared_classes(
    fer: LabelledFeatures, fer_slice_features: object, frames: Frames
) -> None:
    names = fer_slice_features.feature_names  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match=r"must lie in 0\.\.1"):
        run_transfer(fer, names, frames.table, TransferSettings(threshold=1.5))
    with pytest.raises(UsageError, match="conditions must be"):
        run_transfer(fer, names, frames.table, TransferSettings(conditions=("both",)))
    table = frames.table
    sad = table.labels == "sadness"
    from dataclasses import replace

    only_sad = replace(
        table,
        values=table.values[sad],
        subjects=table.subjects[sad],
        labels=table.labels[sad],
        clips=table.clips[sad],
        times=table.times[sad],
        face_found=table.face_found[sad],
    )
    with pytest.raises(DatasetError, match="share 1 class"):
        run_transfer(fer, names, only_sad, TransferSettings(progress=False))
