"""``emotion-trainer``: thin argparse wiring over trainer functions that return data.

Exit codes: 0 ok, 2 bad command line, 65 bad dataset, 78 missing asset, 70 failed export check,
130 interrupted. Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from device.errors import EmotionEdgeError
from device.features.framing import FACE_MARGIN
from trainer.argtypes import channels as _channels
from trainer.argtypes import decay as _decay
from trainer.argtypes import fold_jobs as _fold_jobs
from trainer.argtypes import positive_int as _positive_int
from trainer.datasets_cli import add_datasets_command
from trainer.errors import UsageError
from trainer.precisions import DEFAULT_PRECISION, PRECISIONS

logger = logging.getLogger(__name__)

PROG = "emotion-trainer"
DATA_ENV = "EMOTION_EDGE_FER2013"
EX_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args.verbose)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except EmotionEdgeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished feature chunks stay cached", file=sys.stderr)
        return EX_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Build emotion models for emotion-edge devices.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add(commands, "extract", "extract (or complete the cache of) FER2013 blendshapes", _extract)
    ev = _add(commands, "evaluate", "score a model under the FER2013 protocols", _evaluate)
    ev.add_argument("--protocol", choices=("cv5", "official", "both"), default="both")
    ev.add_argument("--model", choices=_model_names(), default="random_forest")
    tr = _add(commands, "train", "fit on Training, score on PrivateTest, export ONNX", _train)
    tr.add_argument("--model", choices=_model_names(), default="hist_gradient_boosting")
    tr.add_argument(
        "--name", help="file stem of the .onnx/.json (default fer2013_blendshapes_<model>)"
    )
    bd = _add(commands, "build-default", "build the model the device ships", _build_default)
    bd.add_argument(
        "--out", type=Path, help="output folder (default: the device package's models/)"
    )
    _add(commands, "bench-fer", "the paper's table: RF vs HGB, both protocols", _bench)
    _add_build_fused(commands)
    _add_report(commands)
    _add_transfer(commands)
    add_datasets_command(commands)
    _add_thermal(commands)
    for sub, out_help in ((ev, "metrics JSON"), (tr, "output folder (required)")):
        sub.add_argument("--out", type=Path, required=sub is tr, help=out_help)
    return parser


def _add(
    commands: Any, name: str, help_text: str, handler: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
    sub.set_defaults(handler=handler)
    sub.add_argument(
        "--data", type=Path, help=f"FER2013 npz, csv or image folder (default ${DATA_ENV})"
    )
    sub.add_argument(
        "--cache-dir", type=Path, help="feature cache (default ~/.cache/emotion-edge/features)"
    )
    sub.add_argument(
        "--jobs", type=_positive_int, default=os.cpu_count() or 1, help="worker processes"
    )
    sub.add_argument(
        "--chunk-size", type=_positive_int, default=500, help="images per cached chunk"
    )
    sub.add_argument("--landmarker", type=Path, help="face_landmarker.task (default: asset mirror)")
    sub.add_argument(
        "--min-face-confidence",
        type=_fraction,
        default=0.5,
        help="face detection threshold; keep it equal to the device's features.min_face_confidence",
    )
    sub.add_argument(
        "--face-margin",
        type=_fraction,
        default=0.0,
        help="mid-grey margin around each face image before the landmarker, as a fraction of "
        f"its side on each side (0, the default: the image as it is; {FACE_MARGIN} finds a face "
        "in 96.6 %% of FER2013 PrivateTest instead of 89.6 %%, see docs/fused.md)",
    )
    sub.add_argument("--seed", type=int, default=0, help="random_state for splits and models")
    sub.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    if name in ("extract", "bench-fer"):
        sub.add_argument("--out", type=Path, help="features npz" if name == "extract" else "JSON")
    return sub


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must lie between 0 and 1")
    return value


def _model_names() -> tuple[str, ...]:
    from trainer.train import MODEL_NAMES

    return MODEL_NAMES


def _setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


# --- handlers: each parses nothing, calls one function, prints a short result ---------------


def _extract(args: argparse.Namespace) -> int:
    prepared = _prepare(args)
    print_extraction(prepared)
    if args.out:
        save_features(prepared, args.out)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate import PROTOCOLS, evaluate, write_json

    protocols = PROTOCOLS if args.protocol == "both" else (args.protocol,)
    results = evaluate(args.model, _prepare(args).labelled(), protocols, args.seed)
    print_evaluation(args.model, results)
    if args.out:
        write_json(results, args.out)
    return 0


def _train(args: argparse.Namespace) -> int:
    from trainer.workflows import train_and_export

    name = args.name or f"fer2013_blendshapes_{args.model}"
    print_export(train_and_export(_prepare(args), args.model, args.out, name, seed=args.seed))
    return 0


def _build_default(args: argparse.Namespace) -> int:
    from trainer.workflows import build_default

    print_export(build_default(_prepare(args), args.out, args.seed))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from trainer.bench_fer import format_table, run_bench
    from trainer.evaluate import write_json

    bench = run_bench(_prepare(args), args.seed)
    print(format_table(bench))
    if args.out:
        write_json(bench, args.out)
    return 0


def _add_build_fused(commands: Any) -> None:
    help_text = "train the face-crop CNN, stack it with the blendshape model, write the bundle"
    bf = _add(commands, "build-fused", help_text, _build_fused)
    bf.add_argument("--out", type=Path, help="bundle folder (default: the device's models/)")
    bf.add_argument("--work-dir", type=Path, help="CNN checkpoints (default: under the cache)")
    bf.add_argument("--epochs", type=_positive_int, default=45)
    bf.add_argument(
        "--aligned-share",
        type=_fraction,
        default=0.5,
        help="chance a training face is shown aligned instead of in FER's own framing",
    )
    bf.add_argument(
        "--erase",
        type=_fraction,
        default=0.0,
        help="chance a training face gets one rectangle blanked out (cutout augmentation)",
    )
    bf.add_argument(
        "--ema",
        type=_decay,
        help="decay per step of an exponential moving average of the CNN's weights, which is "
        "then what is validated and shipped (0: off; default: the trainer's, see docs/fused.md)",
    )
    bf.add_argument(
        "--ferplus-share",
        type=_fraction,
        default=0.0,
        help="share of each training target taken from the image's FER+ votes (0: labels only)",
    )
    bf.add_argument(
        "--self-distil",
        type=_fraction,
        help="final share of each training target taken from the CNN's own running-average "
        "answers on that image (self-distillation; 0: off; default: the trainer's, 0.6)",
    )
    bf.add_argument("--report", type=Path, help="write the full report JSON here")
    bf.add_argument(
        "--cnn-precision",
        choices=tuple(PRECISIONS),
        default=DEFAULT_PRECISION,
        help="how the CNN is stored and computed (docs/fused.md, 'One answer on every CPU'); "
        "a form whose answers on this CPU's kernels differ from the reference is refused",
    )
    bf.add_argument(
        "--float-cnn",
        action="store_const",
        const="float32",
        dest="cnn_precision",
        help="the same as --cnn-precision float32 (the default)",
    )
    bf.add_argument(
        "--cnn-from",
        type=Path,
        metavar="CNN.onnx",
        help="no training: stack this exported CNN (an int8 one is dequantized to float first), "
        "e.g. the shipped device/models/fer2013_crop_cnn.onnx",
    )
    bf.add_argument(
        "--mirror",
        action="store_true",
        help="the CNN also reads the mirrored crop and averages (twice the CNN's time per frame)",
    )
    bf.add_argument(
        "--stacker-labels",
        choices=("fer2013", "ferplus"),
        default="fer2013",
        help="fit the stacker to FER2013's labels (default) or to the FER+ majority votes, "
        "so the bundle answers as most of FER+'s ten annotators would",
    )
    bf.add_argument(
        "--blendshape-model",
        type=Path,
        help="the blendshape model .onnx to stack (with its .json; default: the device's HGB)",
    )
    bf.add_argument(
        "--channels",
        type=_channels,
        help="CNN shape as 'width,convs' per block (default '32,1 48,1 96,2 160,1')",
    )


def _build_fused(args: argparse.Namespace) -> int:
    from device.inference.classifier import BUILTIN_BLENDSHAPES
    from trainer.cnn import CHANNELS, CnnConfig
    from trainer.fused import build_fused, default_work_dir, format_report
    from trainer.workflows import default_models_dir

    config = CnnConfig(
        epochs=args.epochs,
        aligned_share=args.aligned_share,
        erase=args.erase,
        ema=CnnConfig.ema if args.ema is None else args.ema,
        ferplus_share=args.ferplus_share,
        self_distil=CnnConfig.self_distil if args.self_distil is None else args.self_distil,
        seed=args.seed,
        progress=not args.no_progress,
        channels=args.channels or CHANNELS,
    )
    work_dir = args.work_dir or default_work_dir(config, args.face_margin)
    blendshape_model = args.blendshape_model or BUILTIN_BLENDSHAPES
    report = build_fused(
        _data_path(args.data),
        args.out or default_models_dir(),
        work_dir,
        _extraction(args),
        config,
        blendshape_model=blendshape_model,
        precision=args.cnn_precision,
        mirror=args.mirror,
        stacker_labels=args.stacker_labels,
        cnn_from=args.cnn_from,
    )
    print(format_report(report))
    if args.report:
        from trainer.evaluate import write_json

        write_json(report, args.report)
    return 0


def _add_report(commands: Any) -> None:
    from trainer.evaluate import BACKENDS
    from trainer.report import SMILE
    from trainer.significance import DEFAULT_BOOTSTRAP

    help_text = "report: protocols, models, significance, figures (report.md)"
    rp = _add(commands, "report", help_text, _report)
    rp.add_argument("--out", type=Path, required=True, help="report folder")
    rp.add_argument(
        "--protocol",
        nargs="+",
        choices=PROTOCOL_CHOICES,
        help="default: cv5 official for FER2013, loso person_specific for labelled frames",
    )
    _add_frames_options(rp, required=False)
    models = ["random_forest", "hist_gradient_boosting"]
    rp.add_argument("--model", nargs="+", choices=_model_names(), default=models)
    rp.add_argument("--permutations", type=int, default=0, help="label permutations (0: none)")
    rp.add_argument("--bootstrap", type=_positive_int, default=DEFAULT_BOOTSTRAP)
    rp.add_argument("--feature", nargs="+", default=list(SMILE), help="Figure 2's feature(s)")
    rp.add_argument("--backend", choices=BACKENDS, default="loky", help="joblib backend for folds")
    rp.add_argument("--fold-jobs", type=_fold_jobs, default=1, help="folds at once (-1: all cores)")
    rp.add_argument(
        "--feature-set",
        choices=("all", "blendshapes"),
        default="all",
        help="model inputs: every extracted feature, or the paper's 52 blendshapes only",
    )


def _report(args: argparse.Namespace) -> int:
    from trainer.evaluate import parallel_backend
    from trainer.report import ReportSettings

    settings = ReportSettings(
        models=tuple(dict.fromkeys(args.model)),
        seed=args.seed,
        n_permutations=args.permutations,
        n_boot=args.bootstrap,
        features=tuple(args.feature),
        progress=not args.no_progress,
    )
    fer = args.kind == "fer2013"
    default = ("cv5", "official") if fer else ("loso", "person_specific")
    protocols = tuple(dict.fromkeys(args.protocol or default))
    run = _fer_report if fer else _frames_report
    with parallel_backend(args.backend, args.fold_jobs):
        report = run(args, settings, protocols)
    print(f"report: {report.markdown} ({len(report.figures)} figures)")
    return 0


def _fer_report(args: argparse.Namespace, settings: Any, protocols: tuple[str, ...]) -> Any:
    from trainer.report import run_fer_report

    prepared = _prepare(args)
    command = [PROG, "report", "--data", str(_data_path(args.data)), "--out", str(args.out)]
    command += _report_command_tail(args, settings, protocols)
    prefix = "blendshape." if args.feature_set == "blendshapes" else None
    return run_fer_report(prepared, protocols, args.out, settings, command, feature_prefix=prefix)


def _report_command_tail(
    args: argparse.Namespace, settings: Any, protocols: tuple[str, ...]
) -> list[str]:
    command = ["--protocol", *protocols, "--model", *settings.models, "--seed", str(args.seed)]
    command += ["--permutations", str(args.permutations), "--bootstrap", str(args.bootstrap)]
    command += ["--min-face-confidence", str(args.min_face_confidence), *_margin_args(args)]
    return [*command, "--feature-set", args.feature_set]


def _margin_args(args: argparse.Namespace) -> list[str]:
    """``--face-margin`` for a recorded command line, when it is not the default."""
    return ["--face-margin", str(args.face_margin)] if args.face_margin else []


def _frames_report(args: argparse.Namespace, settings: Any, protocols: tuple[str, ...]) -> Any:
    from trainer.report import run_table_report

    if args.data is None:
        raise UsageError(f"--kind {args.kind} needs --data PATH (the dataset folder or table)")
    frames = _load_frames(args, args.data)
    command = [PROG, "report", "--kind", args.kind, "--data", str(args.data)]
    command += ["--merge-map", _merge_spec(args), "--out", str(args.out)]
    command += _report_command_tail(args, settings, protocols)
    prefix = "blendshape." if args.feature_set == "blendshapes" else None
    return run_table_report(
        frames.table,
        protocols,
        args.out,
        settings,
        command,
        inputs=frames.summary,
        feature_prefix=prefix,
    )


# --- labelled frames (BAUM-1, labelled videos, feature tables) and the transfer experiment ---

PROTOCOL_CHOICES = ("cv5", "official", "loso", "person_specific", "clip_kfold")
FRAME_PROTOCOLS = ("loso", "person_specific", "clip_kfold", "cv5")
FRAME_KINDS = ("baum1s", "baum1a", "videos", "table")


def _add_frames_options(sub: argparse.ArgumentParser, *, required: bool) -> None:
    kinds = FRAME_KINDS if required else ("fer2013", *FRAME_KINDS)
    sub.add_argument(
        "--kind",
        choices=kinds,
        required=required,
        default=None if required else "fer2013",
        help="dataset format" + ("" if required else " (default fer2013; others read --data)"),
    )
    sub.add_argument(
        "--merge-map",
        metavar="FILE",
        help="label merge map: .toml/.json, or 'paper' (default for BAUM-1) or 'none'",
    )
    sub.add_argument("--annotations", type=Path, metavar="SHEET", help="BAUM-1 sheet if elsewhere")


def _merge_spec(args: argparse.Namespace) -> str:
    if args.merge_map is not None:
        return str(args.merge_map)
    return "paper" if args.kind in ("baum1s", "baum1a") else "none"


def _load_frames(args: argparse.Namespace, path: Path) -> Any:
    from trainer.datasets.common import load_merge_map
    from trainer.workflows import load_frames

    video_config = None if args.kind == "table" else _video_config(args)
    merge_map = load_merge_map(_merge_spec(args))
    return load_frames(
        args.kind, path, merge_map, annotations=args.annotations, video_config=video_config
    )


def _video_config(args: argparse.Namespace) -> Any:
    from trainer.extract import default_cache_dir
    from trainer.video_features import VideoExtractionConfig

    return VideoExtractionConfig(
        landmarker_path=_landmarker(args.landmarker),
        cache_dir=args.cache_dir or default_cache_dir(),
        jobs=args.jobs,
        min_face_confidence=args.min_face_confidence,
        progress=not args.no_progress,
    )


def _add_transfer(commands: Any) -> None:
    from trainer.evaluate import BACKENDS
    from trainer.significance import DEFAULT_BOOTSTRAP
    from trainer.transfer import CONDITIONS, DEFAULT_PROTOCOLS, DEFAULT_THRESHOLD

    help_text = "the paper's future work: FER2013 -> BAUM-1 transfer with pruned frames"
    tf = _add(commands, "transfer", help_text, _transfer)
    tf.add_argument("--target", type=Path, required=True, help="BAUM-1 folder, videos or table")
    _add_frames_options(tf, required=True)
    tf.add_argument("--out", type=Path, required=True, help="output folder")
    tf.add_argument(
        "--protocol", nargs="+", choices=FRAME_PROTOCOLS, default=list(DEFAULT_PROTOCOLS)
    )
    tf.add_argument(
        "--model",
        default="hist_gradient_boosting",
        help="model name or spec, e.g. random_forest:n_estimators=200",
    )
    tf.add_argument(
        "--threshold",
        type=_fraction,
        default=DEFAULT_THRESHOLD,
        help="keep a target frame when the FER model gives its label at least this probability",
    )
    tf.add_argument(
        "--rules", default="default", help="expert rules: a .toml/.json file, 'default' or 'none'"
    )
    tf.add_argument(
        "--target-weight", type=float, default=1.0, help="sample weight of a target frame"
    )
    tf.add_argument("--condition", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    tf.add_argument("--bootstrap", type=_positive_int, default=DEFAULT_BOOTSTRAP)
    tf.add_argument("--feature-set", choices=("all", "blendshapes"), default="all")
    tf.add_argument("--backend", choices=BACKENDS, default="loky", help="joblib backend for folds")
    tf.add_argument("--fold-jobs", type=_fold_jobs, default=1, help="folds at once (-1: all cores)")


def _transfer(args: argparse.Namespace) -> int:
    from trainer.evaluate import parallel_backend
    from trainer.model_config import parse_spec
    from trainer.report import select_features
    from trainer.transfer import TransferSettings, load_rules, run_transfer, summary_text

    choice = parse_spec(args.model)
    settings = TransferSettings(
        model=choice.name,
        model_params=choice.params,
        threshold=args.threshold,
        rules=load_rules(args.rules),
        protocols=tuple(dict.fromkeys(args.protocol)),
        conditions=tuple(dict.fromkeys(args.condition)),
        target_weight=args.target_weight,
        seed=args.seed,
        n_boot=args.bootstrap,
        progress=not args.no_progress,
    )
    prepared = _prepare(args)
    prefix = "blendshape." if args.feature_set == "blendshapes" else None
    fer, names = select_features(prepared.labelled(), prepared.features.feature_names, prefix)
    frames = _load_frames(args, args.target)
    inputs = {
        "fer2013": prepared.dataset.summary(),
        "fer2013_features": prepared.features.extraction_summary(),
        "target": frames.summary,
    }
    command = _transfer_command(args, settings)
    with parallel_backend(args.backend, args.fold_jobs):
        result = run_transfer(
            fer, names, frames.table, settings, args.out, command=command, inputs=inputs
        )
    print(summary_text(result.results))
    print(f"transfer: {result.files['markdown']}")
    return 0


def _transfer_command(args: argparse.Namespace, settings: Any) -> list[str]:
    """The command that ran, every default filled in (for the manifest)."""
    command = [PROG, "transfer", "--data", str(_data_path(args.data)), "--kind", args.kind]
    command += ["--target", str(args.target), "--merge-map", _merge_spec(args)]
    command += ["--out", str(args.out), "--protocol", *settings.protocols]
    command += ["--model", args.model, "--threshold", str(args.threshold), "--rules", args.rules]
    command += ["--target-weight", str(args.target_weight), "--condition", *settings.conditions]
    command += ["--bootstrap", str(args.bootstrap), "--feature-set", args.feature_set]
    command += ["--backend", args.backend, "--fold-jobs", str(args.fold_jobs)]
    return [
        *command,
        "--seed",
        str(args.seed),
        "--min-face-confidence",
        str(args.min_face_confidence),
        *_margin_args(args),
    ]


# --- thermal commands (thin wrappers over trainer.thermal and trainer.thermal_landmarks) ----


def _add_thermal(commands: Any) -> None:
    from trainer.thermal import add_thermal_command
    from trainer.thermal_landmarks import add_arguments, run

    add_thermal_command(commands)
    help_text = "train the 54-point thermal landmark model (dlib) from SF-TL54 labelme files"
    tl = commands.add_parser("thermal-landmarks", help=help_text, description=help_text)
    tl.set_defaults(handler=run)
    add_arguments(tl)
    tl.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _prepare(args: argparse.Namespace) -> Any:
    from trainer.workflows import prepare

    return prepare(_data_path(args.data), _extraction(args))


def _extraction(args: argparse.Namespace) -> Any:
    from trainer.extract import DEFAULT_TIMING_SAMPLE, ExtractionConfig, default_cache_dir

    return ExtractionConfig(
        landmarker_path=_landmarker(args.landmarker),
        cache_dir=args.cache_dir or default_cache_dir(),
        jobs=args.jobs,
        chunk_size=args.chunk_size,
        min_face_confidence=args.min_face_confidence,
        face_margin=args.face_margin,
        timing_sample=DEFAULT_TIMING_SAMPLE if args.command in ("extract", "bench-fer") else 0,
        progress=not args.no_progress,
    )


def _data_path(given: Path | None) -> Path:
    from trainer.errors import DatasetError

    from_env = os.environ.get(DATA_ENV)
    if given is None and not from_env:
        raise UsageError(f"no FER2013 data given: pass --data PATH or set {DATA_ENV}")
    path = given if given is not None else Path(str(from_env))
    if not path.exists():
        raise DatasetError(f"FER2013 path {path} does not exist")
    return path


def _landmarker(explicit: Path | None) -> Path:
    from device.assets import AssetResolver

    return AssetResolver().resolve("face_landmarker", explicit=explicit)


# --- what the handlers print (results on stdout; progress and logs on stderr) ---------------


def print_extraction(prepared: Any) -> None:
    features, timings = prepared.features, prepared.features.timings
    print(f"{len(features.values):,} images, face found in {features.coverage:.1%}")
    print(f"cache: {features.provenance['cache_key']} ({timings['cached_chunks']} chunks reused)")
    if timings["images_per_s"]:
        print(
            f"extraction: {timings['computed_images']:,} images in {timings['seconds']:.1f} s, "
            f"{timings['images_per_s']} images/s with {timings['jobs']} workers"
        )
    if timings["single_core_images_per_s"]:
        print(f"one landmarker on one core: {timings['single_core_images_per_s']} images/s")


def save_features(prepared: Any, out: Path) -> None:
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        features=prepared.features.values,
        face_found=prepared.features.face_found,
        feature_names=np.array(prepared.features.feature_names),
        labels=prepared.dataset.labels,
        usage=prepared.dataset.usage,
        class_names=np.array(prepared.dataset.class_names),
    )
    print(f"features written to {out}")


def print_evaluation(model: str, results: dict[str, Any]) -> None:
    for protocol, scores in results.items():
        print(f"{protocol} {model}: {_scores_text(scores)}")


def _scores_text(scores: dict[str, Any]) -> str:
    def value(section: str, key: str) -> str:
        item = scores[section][key]
        return f"{item['mean']:.4f}±{item['std']:.4f}" if isinstance(item, dict) else f"{item:.4f}"

    coverage = scores["coverage_test"]
    coverage = coverage["mean"] if isinstance(coverage, dict) else coverage
    return (
        f"faces acc {value('face_found', 'accuracy')} F1 {value('face_found', 'macro_f1')}; "
        f"all rows acc {value('all_rows', 'accuracy')} F1 {value('all_rows', 'macro_f1')}; "
        f"majority acc {value('majority_face_found', 'accuracy')}; coverage {coverage:.1%}"
    )


def print_export(result: Any) -> None:
    metrics = result.manifest.metrics
    parity = result.parity
    print(f"model: {result.onnx_path} ({result.size_bytes / 1e6:.2f} MB)")
    print(f"manifest: {result.manifest_path}")
    print(
        f"official split: faces acc {metrics['face_found']['accuracy']:.4f} "
        f"F1 {metrics['face_found']['macro_f1']:.4f}; all rows acc "
        f"{metrics['all_rows']['accuracy']:.4f} F1 {metrics['all_rows']['macro_f1']:.4f}"
    )
    print(
        f"ONNX parity: max |diff| {parity['max_abs_diff']:.2e}, "
        f"argmax agreement {parity['argmax_agreement']:.4f} "
        f"({parity['argmax_agreement_ties_allowed']:.4f} counting ties) on {parity['n_rows']} rows"
    )
