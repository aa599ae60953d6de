"""``emotion-trainer datasets …``: check a dataset before a long run; extract video features.

``check`` exits 0 when the dataset has no problems and 65 when it has any (the summary is still
printed and written); a dataset that cannot be read at all (no sheet, wrong columns) is one line
on stderr and 65; a bad command line is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from trainer.datasets.common import (
    FRAME_STEP_S,
    DatasetSummary,
    MergeMap,
    VideoDataset,
    load_merge_map,
)
from trainer.errors import EX_DATAERR, UsageError

KINDS = ("baum1s", "baum1a", "videos", "table", "fer2013")
VIDEO_KINDS = ("baum1s", "baum1a", "videos")
PROBLEMS_SHOWN = 20
DESCRIPTION = "Check a dataset before a long run; extract blendshapes from labelled videos."
CHECK_DESCRIPTION = (
    "Read a dataset, open every video, and summarise items, subjects, labels after the merge "
    "map and every problem with its file and row. Exit 0 without problems, 65 with problems "
    "(the summary is still printed and written) or when the dataset cannot be read, 2 on a bad "
    "command line."
)


def check_dataset(
    kind: str, path: Path, merge_map: MergeMap, annotations: Path | None = None
) -> DatasetSummary:
    """Read ``path`` as ``kind`` (opening every video) and summarise it."""
    if kind in VIDEO_KINDS:
        return load_videos(kind, path, merge_map, annotations).summary()
    if kind == "table":
        from trainer.datasets.table import load_feature_table

        return load_feature_table(path, merge_map=merge_map).summary()
    if kind == "fer2013":
        return fer2013_summary(path, merge_map)
    raise UsageError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")


def load_videos(
    kind: str, path: Path, merge_map: MergeMap, annotations: Path | None = None
) -> VideoDataset:
    if kind == "videos":
        from trainer.datasets.videos import load_video_folder

        return load_video_folder(path, merge_map=merge_map)
    from trainer.datasets.baum1 import load_baum1

    return load_baum1(path, kind, annotations=annotations, merge_map=merge_map)


def fer2013_summary(path: Path, merge_map: MergeMap) -> DatasetSummary:
    from trainer.datasets.fer2013 import load_fer2013

    data = load_fer2013(path)
    names = [data.class_names[int(label)] for label in data.labels]
    mapped = [merge_map.apply(name) for name in names]
    return DatasetSummary(
        kind="fer2013",
        source=str(path),
        items=len(data),
        subjects=(),
        label_counts=Counter(label for label in mapped if label is not None),
        problems=(),
        dropped=Counter(name for name, label in zip(names, mapped, strict=True) if label is None),
        merge_map=merge_map,
        extra={"usage_counts": dict(Counter(data.usage.tolist()))},
    )


# --- argparse wiring ------------------------------------------------------------------------


def add_datasets_command(commands: Any) -> None:
    """``datasets check`` and ``datasets extract`` under the trainer's sub-commands."""
    datasets = commands.add_parser(
        "datasets", help="check a dataset; extract video features", description=DESCRIPTION
    )
    actions = datasets.add_subparsers(dest="datasets_action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="validate a dataset and summarise it", description=CHECK_DESCRIPTION
    )
    check.set_defaults(handler=run_check)
    _add_common(check, KINDS)
    check.add_argument("--out", type=Path, help="write the JSON summary here")
    check.add_argument("--json", action="store_true", help="print the JSON summary on stdout")
    extract = actions.add_parser(
        "extract",
        help="blendshapes of video frames every 100 ms",
        description="Sample every clip every 100 ms by timestamp, extract 52 blendshapes per "
        "frame (MediaPipe, IMAGE mode, cached per clip) and write a feature table.",
    )
    extract.set_defaults(handler=run_extract)
    _add_common(extract, VIDEO_KINDS)
    _add_extraction_options(extract)
    images = actions.add_parser(
        "images",
        help="FER2013 images as PNG files in label folders (for emotion-device classify)",
        description="Write the FER2013 images of one usage as PNG files in folders named after "
        "their labels (OUT/happy/00042.png), so `emotion-device classify --pre-cropped "
        "--evaluate OUT` scores the device's own path on them.",
    )
    images.set_defaults(handler=run_images)
    images.add_argument("path", metavar="PATH", type=Path, help="FER2013 .npz, .csv or folder")
    images.add_argument("--usage", default="PrivateTest", help="Training, PublicTest, PrivateTest")
    images.add_argument("--out", type=Path, required=True, help="folder to write into")
    images.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _add_common(parser: argparse.ArgumentParser, kinds: tuple[str, ...]) -> None:
    parser.add_argument("path", metavar="PATH", type=Path, help="dataset folder or file")
    parser.add_argument("--kind", choices=kinds, required=True, help="dataset format")
    parser.add_argument(
        "--merge-map",
        metavar="FILE",
        help="label merge map: a .toml/.json file, or the preset 'paper' or 'none'",
    )
    parser.add_argument(
        "--annotations",
        metavar="SHEET",
        type=Path,
        help="BAUM-1 sheet (.xlsx/.csv) if not beside the videos",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _add_extraction_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="feature table (.csv/.parquet)")
    parser.add_argument("--cache-dir", type=Path, help="feature cache folder")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--landmarker", type=Path, help="face_landmarker.task")
    parser.add_argument("--min-face-confidence", type=float, default=0.5)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# --- handlers ---------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    merge_map = load_merge_map(args.merge_map)
    summary = check_dataset(args.kind, args.path, merge_map, args.annotations)
    data = summary.to_dict()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(format_summary(summary))
    return EX_DATAERR if summary.problems else 0


def format_summary(summary: DatasetSummary) -> str:
    """The summary as a few lines a person reads before starting a long run."""
    data = summary.to_dict()
    frames = sum(data.get("expected_frames", {}).values())
    lines = [
        f"{summary.kind} at {summary.source}: {summary.items} items, "
        f"{len(summary.subjects)} subjects"
        + (f", ~{frames} frames every {FRAME_STEP_S * 1000:.0f} ms" if frames else ""),
        "labels: " + _counts(data["label_counts"]),
    ]
    if summary.dropped:
        lines.append("dropped by the merge map: " + _counts(data["dropped_by_merge_map"]))
    lines.append(f"problems: {len(summary.problems)}" + _problem_kinds(data["problem_counts"]))
    lines += [f"  {problem.message}" for problem in summary.problems[:PROBLEMS_SHOWN]]
    if len(summary.problems) > PROBLEMS_SHOWN:
        lines.append(f"  … {len(summary.problems) - PROBLEMS_SHOWN} more (see --json or --out)")
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"


def _problem_kinds(counts: dict[str, int]) -> str:
    return f" ({_counts(counts)})" if counts else ""


def run_extract(args: argparse.Namespace) -> int:
    from trainer.datasets.table import write_feature_table
    from trainer.video_features import extract_video_features

    if not 0.0 <= args.min_face_confidence <= 1.0 or args.jobs < 1:
        raise UsageError("--min-face-confidence must lie in 0..1 and --jobs be at least 1")
    dataset = load_videos(args.kind, args.path, load_merge_map(args.merge_map), args.annotations)
    features = extract_video_features(dataset.items, _extraction_config(args))
    write_feature_table(features.table, args.out)
    table = features.table
    coverage = float(table.face_found.mean()) if len(table) else 0.0
    print(f"{len(table)} frames from {len(dataset.items)} clips, face found in {coverage:.1%}")
    print(f"features written to {args.out}")
    problems = len(dataset.problems) + len(features.problems)
    if problems:
        print(f"{problems} problems in the dataset (run `datasets check`)", file=sys.stderr)
    return 0


def _extraction_config(args: argparse.Namespace) -> Any:
    from device.assets import AssetResolver
    from trainer.extract import default_cache_dir
    from trainer.video_features import VideoExtractionConfig

    return VideoExtractionConfig(
        landmarker_path=AssetResolver().resolve("face_landmarker", explicit=args.landmarker),
        cache_dir=args.cache_dir or default_cache_dir(),
        jobs=args.jobs,
        min_face_confidence=args.min_face_confidence,
        progress=not args.no_progress,
    )


def run_images(args: argparse.Namespace) -> int:
    import cv2

    from trainer.datasets.fer2013 import load_fer2013

    dataset = load_fer2013(args.path)
    rows = np.flatnonzero(dataset.usage == args.usage)
    if not len(rows):
        raise UsageError(
            f"{args.path} has no {args.usage} rows; --usage names one of "
            f"{', '.join(sorted(set(dataset.usage.tolist())))}"
        )
    for name in dataset.class_names:
        (args.out / name).mkdir(parents=True, exist_ok=True)
    for row in rows:
        label = dataset.class_names[dataset.labels[row]]
        cv2.imwrite(str(args.out / label / f"{row:05d}.png"), dataset.images[row])
    print(f"{len(rows)} {args.usage} images in {args.out}")
    return 0
