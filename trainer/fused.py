"""The fused bundle: face-crop CNN + blendshape model + a stacker, built and scored on FER2013.

1. Features and aligned crops of every FER2013 image (both cached, resumable, parallel).
2. The CNN trains on Training (aligned crops and FER's own framing, see ``CnnConfig``), stopping
   early on PublicTest.
3. The stacker (multinomial logistic regression over both models' log-probabilities) is fitted on
   PublicTest faces, which neither model was fitted on.
4. PrivateTest is scored for the blendshape model, the CNN and the bundle, on FER2013's labels and
   on the FER+ majority votes, and the bundle is written with one manifest.

Rows without a face: the device says ``no_face`` for them, so ``device`` scores count them as
wrong. FER2013 images are face crops already, so ``all_rows`` scores also report what
``emotion-device classify --pre-cropped`` does: the CNN alone on the image as it is (the
blendshape model alone has nothing to go on there and counts the training majority class).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from device.errors import ModelMismatch
from device.features.crop import DEFAULT_CROP
from device.inference.bundle import PROB_FLOOR, BundleManifest, FusedModel, golden_answers
from device.inference.classifier import BUILTIN_BLENDSHAPES, OnnxClassifier
from device.inference.manifest import manifest_path_for, sha256_of, write_manifest
from trainer.cnn import (
    CnnConfig,
    TrainingData,
    cnn_probs,
    export_onnx,
    onnx_parity,
    parameter_count,
    probability_agreement,
    read_state,
    train_cnn,
)
from trainer.crops import Crops, extract_crops
from trainer.errors import ParityError, UsageError
from trainer.export import software_versions, to_onnx
from trainer.extract import ExtractionConfig
from trainer.metrics import classification_metrics, majority_class
from trainer.precisions import DEFAULT_PRECISION
from trainer.quantize import (
    MIN_ARGMAX_AGREEMENT,
    calibration_sample,
    check_kernel_parity,
    dequantized,
    int8_parity,
    store_cnn,
)
from trainer.workflows import Prepared, prepare

logger = logging.getLogger(__name__)

BUNDLE_NAME = "fer2013_fused"
CNN_FILE = "fer2013_crop_cnn.onnx"
STACKER_FILE = "fer2013_fused_stacker.onnx"
BUNDLE_MAX_BYTES = 5_000_000
RUN_FILE = "run.json"  # in the CNN work dir: the facts its checkpoints belong to
STACKER_CS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # tried by 5-fold CV on the PublicTest faces
FERPLUS_NAMES = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}
Probs = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FusedData:
    prepared: Prepared
    crops: Crops

    @property
    def usage(self) -> npt.NDArray[np.str_]:
        return self.prepared.dataset.usage

    @property
    def labels(self) -> npt.NDArray[np.int64]:
        return self.prepared.dataset.labels

    @property
    def face(self) -> npt.NDArray[np.bool_]:
        return self.prepared.features.face_found

    def device_view(self) -> npt.NDArray[np.uint8]:
        """What the CNN sees: the aligned crop where a face was found, else the image itself."""
        images = self.prepared.dataset.images
        return np.where(self.crops.face_found[:, None, None], self.crops.values, images)

    def rows(self, usage: str) -> npt.NDArray[np.intp]:
        return np.flatnonzero(self.usage == usage)

    def face_rows(self, usage: str) -> npt.NDArray[np.intp]:
        """The rows of ``usage`` where the landmarker found a face (what the models are fit on)."""
        return np.flatnonzero((self.usage == usage) & self.face)


def load_fused_data(data_path: Path, extraction: ExtractionConfig) -> FusedData:
    prepared = prepare(data_path, extraction)
    crops = extract_crops(prepared.dataset.images, extraction, DEFAULT_CROP)
    if not np.array_equal(crops.face_found, prepared.features.face_found):
        raise RuntimeError("crop and feature extraction disagree on which images have a face")
    return FusedData(prepared, crops)


def training_data(data: FusedData, votes: npt.NDArray[np.float32] | None = None) -> TrainingData:
    """The CNN's training set; ``votes``: FER+ vote shares for every image (``ferplus_votes``)."""
    train, val = data.rows("Training"), data.rows("PublicTest")
    images = data.prepared.dataset.images
    return TrainingData(
        original=images[train],
        aligned=data.crops.values[train],
        has_aligned=data.crops.face_found[train],
        labels=data.labels[train],
        val_crops=data.device_view()[val],
        val_labels=data.labels[val],
        n_classes=len(data.prepared.dataset.class_names),
        votes=None if votes is None else votes[train],
    )


def blendshape_probs(model: OnnxClassifier, data: FusedData) -> Probs:
    """The blendshape model on every row (uniform where no face: never used as a prediction)."""
    n = len(model.labels)
    probs = np.full((len(data.labels), n), 1.0 / n, dtype=np.float32)
    faces = np.flatnonzero(data.face)
    probs[faces] = model.predict_rows(data.prepared.features.values[faces])
    return probs


def stack_inputs(*probs: Probs) -> npt.NDArray[np.float32]:
    """What the bundle's stacker takes: log of the models' probabilities, blendshapes first."""
    return np.log(np.maximum(np.hstack(probs), PROB_FLOOR)).astype(np.float32)


def fit_stacker(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], seed: int
) -> tuple[LogisticRegression, dict[str, float]]:
    """The stacker with the C of lowest 5-fold CV log-loss on its own rows; the log-loss per C.

    Log-loss, not accuracy: the stacker's job is probabilities, and on ~3,200 rows the CV
    accuracies of neighbouring C differ by a handful of rows, so picking by them is noise (it once
    chose C = 0.01, which starves the rare class disgust). The rows are PublicTest's, so
    PrivateTest plays no part in the choice.
    """
    folds = stacker_folds(y, seed)
    losses = {
        c: -float(
            cross_val_score(stacker_model(c, seed), x, y, cv=folds, scoring="neg_log_loss").mean()
        )
        for c in STACKER_CS
    }
    best = min(losses, key=lambda c: losses[c])
    return stacker_model(best, seed).fit(x, y), {str(c): round(v, 4) for c, v in losses.items()}


def stacker_folds(y: npt.NDArray[np.int64], seed: int = 0, most: int = 5) -> StratifiedKFold:
    """``most`` stratified folds, fewer when the rarest class has fewer rows than that (small
    slices; on FER2013's PublicTest every class has dozens), but never fewer than 2."""
    rarest = int(np.bincount(y)[np.unique(y)].min()) if len(y) else most
    return StratifiedKFold(n_splits=max(2, min(most, rarest)), shuffle=True, random_state=seed)


def stacker_model(c: float, seed: int = 0) -> LogisticRegression:
    """The stacker, unfitted: multinomial logistic regression with inverse regularisation C."""
    return LogisticRegression(C=c, max_iter=5000, random_state=seed)


def export_stacker(stacker: LogisticRegression, path: Path) -> None:
    onnx_bytes = to_onnx(stacker, stacker.n_features_in_, input_name="logits")
    path.write_bytes(onnx_bytes)


def _ferplus_raw(dataset_path: Path) -> tuple[npt.NDArray[np.int64], list[str]] | None:
    """The FER+ vote counts (N, 10) and their column names, if the dataset file carries them.

    Only the project's .npz does (``ferplus_votes``); FER2013's own CSV has none.
    """
    if dataset_path.suffix.lower() != ".npz":
        return None
    with np.load(dataset_path) as raw:
        if "ferplus_votes" not in raw.files:
            return None
        return raw["ferplus_votes"], [str(c) for c in raw["ferplus_columns"]]


def ferplus_labels(dataset_path: Path, class_names: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """FER+ majority vote as a FER2013 class index; -1: a tie, contempt, unknown or not a face.

    Empty when the dataset has no FER+ votes.
    """
    found = _ferplus_raw(dataset_path)
    if found is None:
        return np.full(0, -1, dtype=np.int64)
    votes, columns = found
    top = votes.argmax(axis=1)
    unique_top = (votes == votes.max(axis=1, keepdims=True)).sum(axis=1) == 1
    index = {name: class_names.index(fer) for name, fer in FERPLUS_NAMES.items()}
    mapped = np.array([index.get(columns[t], -1) for t in top], dtype=np.int64)
    return np.where(unique_top & (votes.max(axis=1) > 0), mapped, -1)


def ferplus_votes(dataset_path: Path, class_names: tuple[str, ...]) -> Probs | None:
    """Each image's FER+ votes as shares of FER2013's classes (contempt, unknown and not-a-face
    left out); rows with none of the seven are zeros. None if the dataset has no FER+ votes."""
    found = _ferplus_raw(dataset_path)
    if found is None:
        return None
    votes, columns = found
    counts = np.zeros((len(votes), len(class_names)), np.float32)
    for column, name in enumerate(columns):
        if name in FERPLUS_NAMES:
            counts[:, class_names.index(FERPLUS_NAMES[name])] += votes[:, column]
    totals = counts.sum(axis=1, keepdims=True)
    shares: Probs = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return shares


def score_models(
    data: FusedData,
    probs: dict[str, Probs],
    truth: npt.NDArray[np.int64],
    rows: npt.NDArray[np.intp],
) -> dict[str, Any]:
    """Blendshapes, CNN and bundle on ``rows`` (faces only, all rows, and device semantics)."""
    blend, cnn, fused = probs["blendshapes"], probs["cnn"], probs["fused"]
    names = data.prepared.dataset.class_names
    rows = rows[truth[rows] >= 0]
    face = data.face[rows]
    majority = majority_class(data.labels[data.rows("Training")])
    no_face_wrong = -1
    predictions = {
        "blendshapes": np.where(face, blend[rows].argmax(1), majority),
        "cnn": cnn[rows].argmax(1),
        "fused": np.where(face, fused[rows].argmax(1), cnn[rows].argmax(1)),
    }
    device = {
        "blendshapes": np.where(face, blend[rows].argmax(1), no_face_wrong),
        "cnn": np.where(face, cnn[rows].argmax(1), no_face_wrong),
        "fused": np.where(face, fused[rows].argmax(1), no_face_wrong),
    }
    y = truth[rows]
    return {
        model: {
            "faces": classification_metrics(y[face], predictions[model][face], names),
            "all_rows": classification_metrics(y, predictions[model], names),
            "device": _headline(classification_metrics(y, device[model], names)),
        }
        for model in predictions
    }


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("n", "accuracy", "macro_f1") if k in metrics}


def build_fused(
    data_path: Path,
    out_dir: Path,
    work_dir: Path,
    extraction: ExtractionConfig,
    cnn_config: CnnConfig,
    *,
    blendshape_model: Path = BUILTIN_BLENDSHAPES,
    precision: str = DEFAULT_PRECISION,
    mirror: bool = False,
    stacker_labels: str = "fer2013",
    cnn_from: Path | None = None,
) -> dict[str, Any]:
    """Train, stack, score and write the bundle into ``out_dir``; returns the report.

    ``precision``: how the CNN is stored and computed (``trainer.quantize.PRECISIONS``); any
    form whose optimized answers on this CPU differ from the reference execution is refused.
    ``mirror``: the exported CNN also reads the mirrored crop and averages (``WithSoftmax``).
    ``stacker_labels``: ``fer2013`` fits the stacker to FER2013's labels; ``ferplus`` to the FER+
    majority votes (the PublicTest faces with a clear vote), so the bundle answers as most of
    FER+'s ten annotators would.
    ``cnn_from``: no training; the CNN is this exported .onnx (an int8 QDQ one in float,
    ``trainer.quantize.dequantized``), e.g. a shipped bundle's, stored and stacked afresh.
    """
    blend_model = open_blendshape_model(blendshape_model)  # a wrong file fails now, not after hours
    if cnn_from is not None and not cnn_from.is_file():
        raise UsageError(f"--cnn-from {cnn_from} does not exist; give an exported CNN .onnx")
    if cnn_from is not None and mirror:
        raise UsageError("--mirror wraps a CNN trained here; drop it or drop --cnn-from")
    wants_votes = [
        option
        for option, wanted in (
            ("--ferplus-share", cnn_config.ferplus_share > 0),
            ("--stacker-labels ferplus", stacker_labels == "ferplus"),
        )
        if wanted
    ]
    if wants_votes and _ferplus_raw(data_path) is None:
        drop = " and ".join(wants_votes)
        raise UsageError(f"{data_path} has no FER+ votes (ferplus_votes): drop {drop}")
    check_face_margin(blend_model, blendshape_model, extraction.face_margin)
    data = load_fused_data(data_path, extraction)
    classes = list(data.prepared.dataset.class_names)
    if list(blend_model.labels) != classes:
        raise UsageError(
            f"blendshape model {blendshape_model.name} has labels {list(blend_model.labels)}, "
            f"not the dataset's {classes}: train it on the same data"
        )
    private = data.rows("PrivateTest")
    view = data.device_view()
    float_path = work_dir / "cnn_float32.onnx"
    if cnn_from is None:
        facts = run_facts(cnn_config, data.prepared.dataset.content_hash(), extraction.face_margin)
        claim_work_dir(work_dir, facts)
        cnn = _trained_cnn(data_path, data, view, work_dir, cnn_config, mirror=mirror)
    else:
        cnn = _cnn_from(cnn_from, float_path, view[private][:1000])
    out_dir.mkdir(parents=True, exist_ok=True)
    cnn_path = out_dir / CNN_FILE
    stored = _place_cnn(float_path, cnn_path, data, view, seed=cnn_config.seed, precision=precision)
    blend, cnn_answers = blendshape_probs(blend_model, data), cnn_probs(cnn_path, view)
    ferplus = ferplus_labels(data_path, data.prepared.dataset.class_names)
    target = ferplus if stacker_labels == "ferplus" else data.labels
    public_faces = data.face_rows("PublicTest")
    fit_rows = public_faces[target[public_faces] >= 0]  # FER+: the faces with a clear vote
    stacker, cv_log_loss = fit_stacker(
        stack_inputs(blend[fit_rows], cnn_answers[fit_rows]), target[fit_rows], cnn_config.seed
    )
    stacker_path = out_dir / STACKER_FILE
    export_stacker(stacker, stacker_path)
    blend_file = _place_blendshape_model(blendshape_model, out_dir)
    bundle_path = out_dir / f"{BUNDLE_NAME}.json"
    fused = _fused_probs(blend, cnn_answers, stacker)
    probs = {"blendshapes": blend, "cnn": cnn_answers, "fused": fused}
    files = {"blendshapes": blend_file, "cnn": cnn_path, "stacker": stacker_path}
    sizes = _sizes(*files.values())
    check_bundle_budget(sizes)
    report: dict[str, Any] = {
        "fer2013": score_models(data, probs, data.labels, private),
        "ferplus_majority": score_models(data, probs, ferplus, private) if len(ferplus) else None,
        **cnn,
        "cnn_precision": stored,
        "cnn_mirror": mirror,
        "stacker_fitted_on": {
            "usage": "PublicTest",
            "labels": stacker_labels,
            "rows_with_face": len(fit_rows),
            "C": float(stacker.C),
            "cv_log_loss_by_C": cv_log_loss,
        },
        "coverage_private_test": float(data.face[private].mean()),
        "sizes_bytes": sizes,
        "bundle": str(bundle_path),
    }
    _write_bundle(bundle_path, data, report, files)
    report["bundle_parity"] = _bundle_parity(bundle_path, data, fused, private)
    return report


def _trained_cnn(
    data_path: Path,
    data: FusedData,
    view: npt.NDArray[np.uint8],
    work_dir: Path,
    config: CnnConfig,
    *,
    mirror: bool,
) -> dict[str, Any]:
    """Train (or resume) the CNN in ``work_dir`` (claimed by the caller) and export it as
    ``cnn_float32.onnx``; the report's facts about it."""
    votes = None
    if config.ferplus_share > 0:
        votes = ferplus_votes(data_path, data.prepared.dataset.class_names)
    net = train_cnn(training_data(data, votes), config, work_dir)
    float_path = work_dir / "cnn_float32.onnx"
    export_onnx(net, float_path, DEFAULT_CROP.size, mirror=mirror)
    private = data.rows("PrivateTest")
    return {
        "cnn_parity": onnx_parity(net, float_path, view[private][:1000], mirror=mirror),
        "cnn_parameters": parameter_count(net),
        "cnn_training": _training_facts(work_dir, config),
    }


def _cnn_from(source: Path, float_path: Path, crops: npt.NDArray[np.uint8]) -> dict[str, Any]:
    """The exported CNN at ``source`` as ``float_path`` (dequantized if it is int8); its parity
    is the float graph against the source's own reference execution."""
    float_path.parent.mkdir(parents=True, exist_ok=True)
    dequantized(source, float_path)
    weights = onnx.load(str(float_path)).graph.initializer
    return {
        "cnn_parity": probability_agreement(
            cnn_probs(source, crops, reference=True), cnn_probs(float_path, crops)
        ),
        "cnn_parameters": int(sum(np.prod(t.dims) for t in weights)),
        "cnn_training": {"from": source.name, "sha256": sha256_of(source)},
    }


STACKER_LABELS = {  # what the stacker can be fitted to, as the report and manifest name it
    "fer2013": "FER2013's labels",
    "ferplus": "the FER+ majority vote (faces with a clear one)",
}


def open_blendshape_model(path: Path) -> OnnxClassifier:
    """The blendshape model to stack; a missing or unusable file is a one-line usage error."""
    if not path.is_file():
        raise UsageError(f"blendshape model {path} does not exist: give a .onnx with its .json")
    try:
        return OnnxClassifier(path)
    except ModelMismatch as exc:
        raise UsageError(f"blendshape model {path} cannot be used: {exc}") from None


def check_face_margin(model: OnnxClassifier, path: Path, face_margin: float) -> None:
    """The blendshape model must have been trained on faces framed as these crops will be."""
    trained = float(model.manifest.feature_extraction.get("face_margin", 0.0))
    if trained != face_margin:
        raise UsageError(
            f"blendshape model {path.name} was trained with --face-margin {trained:g}, not "
            f"{face_margin:g}: train one with --face-margin {face_margin:g} or drop the option"
        )


def default_work_dir(config: CnnConfig, face_margin: float = 0.0) -> Path:
    """CNN checkpoints under the feature cache, one folder per training configuration and crop."""
    import hashlib

    from trainer.extract import default_cache_dir

    facts = run_facts(config, face_margin=face_margin)
    key = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]
    return default_cache_dir().parent / "cnn" / f"fer2013-{key}"


# Settings added after runs were already being made; left out of the facts while off, so a
# run made before them still resumes (and keeps its default work dir).
OFF_UNLESS_SET = {"ema": 0.0, "ferplus_share": 0.0, "self_distil": 0.0}


def run_facts(
    config: CnnConfig, data_sha256: str | None = None, face_margin: float = 0.0
) -> dict[str, Any]:
    """What a training run's checkpoints depend on: its settings, the crop, and the data."""
    facts = {
        k: v
        for k, v in asdict(config).items()
        if k not in ("progress", "threads") and OFF_UNLESS_SET.get(k) != v
    }
    facts["crop"] = DEFAULT_CROP.as_dict()
    if face_margin:  # left out when 0, as the settings above
        facts["face_margin"] = face_margin
    if data_sha256 is not None:
        facts["data_sha256"] = data_sha256
    normalised: dict[str, Any] = json.loads(json.dumps(facts))  # tuples as JSON lists
    return normalised


def claim_work_dir(work_dir: Path, facts: dict[str, Any]) -> None:
    """Checkpoints resume only the run they were made by; another run's are refused, not reused.

    A folder with checkpoints but no ``run.json`` (made before it existed) is taken as it is.
    """
    path = work_dir / RUN_FILE
    if path.is_file():
        try:
            held = json.loads(path.read_text())
        except (OSError, ValueError):
            held = None
        if not isinstance(held, dict):
            raise UsageError(
                f"{path} is not readable run facts; give another --work-dir or delete that folder"
            )
        changed = sorted(k for k in facts.keys() | held.keys() if facts.get(k) != held.get(k))
        if changed:
            raise UsageError(
                f"{work_dir} holds checkpoints of a run with other {', '.join(changed)}; "
                "give another --work-dir or delete that folder"
            )
        return
    work_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")


def format_report(report: dict[str, Any]) -> str:
    """The PrivateTest table people read: every model on faces, all rows and FER+ votes."""
    lines = [
        "model        faces acc / F1   all rows acc / F1   device acc   FER+ all rows acc / F1",
    ]
    plus = report.get("ferplus_majority") or {}
    for model in ("blendshapes", "cnn", "fused"):
        fer = report["fer2013"][model]
        fp = plus.get(model, {}).get("all_rows", {})
        lines.append(
            f"{model:<12} {_pair(fer['faces'])}      {_pair(fer['all_rows'])}         "
            f"{fer['device']['accuracy']:.4f}       {_pair(fp) if fp else 'n/a'}"
        )
    sizes, training = report["sizes_bytes"], report["cnn_training"]
    cnn_parity, bundle_parity = report["cnn_parity"], report["bundle_parity"]
    if "from" in training:
        made = f"from {training['from']}; parity with its reference execution"
    else:
        made = (
            f"{training['epochs_run']} epochs in {training['seconds'] / 60:.1f} min "
            f"(best {training['best_epoch']}); parity torch/onnxruntime"
        )
    lines.append(
        f"bundle {report['bundle']}: {sizes['total']:,} bytes; CNN {report['cnn_parameters']:,} "
        f"parameters, {made} {cnn_parity['max_abs_diff']:.1e}, "
        f"bundle {bundle_parity['max_abs_diff']:.1e}"
    )
    lines.append(_precision_line(report.get("cnn_precision") or {"precision": "float32"}))
    fitted = report["stacker_fitted_on"]
    lines.append(
        f"stacker fitted to {STACKER_LABELS[fitted['labels']]} on "
        f"{fitted['rows_with_face']:,} PublicTest faces (C = {fitted['C']:g})"
    )
    return "\n".join(lines)


def _precision_line(precision: dict[str, Any]) -> str:
    kernel = precision.get("optimized_vs_reference_private_test")
    line = f"CNN shipped in {precision['precision']}"
    if kernel:
        line += f"; this CPU's kernels vs reference: max |dp| {kernel['max_abs_diff']:.1e}"
    parity = precision.get("int8_vs_float32_private_test")
    if parity:
        line += (
            f"; same class as float32 on {parity['argmax_agreement']:.2%} of PrivateTest, "
            f"max |dp| {parity['max_abs_diff']:.3f}"
        )
    return line


def _pair(metrics: dict[str, Any]) -> str:
    return f"{metrics['accuracy']:.4f} / {metrics['macro_f1']:.4f}"


def check_bundle_budget(sizes: dict[str, int], max_bytes: int = BUNDLE_MAX_BYTES) -> None:
    from trainer.errors import ModelBudgetError

    if sizes["total"] > max_bytes:
        raise ModelBudgetError(
            f"the fused bundle is {sizes['total']:,} bytes, over the {max_bytes:,} byte budget"
        )


def _place_cnn(
    float_path: Path,
    cnn_path: Path,
    data: FusedData,
    view: npt.NDArray[np.uint8],
    *,
    seed: int,
    precision: str,
) -> dict[str, Any]:
    """The CNN the bundle ships, in ``precision`` (int8 forms calibrated on training crops).

    It must answer on this CPU's optimized kernels as in onnxruntime's reference execution
    (``check_kernel_parity``), and an int8 form must name the float CNN's class. ``view`` is
    ``data.device_view()``, made once by the caller (a copy of every image).
    """
    calibration = calibration_sample(view[data.rows("Training")], seed)
    store_cnn(float_path, cnn_path, precision, calibration)
    private = data.rows("PrivateTest")
    facts: dict[str, Any] = {
        "precision": precision,
        "optimized_vs_reference_private_test": check_kernel_parity(
            cnn_path, view[private], precision
        ),
    }
    if precision == "float32":
        return facts
    parity = int8_parity(float_path, cnn_path, view[private])
    if parity["argmax_agreement"] < MIN_ARGMAX_AGREEMENT:
        raise ParityError(
            f"the {precision} CNN names the float CNN's class on only "
            f"{parity['argmax_agreement']:.1%} of PrivateTest; build with --cnn-precision float32"
        )
    return facts | {"calibration_rows": len(calibration), "int8_vs_float32_private_test": parity}


def _fused_probs(blend: Probs, cnn: Probs, stacker: LogisticRegression) -> Probs:
    probs: Probs = stacker.predict_proba(stack_inputs(blend, cnn)).astype(np.float32)
    return probs


def _place_blendshape_model(model: Path, out_dir: Path) -> Path:
    """The blendshape model sits beside the bundle (copied when it lives elsewhere)."""
    target = out_dir / model.name
    if target.resolve() != model.resolve():
        shutil.copyfile(model, target)
        shutil.copyfile(manifest_path_for(model), manifest_path_for(target))
    return target


def _training_facts(work_dir: Path, config: CnnConfig) -> dict[str, Any]:
    state = read_state(work_dir)
    return {
        "config": {k: v for k, v in asdict(config).items() if k != "progress"},
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "best_public_test_accuracy": state.best_accuracy,
        "seconds": round(state.seconds, 1),
        "history": state.history,
    }


def _ferplus_headline(report: dict[str, Any]) -> dict[str, Any]:
    """All-row PrivateTest scores against the FER+ majority votes, when the data has them."""
    plus = report.get("ferplus_majority")
    if not plus:
        return {}
    models = ("blendshapes", "cnn", "fused")
    return {"ferplus_majority_private_test": {m: _headline(plus[m]["all_rows"]) for m in models}}


def _write_bundle(
    path: Path,
    data: FusedData,
    report: dict[str, Any],
    paths: dict[str, Path],
) -> None:
    files = {c: {"file": p.name, "sha256": sha256_of(p)} for c, p in paths.items()}
    headline = {
        split: {m: _headline(report["fer2013"][m][split]) for m in ("blendshapes", "cnn", "fused")}
        for split in ("faces", "all_rows")
    }
    manifest = BundleManifest(
        name=BUNDLE_NAME,
        labels=list(data.prepared.dataset.class_names),
        crop=DEFAULT_CROP.as_dict(),
        files=files,
        metrics={
            "fer2013_private_test": headline,
            **_ferplus_headline(report),
            "cnn_parity": report["cnn_parity"],
            "cnn_precision": report["cnn_precision"],
            "cnn_mirror": report["cnn_mirror"],
        },
        training_data={
            **data.prepared.dataset.summary(),
            "cnn": "Training (aligned crops and FER framing), early stopping on PublicTest",
            "stacker": "PublicTest rows with a face, fitted to "
            + STACKER_LABELS[report["stacker_fitted_on"]["labels"]],
            "crop_extraction": data.crops.provenance,
            **({"cnn_from": report["cnn_training"]} if "from" in report["cnn_training"] else {}),
        },
        software=software_versions(paths["cnn"].read_bytes()),
        created=datetime.now(UTC).replace(microsecond=0).isoformat(),
        golden=golden_answers(paths, DEFAULT_CROP.size, len(data.prepared.dataset.class_names)),
    )
    write_manifest(manifest, path)


def _bundle_parity(
    bundle_path: Path, data: FusedData, fused: Probs, rows: npt.NDArray[np.intp]
) -> dict[str, float]:
    """The device's FusedModel (crop → CNN → stacker) against the trainer's batch path."""
    model = FusedModel(bundle_path)
    faces = rows[data.face[rows]][:300]
    features = data.prepared.features.values
    cnn_view = data.device_view()
    diffs = []
    for row in faces:
        blend = model.blendshapes.predict_rows(features[row : row + 1])[0]
        probs = model.stack(blend, model.predict_crop(cnn_view[row]))
        diffs.append(float(np.abs(probs - fused[row]).max()))
    return {"rows": len(faces), "max_abs_diff": max(diffs, default=0.0)}


def _sizes(*files: Path) -> dict[str, int]:
    sizes = {file.name: file.stat().st_size for file in files}
    sizes["total"] = sum(sizes.values())
    return sizes
