"""The paper's FER2013 table: RandomForest vs HistGradientBoosting on 52 blendshapes (+ geometry).

Both protocols (stratified 5-fold CV, official Training -> PrivateTest split), face coverage,
the majority-class baseline, ONNX sizes and onnxruntime parity.
Run: ``emotion-trainer bench-fer --data fer2013.npz`` or ``python -m trainer.bench_fer ...``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from device.features.schema import BLENDSHAPE_FEATURES
from trainer.evaluate import TEST_USAGE, LabelledFeatures, cross_validate, official_split
from trainer.export import measure_parity, to_onnx
from trainer.train import DEFAULT_SEED, PAPER_MODELS
from trainer.workflows import Prepared

logger = logging.getLogger(__name__)


# (row name, model, feature columns): the paper's blendshape models, then with geometry.
ROWS: tuple[tuple[str, str, str], ...] = (
    *((name, name, "blendshapes") for name in PAPER_MODELS),
    ("hist_gradient_boosting+geo", "hist_gradient_boosting", "rgb"),
)


def run_bench(
    prepared: Prepared, seed: int = DEFAULT_SEED, rows: tuple[tuple[str, str, str], ...] = ROWS
) -> dict[str, Any]:
    """Scores, sizes and parity of every model under both protocols."""
    data = prepared.labelled()
    return {
        "n_images": len(prepared.dataset),
        "n_faces": int(data.face_found.sum()),
        "coverage": prepared.features.coverage,
        "timings": prepared.features.timings,
        "seed": seed,
        "models": {
            row: bench_model(model, columns(data, cols, prepared), seed)
            for row, model, cols in rows
        },
    }


def columns(data: LabelledFeatures, which: str, prepared: Prepared) -> LabelledFeatures:
    """``data`` with only its blendshape columns (``blendshapes``) or all of them (``rgb``)."""
    if which == "rgb":
        return data
    names = prepared.features.feature_names
    keep = [i for i, name in enumerate(names) if name in BLENDSHAPE_FEATURES]
    return replace(data, values=data.values[:, keep])


def bench_model(name: str, data: LabelledFeatures, seed: int) -> dict[str, Any]:
    logger.info("bench: %s, 5-fold CV", name)
    cv5 = cross_validate(name, data, seed)
    logger.info("bench: %s, official split", name)
    model, official = official_split(name, data, seed)
    onnx_bytes = to_onnx(model, data.values.shape[1])
    held_out = np.isin(data.usage, TEST_USAGE) & data.face_found
    parity = measure_parity(onnx_bytes, model, data.values[held_out])
    return {"cv5": cv5, "official": official, "onnx_bytes": len(onnx_bytes), "parity": parity}


def format_table(bench: dict[str, Any]) -> str:
    """A plain-text table for a terminal or a Markdown code block."""
    lines = [_header(bench), ""]
    lines.append(
        f"{'protocol':9} {'model':27} {'accuracy':>15} {'macro-F1':>15} "
        f"{'all-rows acc':>15} {'all-rows F1':>15} {'ONNX MB':>8}"
    )
    for protocol in ("cv5", "official"):
        lines.extend(_rows(bench, protocol))
    lines.append("")
    for name, result in bench["models"].items():
        parity = result["parity"]
        lines.append(
            f"parity {name}: max |p_onnx - p_sklearn| {parity['max_abs_diff']:.2e}, "
            f"argmax agreement {parity['argmax_agreement']:.4f} "
            f"({parity['argmax_agreement_ties_allowed']:.4f} counting ties) "
            f"on {parity['n_rows']} PrivateTest faces"
        )
    return "\n".join(line.rstrip() for line in lines)


def _header(bench: dict[str, Any]) -> str:
    timings = bench["timings"]
    rate = timings.get("images_per_s")
    single = timings.get("single_core_images_per_s")
    speed = f"{rate} images/s with {timings['jobs']} workers" if rate else "all features cached"
    single_text = f"{single} images/s" if single else "not measured"
    return (
        f"FER2013 blendshapes: {bench['n_images']:,} images, face found in "
        f"{bench['coverage']:.1%} ({bench['n_faces']:,}); seed {bench['seed']}\n"
        f"extraction: {speed}; one landmarker on one core: {single_text}"
    )


def _rows(bench: dict[str, Any], protocol: str) -> list[str]:
    first = next(iter(bench["models"].values()))[protocol]
    majority = ("majority_face_found", "majority_all_rows")
    rows = [_row(protocol, "majority class", first, majority, None)]
    for name, result in bench["models"].items():
        sections = ("face_found", "all_rows")
        rows.append(_row(protocol, name, result[protocol], sections, result["onnx_bytes"]))
    return rows


def _row(
    protocol: str, name: str, scores: dict[str, Any], sections: tuple[str, str], size: int | None
) -> str:
    face, all_rows = sections
    size_text = f"{size / 1e6:8.2f}" if size is not None else f"{'':8}"
    return (
        f"{protocol:9} {name:27} {_cell(scores, face, 'accuracy'):>15} "
        f"{_cell(scores, face, 'macro_f1'):>15} {_cell(scores, all_rows, 'accuracy'):>15} "
        f"{_cell(scores, all_rows, 'macro_f1'):>15} {size_text}"
    )


def _cell(scores: dict[str, Any], section: str, metric: str) -> str:
    value = scores[section][metric]
    if isinstance(value, dict):  # cross-validation: mean and std over folds
        return f"{value['mean']:.4f} ± {value['std']:.4f}"
    return f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    from trainer.cli import main as cli_main

    return cli_main(["bench-fer", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
