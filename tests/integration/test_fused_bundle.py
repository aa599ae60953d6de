"""The fused bundle end to end on a small real FER2013 slice: trainer builds, device runs it."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from device.bench import blendshape_only
from device.classify import ClassifyOptions, run_classify
from device.errors import ModelMismatch
from device.inference.bundle import FusedModel, read_bundle
from device.inference.classifier import ModelHolder, OnnxClassifier, load_rgb_model
from device.inference.golden import GOLDEN_ROWS, GOLDEN_SEED
from device.publish.base import check_status
from trainer.cnn import CnnConfig
from trainer.errors import UsageError
from trainer.extract import ExtractionConfig
from trainer.fused import FusedData, build_fused, ferplus_labels, format_report, load_fused_data

FACES = Path(__file__).resolve().parents[3] / "shared" / "assets" / "faces_rgb"
PER_CLASS = {"Training": 24, "PublicTest": 8, "PrivateTest": 6}


@pytest.fixture(scope="module")
def small_fer(fer_npz_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with np.load(fer_npz_path) as raw:
        data = {key: raw[key] for key in raw.files}
    rows = [
        np.flatnonzero((data["labels"] == label) & (data["usage"] == usage))[:count]
        for label in range(7)
        for usage, count in PER_CLASS.items()
    ]
    keep = np.sort(np.concatenate(rows))
    path = tmp_path_factory.mktemp("fer") / "small.npz"
    np.savez(
        path,
        **{k: v[keep] for k, v in data.items() if len(v) == len(data["labels"])},
        class_names=data["class_names"],
        ferplus_columns=data["ferplus_columns"],
    )
    return path


def quiet_extraction(landmarker_path: Path, cache_dir: Path) -> ExtractionConfig:
    """One process, no timing sample, no bar: feature extraction as the tests want it."""
    return ExtractionConfig(
        landmarker_path=landmarker_path,
        cache_dir=cache_dir,
        jobs=1,
        timing_sample=0,
        progress=False,
    )


@pytest.fixture(scope="module")
def built(
    small_fer: Path, landmarker_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("bundle")
    extraction = quiet_extraction(landmarker_path, root / "cache")
    config = CnnConfig(epochs=2, batch_size=32, threads=1, progress=False)
    report = build_fused(small_fer, root / "out", root / "work", extraction, config)
    return root / "out" / "fer2013_fused.json", report


@pytest.fixture(scope="module")
def built_data(
    built: tuple[Path, dict], small_fer: Path, landmarker_path: Path
) -> tuple[FusedData, Path]:
    """The small slice's features and crops (from ``built``'s cache), and the bundle's CNN."""
    bundle, _ = built
    cnn = bundle.parent / read_bundle(bundle).files["cnn"]["file"]
    extraction = quiet_extraction(landmarker_path, bundle.parents[1] / "cache")
    return load_fused_data(small_fer, extraction), cnn


def test_bundle_files_manifest_and_budget(built: tuple[Path, dict]) -> None:
    bundle, report = built
    manifest = read_bundle(bundle)
    assert set(manifest.files) == {"blendshapes", "cnn", "stacker"}
    assert manifest.crop == {"size": 48, "eye_distance": 0.36, "eye_line": 0.39, "version": 3}
    assert manifest.labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert report["sizes_bytes"]["total"] <= 5_000_000
    assert report["cnn_parity"]["max_abs_diff"] < 1e-4
    assert report["bundle_parity"]["rows"] > 0 and report["bundle_parity"]["max_abs_diff"] < 1e-4
    assert report["cnn_training"]["epochs_run"] == 2
    scores = report["fer2013"]
    assert scores["fused"]["all_rows"]["n"] == 7 * PER_CLASS["PrivateTest"]
    assert scores["fused"]["faces"]["n"] < scores["fused"]["all_rows"]["n"] + 1
    assert "fused" in format_report(report)


def test_device_loads_the_bundle_and_refuses_a_changed_file(built: tuple[Path, dict]) -> None:
    bundle, _ = built
    model = load_rgb_model(bundle)
    assert isinstance(model, FusedModel) and model.labels[3] == "happy"
    cnn_file = bundle.parent / read_bundle(bundle).files["cnn"]["file"]
    original = cnn_file.read_bytes()
    try:
        cnn_file.write_bytes(original + b"\0")
        with pytest.raises(ModelMismatch, match="sha256"):
            FusedModel(bundle)
    finally:
        cnn_file.write_bytes(original)


def test_bundle_carries_golden_answers_that_this_cpu_reproduces(built: tuple[Path, dict]) -> None:
    bundle, report = built
    golden = read_bundle(bundle).golden
    assert golden["seed"] == GOLDEN_SEED and golden["rows"] == GOLDEN_ROWS
    assert {c: len(rows) for c, rows in golden["outputs"].items()} == {
        "blendshapes": GOLDEN_ROWS,
        "cnn": GOLDEN_ROWS,
        "stacker": GOLDEN_ROWS,
    }
    model = load_rgb_model(bundle)
    assert isinstance(model, FusedModel) and model.check == "ok"
    assert max(model.self_check().diffs.values()) < 1e-4
    precision = report["cnn_precision"]
    assert precision["precision"] == "float32"  # the default: the same answer on every CPU
    assert precision["optimized_vs_reference_private_test"]["max_abs_diff"] < 1e-3


def _bundle_answering(built: tuple[Path, dict], folder: Path, component: str) -> Path:
    """A copy of the bundle whose golden answers for ``component`` are what another CPU's
    kernel might say (each row's probabilities rotated by one class)."""
    bundle, _ = built
    shutil.copytree(bundle.parent, folder)
    path = folder / bundle.name
    raw = json.loads(path.read_text())
    rows = np.asarray(raw["golden"]["outputs"][component])
    raw["golden"]["outputs"][component] = np.roll(rows, 1, axis=1).tolist()
    path.write_text(json.dumps(raw))
    return path


def test_a_cpu_that_answers_differently_runs_the_blendshape_model_alone(
    built: tuple[Path, dict], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _bundle_answering(built, tmp_path / "bundle", "cnn")
    with caplog.at_level(logging.ERROR, logger="device.inference.classifier"):
        model = load_rgb_model(path)
    assert isinstance(model, OnnxClassifier) and model.name.startswith("fer2013_blendshapes")
    assert model.check == "failed: cnn; blendshapes alone"
    check_status({"model": model.name, "model_check": model.check})  # fits the status message
    (record,) = caplog.records
    assert "golden inputs differently" in record.getMessage() and "cnn" in record.getMessage()
    holder = ModelHolder(built[0])  # a good bundle, then a reload onto the differing one
    assert isinstance(holder.current, FusedModel) and holder.current.check == "ok"
    assert holder.reload(path) and isinstance(holder.current, OnnxClassifier)


def test_a_cpu_whose_blendshape_model_differs_refuses_the_bundle(
    built: tuple[Path, dict], tmp_path: Path
) -> None:
    path = _bundle_answering(built, tmp_path / "bundle", "blendshapes")
    with pytest.raises(ModelMismatch, match=r"golden inputs differently.*blendshape model too"):
        load_rgb_model(path)


def test_build_fused_from_an_exported_int8_cnn_stacks_it_in_float(
    built: tuple[Path, dict], small_fer: Path, landmarker_path: Path, tmp_path: Path
) -> None:
    from trainer.quantize import calibration_sample, quantize_cnn

    bundle, _ = built
    float_cnn = bundle.parents[1] / "work" / "cnn_float32.onnx"
    with np.load(small_fer) as raw:
        calibration = calibration_sample(raw["images"], seed=0, rows=100)
    int8_cnn = tmp_path / "int8.onnx"
    quantize_cnn(float_cnn, int8_cnn, calibration)
    extraction = quiet_extraction(landmarker_path, bundle.parents[1] / "cache")
    config = CnnConfig(epochs=2, batch_size=32, threads=1, progress=False)
    out, work = tmp_path / "out", tmp_path / "work"
    report = build_fused(small_fer, out, work, extraction, config, cnn_from=int8_cnn)
    assert report["cnn_training"]["from"] == "int8.onnx" and "epochs_run" not in report
    assert report["cnn_parity"]["rows"] > 0 and report["cnn_parity"]["max_abs_diff"] < 0.5
    assert report["cnn_precision"]["precision"] == "float32"
    model = load_rgb_model(out / "fer2013_fused.json")
    assert isinstance(model, FusedModel) and model.check == "ok"
    assert model.manifest.training_data["cnn_from"]["from"] == "int8.onnx"
    assert "from int8.onnx" in format_report(report)
    with pytest.raises(UsageError, match="drop it or drop --cnn-from"):
        build_fused(small_fer, out, work, extraction, config, cnn_from=int8_cnn, mirror=True)
    with pytest.raises(UsageError, match="does not exist"):
        build_fused(small_fer, out, work, extraction, config, cnn_from=tmp_path / "none.onnx")


def test_classify_runs_the_bundle_and_the_pre_cropped_path(
    built: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2

    bundle, _ = built
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((48, 48), 120, np.uint8))
    face = FACES / "pyfeat_0-f15-hao-ph.jpg"
    for pre_cropped in (False, True):
        options = ClassifyOptions(
            paths=[face, wall], model=bundle, as_json=True, pre_cropped=pre_cropped
        )
        assert run_classify(options) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["face"] for r in rows] == [True, False, True, False]
    assert rows[1] == {"path": str(wall), "label": "no_face", "probabilities": {}, "face": False}
    assert rows[3]["label"] in rows[3]["probabilities"]
    assert sum(rows[3]["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_ferplus_majority_maps_to_fer_classes(small_fer: Path) -> None:
    names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    labels = ferplus_labels(small_fer, names)
    with np.load(small_fer) as raw:
        votes, columns = raw["ferplus_votes"], list(raw["ferplus_columns"])
    happy = columns.index("happiness")
    clear_happy = votes[:, happy] > votes.sum(axis=1) / 2
    assert (labels[clear_happy] == 3).all()
    assert set(np.unique(labels)) <= set(range(-1, 7))


def test_build_fused_command_with_a_shape_cutout_mirror_margin_and_int8_weights(
    small_fer: Path, landmarker_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    from trainer.cli import main

    common = ["--data", str(small_fer), "--landmarker", str(landmarker_path)]
    common += ["--cache-dir", str(tmp_path / "cache"), "--jobs", "1", "--no-progress"]
    common += ["--face-margin", "0.25"]
    blend_args = ["--model", "logistic_regression", "--out", str(tmp_path / "blend")]
    assert main(["train", *common, *blend_args]) == 0
    blend = tmp_path / "blend" / "fer2013_blendshapes_logistic_regression.onnx"
    args = ["build-fused", *common, "--epochs", "1", "--erase", "0.5", "--mirror"]
    args += ["--cnn-precision", "int8-weights"]
    args += ["--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    shape = ["--channels", "8,1 16,1", "--ema", "0.9", "--ferplus-share", "0.5"]
    shape += ["--self-distil", "0.4", "--blendshape-model", str(blend)]
    shape += ["--stacker-labels", "ferplus"]
    assert main([*args, *shape, "--report", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    precision = report["cnn_precision"]
    assert precision["precision"] == "int8-weights"
    assert precision["optimized_vs_reference_private_test"]["max_abs_diff"] < 1e-3
    assert precision["int8_vs_float32_private_test"]["rows"] > 0
    assert report["cnn_training"]["config"]["channels"] == [[8, 1], [16, 1]]
    assert report["cnn_training"]["config"]["erase"] == 0.5
    assert report["cnn_training"]["config"]["ema"] == 0.9
    assert report["cnn_training"]["config"]["ferplus_share"] == 0.5
    assert report["cnn_training"]["config"]["self_distil"] == 0.4
    assert all("raw_val_accuracy" in h for h in report["cnn_training"]["history"])
    assert report["cnn_parameters"] < 5_000
    assert report["cnn_mirror"] is True
    model = FusedModel(tmp_path / "out" / "fer2013_fused.json")
    assert model.manifest.metrics["cnn_mirror"] is True
    assert model.blendshapes.name.startswith("fer2013_blendshapes_logistic_regression@")
    assert model.manifest.training_data["crop_extraction"]["face_margin"] == 0.25
    fitted = report["stacker_fitted_on"]
    extraction = quiet_extraction(landmarker_path, tmp_path / "cache")
    data = load_fused_data(small_fer, replace(extraction, face_margin=0.25))
    clear_votes = ferplus_labels(small_fer, data.prepared.dataset.class_names) >= 0
    public_faces = data.face_rows("PublicTest")
    assert fitted["labels"] == "ferplus"
    assert fitted["rows_with_face"] == clear_votes[public_faces].sum() < len(public_faces)
    assert "FER+ majority" in model.manifest.training_data["stacker"]
    assert set(model.manifest.metrics["ferplus_majority_private_test"]) == {
        "blendshapes",
        "cnn",
        "fused",
    }
    assert model.blendshapes.manifest.feature_extraction["face_margin"] == 0.25
    assert json.loads((tmp_path / "work" / "run.json").read_text())["face_margin"] == 0.25
    baseline = blendshape_only(model)  # bench measures it against the device's own HGB
    assert baseline is not None and baseline.name.startswith("fer2013_blendshapes_hgb@")
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    mirrored = np.ascontiguousarray(face[:, ::-1])
    assert np.allclose(model.predict_crop(face), model.predict_crop(mirrored), atol=1e-6)
    capsys.readouterr()
    other_run = [*args, "--channels", "8,1 8,1", "--blendshape-model", str(blend)]
    assert main(other_run) == 2  # another run's checkpoints: refused
    error = capsys.readouterr().err.strip()
    assert "other channels" in error and "--work-dir" in error and "\n" not in error
    unframed_hgb = [*args, "--work-dir", str(tmp_path / "fresh")]  # the device's HGB: margin 0
    assert main(unframed_hgb) == 2
    error = capsys.readouterr().err.strip()
    assert "trained with --face-margin 0, not 0.25" in error and "\n" not in error
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    for model, reason in ((tmp_path / "none.onnx", "does not exist"), (broken, "cannot be used")):
        fresh = ["--work-dir", str(tmp_path / "fresh"), "--blendshape-model", str(model)]
        assert main([*args, *fresh]) == 2  # before any training
        error = capsys.readouterr().err.strip()
        assert reason in error and "\n" not in error
    assert not (tmp_path / "fresh").exists()


def test_variants_script_scores_mirror_and_two_cnn_ensembles(
    built_data: tuple[FusedData, Path],
) -> None:
    import re

    from trainer.fused_variants import variants

    data, cnn = built_data
    lines = dict(variants(data, cnn, second_cnn=cnn))
    assert {"CNN alone, mirror", "two CNNs averaged", "two CNNs, mirror, C=0.1"} <= set(lines)
    for text in lines.values():
        accuracy, f1, faces = map(float, re.findall(r"\d\.\d{4}", text))
        assert 0.0 <= f1 <= 1.0 and 0.0 < accuracy <= 1.0 and 0.0 < faces <= 1.0
    # the same CNN twice: averaging it with itself changes nothing
    assert lines["two CNNs averaged"] == lines["CNN alone"]


def test_int8_variants_quantize_the_float_cnn_each_way(
    built: tuple[Path, dict], built_data: tuple[FusedData, Path], tmp_path: Path
) -> None:
    import re

    from trainer.fused_variants import INT8_VARIANTS, int8_variants

    float_cnn = built[0].parents[1] / "work" / "cnn_float32.onnx"
    lines = int8_variants(built_data[0], float_cnn, tmp_path)
    assert [name for name, _ in lines] == list(INT8_VARIANTS)
    for _, text in lines:
        scores = [float(v) for v in re.findall(r"\d\.\d{4}", text)]
        assert len(scores) == 6 and all(0.0 <= v <= 1.0 for v in scores)


def test_precision_variants_store_score_and_time_each_form(
    built: tuple[Path, dict], built_data: tuple[FusedData, Path], tmp_path: Path
) -> None:
    import re

    from trainer.fused_variants import precision_variants
    from trainer.precisions import PRECISIONS

    float_cnn = built[0].parents[1] / "work" / "cnn_float32.onnx"
    lines = dict(precision_variants(built_data[0], float_cnn, tmp_path))
    assert list(lines) == list(PRECISIONS)
    sizes = {name: int(text.split(" B")[0].replace(",", "")) for name, text in lines.items()}
    assert sizes["float32"] == float_cnn.stat().st_size
    assert all(sizes[name] < sizes["float32"] / 3 for name in PRECISIONS if name != "float32")
    for text in lines.values():
        accuracy, f1 = (
            float(v) for v in re.findall(r"all images (\d\.\d{4}) / (\d\.\d{4})", text)[0]
        )
        assert 0.0 <= f1 <= 1.0 and 0.0 <= accuracy <= 1.0
        assert re.search(
            r"max \|dp\| \d\.\de[-+]\d+, same class \d+\.\d\d% \| \d+\.\d{3} ms$", text
        )
    drift = re.compile(r"max \|dp\| (\S+),")
    assert float(drift.findall(lines["float32"])[0]) < 1e-4  # float kernels: the same answer


def test_blendshape_variants_train_time_and_score_each_model(
    built_data: tuple[FusedData, Path], tmp_path: Path
) -> None:
    import re

    from trainer.fused_variants import blendshape_variants

    data, cnn = built_data
    candidates = {
        "HGB 3x7": ("hist_gradient_boosting", {"max_iter": 3, "max_leaf_nodes": 7}),
        "HGB 12x7": ("hist_gradient_boosting", {"max_iter": 12, "max_leaf_nodes": 7}),
        "MLP": ("mlp", {"hidden_layer_sizes": (16,), "max_iter": 20}),
    }
    lines = blendshape_variants(data, cnn, tmp_path, candidates)
    assert [name for name, _ in lines] == list(candidates)
    sizes = [(tmp_path / f"blendshapes_{n}.onnx").stat().st_size for n in (0, 1)]
    assert sizes[0] < sizes[1]  # more trees, more bytes
    for _, text in lines:
        warm, cold = map(float, re.findall(r"(\d+\.\d{3}) / (\d+\.\d{3}) ms", text)[0])
        assert warm > 0.0 and cold > 0.0
        assert float(re.findall(r"log-loss (\d+\.\d{4})", text)[0]) > 0.0
        scores = [float(v) for v in re.findall(r"\d\.\d{4}", text.split("fused")[1])]
        assert len(scores) == 3 and all(0.0 < v <= 1.0 for v in scores)


def test_margin_variants_score_each_framing_and_each_group(
    built_data: tuple[FusedData, Path], small_fer: Path, landmarker_path: Path, tmp_path: Path
) -> None:
    import re
    from dataclasses import replace

    from trainer.fused_variants import margin_variants

    data, cnn = built_data
    extraction = replace(quiet_extraction(landmarker_path, tmp_path), face_margin=0.25)
    framed = load_fused_data(small_fer, extraction)
    assert framed.face.sum() > data.face.sum()  # the margin finds more of these faces
    lines = dict(margin_variants(data, framed, cnn))
    assert list(lines)[:3] == ["as it is", "framed", "hybrid"]
    private = data.usage == "PrivateTest"
    found = {}
    for name in ("as it is", "framed", "hybrid"):
        public_acc, private_acc, f1, found[name] = map(float, re.findall(r"\d\.\d{4}", lines[name]))
        assert 0.0 < public_acc <= 1.0 and 0.0 < private_acc <= 1.0 and 0.0 < f1 <= 1.0
    assert found["as it is"] == round(data.face[private].mean(), 4)
    assert found["framed"] == round(framed.face[private].mean(), 4)
    counts = [int(lines[g].split()[0]) for g in list(lines)[3:]]
    assert sum(counts) == private.sum()
    only_framed = ~data.face & framed.face & private
    assert counts[1] == only_framed.sum()


def test_device_answers_match_a_plain_session_and_are_not_overwritten(
    built: tuple[Path, dict],
) -> None:
    """The device's bound buffers give what a plain onnxruntime call gives, and each answer is
    its own array: the next call does not change the last one."""
    from trainer.cnn import cnn_probs

    bundle, _ = built
    model = FusedModel(bundle)
    cnn_file = bundle.parent / read_bundle(bundle).files["cnn"]["file"]
    crops = np.random.default_rng(3).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    first = model.predict_crop(crops[0])
    kept = first.copy()
    second = model.predict_crop(crops[1])
    assert np.array_equal(first, kept) and not np.allclose(first, second)
    assert np.allclose(np.stack([first, second]), cnn_probs(cnn_file, crops), atol=1e-6)


def test_stacker_variants_rank_by_public_test_log_loss(
    built_data: tuple[FusedData, Path],
) -> None:
    import re

    from trainer.fused import stacker_model
    from trainer.fused_variants import stacker_candidates, stacker_variants

    data, cnn = built_data
    assert len(stacker_candidates()) == 5
    candidates = {"weak": stacker_model(0.01), "strong": stacker_model(10.0)}
    lines = stacker_variants(data, cnn, candidates)
    assert [name for name, _ in lines] == ["weak", "strong"]
    for _, text in lines:
        assert float(re.findall(r"log-loss (\d+\.\d{4})", text)[0]) > 0.0
        scores = [float(v) for v in re.findall(r"\d\.\d{4}", text.split("fused")[1])]
        assert len(scores) == 3 and all(0.0 <= v <= 1.0 for v in scores)


def test_compare_cnns_gives_intervals_and_paired_differences(
    built: tuple[Path, dict], built_data: tuple[FusedData, Path]
) -> None:
    import re

    from trainer.fused_variants import compare_cnns

    _, report = built
    data, cnn = built_data
    first, same = compare_cnns(data, [cnn, cnn])
    interval = r"(\d\.\d{4}) \[(\d\.\d{4}), (\d\.\d{4})\]"
    accuracy, low, high = map(float, re.findall(interval, first[1])[0])
    assert low <= accuracy <= high
    assert accuracy == pytest.approx(report["fer2013"]["fused"]["all_rows"]["accuracy"], abs=1e-4)
    assert "vs first" not in first[1]
    loss = float(re.findall(r"PublicTest log-loss (\d\.\d{4})", first[1])[0])
    by_c = report["stacker_fitted_on"]["cv_log_loss_by_C"]
    assert loss == pytest.approx(min(by_c.values()), abs=1e-4)  # the number bundles are chosen by
    assert "vs first +0.0000 [+0.0000, +0.0000], McNemar p 1.000" in same[1]  # a CNN against itself


def test_label_set_variants_score_both_stackers_on_both_label_sets(
    built: tuple[Path, dict], built_data: tuple[FusedData, Path], small_fer: Path
) -> None:
    import re

    from trainer.fused import ferplus_labels
    from trainer.fused_variants import label_set_variants

    _, report = built
    data, cnn = built_data
    ferplus = ferplus_labels(small_fer, data.prepared.dataset.class_names)
    on_fer, on_plus = label_set_variants(data, ferplus, [cnn])
    assert on_fer[0].endswith("on FER2013") and on_plus[0].endswith("on FER+")
    fer, plus = (float(v) for v in re.findall(r"FER\S* (\d\.\d{4}) /", on_fer[1]))
    assert fer == pytest.approx(report["fer2013"]["fused"]["all_rows"]["accuracy"], abs=1e-4)
    assert plus == pytest.approx(
        report["ferplus_majority"]["fused"]["all_rows"]["accuracy"], abs=1e-4
    )
    assert len(re.findall(r"\d\.\d{4} / \d\.\d{4}", on_plus[1])) == 2
