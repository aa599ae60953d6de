"""Stacker variants on the same probabilities: what was tried before the bundle was fixed.

    python -m trainer.fused_variants [--cnn device/models/fer2013_crop_cnn.onnx]

Needs ``EMOTION_EDGE_FER2013`` and the landmarker (asset mirror); features and crops come from the
cache that ``emotion-trainer build-fused`` filled. Prints PrivateTest accuracy / macro-F1 over all
images (no face: the CNN alone, as ``classify --pre-cropped``) and on faces, for: the stacker at
C = 0.1 and 1, with the CNN's answer averaged with its answer on the mirrored crop ("mirror"),
and with the 70 raw features added to the stacker's inputs; with ``--second-cnn`` also two CNNs
(both in the stacker), with and without the mirror. ``--int8-from FLOAT.onnx`` (the float export
``build-fused`` leaves in its work dir as ``cnn_float32.onnx``) scores ways of quantizing it.
``--blendshape-models`` trains other blendshape models (``BLENDSHAPE_CANDIDATES``: smaller HGBs, an
MLP, a logistic regression) and prints each one's ONNX size, time per face (warm and cache-cold),
the stacker's PublicTest CV log-loss and the fused score with ``--cnn``: what a cheaper blendshape
model in the bundle would cost in accuracy. ``--stackers`` scores non-linear stackers (pairwise
products, a small HGB, an MLP) against the shipped logistic regression, by PublicTest CV log-loss.
``--label-sets CNN...`` stacks each CNN on PublicTest's FER2013 labels and on its FER+ majority
votes and scores both on PrivateTest against both label sets.
``--margins`` runs the recipe on FER2013 as it is, framed by a mid-grey margin (``--face-margin``,
0.25 unless given) and framed only where no face is found as it is, with ``--cnn``.
``--compare CNN...`` stacks each CNN as ``build-fused`` does and gives its PrivateTest accuracy with
a 95 % bootstrap interval and its paired difference from the first (interval, McNemar p).
``--precisions FLOAT.onnx`` stores that float CNN in each of ``trainer.precisions.PRECISIONS`` and
gives, per form: size, fused PrivateTest accuracy / macro-F1 over all images (stacked as
``build-fused`` does, on the reference execution's answers), then this CPU's optimized kernels
against that reference (max |Δp|, same class) and ms per face: the table in docs/fused.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import accuracy_score, f1_score

from device.assets import AssetResolver
from device.features.framing import FACE_MARGIN
from device.inference.classifier import (
    BUILTIN_BLENDSHAPES,
    MODELS_DIR,
    OnnxClassifier,
    open_session,
)
from trainer.cnn import cnn_probs
from trainer.cnn_latency import warm_and_cold_ms
from trainer.export import INPUT_NAME as FEATURES_INPUT
from trainer.export import to_onnx
from trainer.extract import ExtractionConfig
from trainer.fused import (
    FusedData,
    blendshape_probs,
    ferplus_labels,
    fit_stacker,
    load_fused_data,
    stack_inputs,
    stacker_folds,
    stacker_model,
)
from trainer.precisions import PRECISIONS
from trainer.quantize import calibration_sample, quantize_cnn, store_cnn
from trainer.train import build_model

Probs = npt.NDArray[np.float32]


def score(data: FusedData, fused: Probs, cnn_alone: Probs) -> str:
    private = data.rows("PrivateTest")
    face, truth = data.face[private], data.labels[private]
    predicted = np.where(face, fused[private].argmax(1), cnn_alone[private].argmax(1))
    acc = accuracy_score(truth, predicted)
    f1 = f1_score(truth, predicted, average="macro")
    faces = accuracy_score(truth[face], predicted[face])
    return f"all images {acc:.4f} / {f1:.4f}, faces {faces:.4f}"


def variants(
    data: FusedData, cnn_path: Path, second_cnn: Path | None = None
) -> list[tuple[str, str]]:
    view = data.device_view()
    blend = blendshape_probs(OnnxClassifier(BUILTIN_BLENDSHAPES), data)
    cnn, mirror = with_mirror(cnn_path, view)
    raw = np.nan_to_num(data.prepared.features.values)
    inputs: dict[str, tuple[npt.NDArray[np.float32], Probs]] = {
        "plain": (stack_inputs(blend, cnn), cnn),
        "mirror": (stack_inputs(blend, mirror), mirror),
        "plain + raw features": (np.hstack([stack_inputs(blend, cnn), raw]), cnn),
    }
    lines = [
        ("CNN alone", score(data, cnn, cnn)),
        ("CNN alone, mirror", score(data, mirror, mirror)),
    ]
    if second_cnn is not None:
        other, other_mirror = with_mirror(second_cnn, view)
        both = ((cnn + other) / 2).astype(np.float32)
        both_mirror = ((mirror + other_mirror) / 2).astype(np.float32)
        inputs["two CNNs"] = (stack_inputs(blend, cnn, other), both)
        inputs["two CNNs, mirror"] = (stack_inputs(blend, mirror, other_mirror), both_mirror)
        lines.append(("two CNNs averaged", score(data, both, both)))
    return lines + [
        (f"{name}, C={c}", _stacked(data, x, alone, c))
        for name, (x, alone) in inputs.items()
        for c in (0.1, 1.0)
    ]


INT8_VARIANTS: dict[str, dict[str, Any]] = {
    "softmax quantized too, 1,000 crops (seed 0)": {"rows": 1000, "seed": 0, "float_ops": ()},
    "softmax quantized too, 1,000 crops (seed 1)": {"rows": 1000, "seed": 1, "float_ops": ()},
    "softmax quantized too, 3,000 crops": {"rows": 3000, "seed": 0, "float_ops": ()},
    "convolutions only, 3,000 crops": {"rows": 3000, "seed": 0, "only_ops": ("Conv",)},
    "all but the softmax, 3,000 crops (shipped)": {"rows": 3000, "seed": 0},
}


def int8_variants(data: FusedData, float_cnn: Path, folder: Path) -> list[tuple[str, str]]:
    """The float CNN quantized in several ways (``INT8_VARIANTS``); CNN alone and fused, C=0.1."""
    view = data.device_view()
    blend = blendshape_probs(OnnxClassifier(BUILTIN_BLENDSHAPES), data)
    training = view[data.rows("Training")]
    lines = []
    for name, how in INT8_VARIANTS.items():
        out = folder / "int8.onnx"
        calibration = calibration_sample(training, how["seed"], how["rows"])
        options = {k: v for k, v in how.items() if k in ("float_ops", "only_ops")}
        quantize_cnn(float_cnn, out, calibration, **options)
        cnn = cnn_probs(out, view, reference=True)  # not this CPU's int8 kernels (issue 15)
        fused = _stacked(data, stack_inputs(blend, cnn), cnn, 0.1)
        lines.append((name, f"CNN {score(data, cnn, cnn)} | fused {fused}"))
    return lines


# name: (trainer model, parameters); the first is the shipped blendshape model
BLENDSHAPE_CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "HGB 150x31 (shipped)": ("hist_gradient_boosting", {"max_iter": 150, "max_leaf_nodes": 31}),
    "HGB 80x31": ("hist_gradient_boosting", {"max_iter": 80, "max_leaf_nodes": 31}),
    "HGB 60x15": ("hist_gradient_boosting", {"max_iter": 60, "max_leaf_nodes": 15}),
    "HGB 40x15": ("hist_gradient_boosting", {"max_iter": 40, "max_leaf_nodes": 15}),
    "MLP 256x128 (train --model mlp)": ("mlp", {}),
    "logistic regression": ("logistic_regression", {}),
}


def blendshape_variants(
    data: FusedData,
    cnn_path: Path,
    folder: Path,
    candidates: dict[str, tuple[str, dict[str, Any]]] = BLENDSHAPE_CANDIDATES,
) -> list[tuple[str, str]]:
    """Each blendshape model on the Training faces, stacked with the CNN as ``build-fused`` does.

    Per model: ONNX bytes, ms per face (warm / cache-cold), the stacker's lowest 5-fold CV
    log-loss on the PublicTest faces (what to choose by: PrivateTest plays no part) and the
    PrivateTest score of that stacker.
    """
    cnn = cnn_probs(cnn_path, data.device_view())
    values = data.prepared.features.values.astype(np.float32)
    faces = np.flatnonzero(data.face)
    train, public = data.face_rows("Training"), data.face_rows("PublicTest")
    lines = []
    for index, (name, (kind, params)) in enumerate(candidates.items()):
        model = build_model(kind, **params).fit(values[train], data.labels[train])
        path = folder / f"blendshapes_{index}.onnx"
        path.write_bytes(to_onnx(model, values.shape[1]))
        session = open_session(path)
        blend = np.full(cnn.shape, 1.0 / cnn.shape[1], np.float32)
        blend[faces] = session.run(["probabilities"], {FEATURES_INPUT: values[faces]})[0]
        one = values[faces[:1]]
        times = warm_and_cold_ms(partial(session.run, ["probabilities"], {FEATURES_INPUT: one}))
        x = stack_inputs(blend, cnn)
        stacker, losses = fit_stacker(x[public], data.labels[public], seed=0)
        cost = f"{path.stat().st_size:,} B, {times['warm_ms']:.3f} / {times['cold_ms']:.3f} ms"
        chosen = f"PublicTest CV log-loss {min(losses.values()):.4f} (C={stacker.C:g})"
        fused = score(data, stacker.predict_proba(x).astype(np.float32), cnn)
        lines.append((name, f"{cost} | {chosen} | fused {fused}"))
    return lines


def stacker_candidates(seed: int = 0) -> dict[str, Any]:
    """Non-linear stackers against the shipped one (multinomial logistic regression, C = 0.1)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    def poly(c: float) -> Any:
        return make_pipeline(
            PolynomialFeatures(2, include_bias=False), StandardScaler(), stacker_model(c, seed)
        )

    return {
        "logistic regression, C=0.1 (shipped)": stacker_model(0.1, seed),
        "pairwise products, C=0.01": poly(0.01),
        "pairwise products, C=0.003": poly(0.003),
        "HGB 100x7, rate 0.05": HistGradientBoostingClassifier(
            max_iter=100, max_leaf_nodes=7, learning_rate=0.05, random_state=seed
        ),
        "MLP 32, alpha 1": make_pipeline(
            StandardScaler(), MLPClassifier((32,), alpha=1.0, max_iter=2000, random_state=seed)
        ),
    }


def stacker_variants(
    data: FusedData, cnn_path: Path, candidates: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    """Each stacker's 5-fold CV log-loss on the PublicTest faces, then its PrivateTest score."""
    from sklearn.model_selection import cross_val_score

    cnn = cnn_probs(cnn_path, data.device_view())
    x = stack_inputs(blendshape_probs(OnnxClassifier(BUILTIN_BLENDSHAPES), data), cnn)
    public = data.face_rows("PublicTest")
    y = data.labels[public]
    folds = stacker_folds(y)
    lines = []
    for name, stacker in (candidates or stacker_candidates()).items():
        loss = -cross_val_score(stacker, x[public], y, cv=folds, scoring="neg_log_loss").mean()
        fused = stacker.fit(x[public], y).predict_proba(x).astype(np.float32)
        lines.append((name, f"PublicTest CV log-loss {loss:.4f} | fused {score(data, fused, cnn)}"))
    return lines


def compare_cnns(data: FusedData, cnn_paths: list[Path]) -> list[tuple[str, str]]:
    """Bundles that differ in their CNN, each stacked as ``build-fused`` does, against the first.

    Per CNN: the stacker's PublicTest CV log-loss (the validation number bundles are chosen by),
    PrivateTest accuracy over all images with a 95 % bootstrap interval (how far the test set's
    sampling alone moves it), then its paired difference from the first CNN's bundle (bootstrap
    interval, exact McNemar p): whether a gap between two rows is more than noise.
    """
    from trainer.significance import bootstrap_difference, format_interval, mcnemar

    blend = blendshape_probs(OnnxClassifier(BUILTIN_BLENDSHAPES), data)
    view = data.device_view()
    truth = data.labels[data.rows("PrivateTest")]
    predictions, losses = [], []
    for path in cnn_paths:
        predicted, loss = stacked_private(data, blend, cnn_probs(path, view), data.labels)
        predictions.append(predicted)
        losses.append(loss)
    never_right = np.full_like(truth, -1)  # the difference from it is the accuracy itself
    lines = []
    for index, (path, predicted) in enumerate(zip(cnn_paths, predictions, strict=True)):
        accuracy = format_interval(
            bootstrap_difference(truth, predicted, never_right), 4, signed=False
        )
        text = f"PublicTest log-loss {losses[index]:.4f} | {accuracy}"
        if index > 0:
            diff = bootstrap_difference(truth, predicted, predictions[0])
            p = mcnemar(truth, predicted, predictions[0])["p_value"]
            text += f" | vs first {format_interval(diff, 4)}, McNemar p {p:.3f}"
        lines.append((f"{path.parent.name}/{path.name}", text))
    return lines


def precision_variants(data: FusedData, float_cnn: Path, folder: Path) -> list[tuple[str, str]]:
    """The float CNN in each precision: size, fused score (reference execution), this CPU's
    optimized kernels against the reference, and warm ms per face."""
    from trainer.cnn_latency import time_files

    view = data.device_view()
    blend = blendshape_probs(OnnxClassifier(BUILTIN_BLENDSHAPES), data)
    calibration = calibration_sample(view[data.rows("Training")], seed=0)
    private = data.rows("PrivateTest")
    truth = data.labels[private]
    lines = []
    for precision in PRECISIONS:
        path = folder / f"cnn_{precision}.onnx"
        store_cnn(float_cnn, path, precision, calibration)
        reference = cnn_probs(path, view, reference=True)
        optimized = cnn_probs(path, view[private])
        predicted, _ = stacked_private(data, blend, reference, data.labels)
        drift = np.abs(optimized - reference[private]).max()
        same = (optimized.argmax(1) == reference[private].argmax(1)).mean()
        lines.append(
            (
                precision,
                f"{path.stat().st_size:>9,} B | {_on_labels('all images', truth, predicted)} | "
                f"optimized vs reference max |dp| {drift:.1e}, same class {same:.2%} | "
                f"{time_files([path])['warm_ms']:.3f} ms",
            )
        )
    return lines


def label_set_variants(
    data: FusedData, ferplus: npt.NDArray[np.int64], cnn_paths: list[Path]
) -> list[tuple[str, str]]:
    """Each CNN stacked on PublicTest's FER2013 labels and on its FER+ majority votes.

    Both bundles are scored on PrivateTest against both label sets (all images; no face: the CNN
    alone; FER+ rows without a clear vote left out): what each set of labels makes of the bundle.
    """
    blend = blendshape_probs(OnnxClassifier(BUILTIN_BLENDSHAPES), data)
    view = data.device_view()
    private = data.rows("PrivateTest")
    truths = {"FER2013": data.labels, "FER+": ferplus}
    lines = []
    for path in cnn_paths:
        cnn = cnn_probs(path, view)
        for fitted_on, labels in truths.items():
            predicted, loss = stacked_private(data, blend, cnn, labels)
            scores = [_on_labels(name, truth[private], predicted) for name, truth in truths.items()]
            text = f"log-loss {loss:.4f} | " + "; ".join(scores)
            lines.append((f"{path.parent.name}/{path.name} on {fitted_on}", text))
    return lines


def margin_variants(plain: FusedData, framed: FusedData, cnn_path: Path) -> list[tuple[str, str]]:
    """The device's recipe on FER2013 as it is, framed (``--face-margin``), and framed only where
    no face is found as it is ("hybrid"): each with the blendshape HGB trained on its own Training
    faces and a stacker on its PublicTest faces; all-row accuracy on PublicTest (what to choose
    by; the stacker was fitted on its faces, alike for all three) and PrivateTest, then
    PrivateTest accuracy by where the face was found."""
    setups = {"as it is": plain, "framed": framed, "hybrid": found_first(plain, framed)}
    truth, public, private = plain.labels, plain.usage == "PublicTest", plain.usage == "PrivateTest"
    every_row = np.arange(len(truth))
    right = {}
    lines = []
    for name, data in setups.items():
        predicted, _ = stacked_private(
            data, own_hgb_probs(data), _cnn(data, cnn_path), truth, every_row
        )
        right[name] = predicted == truth
        f1 = f1_score(truth[private], predicted[private], average="macro")
        lines.append(
            (
                name,
                f"PublicTest {right[name][public].mean():.4f} | PrivateTest "
                f"{right[name][private].mean():.4f} / {f1:.4f}, face found in "
                f"{data.face[private].mean():.4f}",
            )
        )
    found, framed_found = plain.face, framed.face
    groups = {
        "found as it is": found,
        "found only framed": ~found & framed_found,
        "found by neither": ~found & ~framed_found,
    }
    for group, where in groups.items():
        rows = where & private
        scores = ", ".join(f"{name} {right[name][rows].mean():.4f}" for name in setups)
        lines.append((group, f"{int(rows.sum())} PrivateTest images: {scores}"))
    return lines


def found_first(plain: FusedData, framed: FusedData) -> FusedData:
    """``plain``'s features and crop where it found a face, else ``framed``'s."""
    take, face = plain.face, plain.face | framed.face
    features = replace(
        plain.prepared.features,
        values=np.where(
            take[:, None], plain.prepared.features.values, framed.prepared.features.values
        ),
        face_found=face,
    )
    crops = replace(
        plain.crops,
        values=np.where(take[:, None, None], plain.crops.values, framed.crops.values),
        face_found=face,
    )
    return FusedData(replace(plain.prepared, features=features), crops)


def own_hgb_probs(data: FusedData) -> Probs:
    """The shipped blendshape HGB's recipe fitted on ``data``'s Training faces, on every row
    (uniform where no face: never used as a prediction)."""
    values, train = data.prepared.features.values, data.face_rows("Training")
    kind, params = BLENDSHAPE_CANDIDATES["HGB 150x31 (shipped)"]
    model = build_model(kind, **params).fit(values[train], data.labels[train])
    n = len(data.prepared.dataset.class_names)
    blend = np.full((len(values), n), 1.0 / n, np.float32)
    blend[data.face] = model.predict_proba(values[data.face])
    return blend


def _cnn(data: FusedData, cnn_path: Path) -> Probs:
    return cnn_probs(cnn_path, data.device_view())


def stacked_private(
    data: FusedData,
    blend: Probs,
    cnn: Probs,
    labels: npt.NDArray[np.int64],
    rows: npt.NDArray[np.intp] | None = None,
) -> tuple[npt.NDArray[np.int64], float]:
    """A stacker fitted as ``build-fused`` does, on the PublicTest faces with a label (>= 0) in
    ``labels``: its classes on ``rows`` (default PrivateTest; no face: the CNN alone) and its
    lowest CV log-loss."""
    x = stack_inputs(blend, cnn)
    public = data.face_rows("PublicTest")
    scored = data.rows("PrivateTest") if rows is None else rows
    fit = public[labels[public] >= 0]
    stacker, cv_log_loss = fit_stacker(x[fit], labels[fit], seed=0)
    fused = stacker.predict_proba(x[scored]).argmax(1)
    predicted = np.where(data.face[scored], fused, cnn[scored].argmax(1))
    return predicted, min(cv_log_loss.values())


def _on_labels(name: str, truth: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]) -> str:
    known = truth >= 0
    acc = accuracy_score(truth[known], predicted[known])
    f1 = f1_score(truth[known], predicted[known], average="macro")
    return f"{name} {acc:.4f} / {f1:.4f}"


def with_mirror(cnn_path: Path, view: npt.NDArray[np.uint8]) -> tuple[Probs, Probs]:
    """The CNN's answers, and their average with its answers on the mirrored crops."""
    plain = cnn_probs(cnn_path, view)
    mirrored = cnn_probs(cnn_path, np.ascontiguousarray(view[:, :, ::-1]))
    return plain, ((plain + mirrored) / 2).astype(np.float32)


def _stacked(data: FusedData, x: npt.NDArray[np.float32], alone: Probs, c: float) -> str:
    """A stacker with C = ``c`` fitted on the PublicTest faces, scored on PrivateTest."""
    fit_rows = data.face_rows("PublicTest")
    stacker = stacker_model(c).fit(x[fit_rows], data.labels[fit_rows])
    return score(data, stacker.predict_proba(x), alone)


def _variant_lines(
    args: argparse.Namespace,
    data: FusedData,
    data_path: Path,
    config: ExtractionConfig,
    folder: Path,
) -> list[tuple[str, str]]:
    """The lines of the variant family the command line asks for (``folder``: scratch)."""
    families: list[tuple[object, Callable[[], list[tuple[str, str]]]]] = [
        (args.int8_from, lambda: int8_variants(data, args.int8_from, folder)),
        (args.precisions, lambda: precision_variants(data, args.precisions, folder)),
        (args.compare, lambda: compare_cnns(data, args.compare)),
        (args.label_sets, lambda: _label_sets(data, data_path, args.label_sets)),
        (args.margins, lambda: _margins(data_path, config, args)),
        (args.stackers, lambda: stacker_variants(data, args.cnn)),
        (args.blendshape_models, lambda: blendshape_variants(data, args.cnn, folder)),
    ]
    for wanted, run in families:
        if wanted:
            return run()
    return variants(data, args.cnn, args.second_cnn)


def _label_sets(data: FusedData, data_path: Path, cnns: list[Path]) -> list[tuple[str, str]]:
    ferplus = ferplus_labels(data_path, data.prepared.dataset.class_names)
    if not len(ferplus):
        raise SystemExit(f"{data_path} has no FER+ votes (ferplus_votes)")
    return label_set_variants(data, ferplus, cnns)


def _margins(
    data_path: Path, config: ExtractionConfig, args: argparse.Namespace
) -> list[tuple[str, str]]:
    as_it_is = load_fused_data(data_path, replace(config, face_margin=0.0))
    framed = replace(config, face_margin=args.face_margin or FACE_MARGIN)
    return margin_variants(as_it_is, load_fused_data(data_path, framed), args.cnn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.fused_variants", description=__doc__)
    parser.add_argument("--cnn", type=Path, default=MODELS_DIR / "fer2013_crop_cnn.onnx")
    parser.add_argument("--second-cnn", type=Path, help="a second CNN .onnx for the ensemble rows")
    parser.add_argument(
        "--int8-from", type=Path, help="a float32 CNN .onnx: score ways of quantizing it instead"
    )
    parser.add_argument(
        "--precisions",
        type=Path,
        metavar="FLOAT.onnx",
        help="a float32 CNN .onnx: size, accuracy, CPU drift and time of each stored form",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        metavar="CNN",
        help="bundles with these CNNs: accuracy with a 95 %% interval, each against the first",
    )
    parser.add_argument(
        "--label-sets",
        type=Path,
        nargs="+",
        metavar="CNN",
        help="each CNN stacked on FER2013's labels and on the FER+ votes, scored on both",
    )
    parser.add_argument(
        "--stackers",
        action="store_true",
        help="score non-linear stackers against the shipped one with --cnn instead",
    )
    parser.add_argument(
        "--face-margin",
        type=float,
        default=0.0,
        help="mid-grey margin around each FER2013 face before the landmarker (features, crops)",
    )
    parser.add_argument(
        "--margins",
        action="store_true",
        help="FER2013 as it is, framed with --face-margin (default 0.25 here) and framed only "
        "where no face is found, with --cnn",
    )
    parser.add_argument(
        "--blendshape-models",
        action="store_true",
        help="score other blendshape models (BLENDSHAPE_CANDIDATES) with --cnn instead",
    )
    args = parser.parse_args(argv)
    data_path = os.environ.get("EMOTION_EDGE_FER2013")
    if not data_path:
        parser.error("set EMOTION_EDGE_FER2013 to the FER2013 npz")
    config = ExtractionConfig(
        landmarker_path=AssetResolver().resolve("face_landmarker"),
        timing_sample=0,
        face_margin=args.face_margin,
    )
    data = load_fused_data(Path(data_path), config)
    with tempfile.TemporaryDirectory() as folder:
        lines = _variant_lines(args, data, Path(data_path), config, Path(folder))
    for name, line in lines:
        print(f"{name:<28} {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
