"""Train a 54-point thermal landmark model (dlib shape predictor) from SF-TL54-style labelme files.

Each annotation is a labelme JSON: one ``rectangle`` shape (the face), then 54 ``point`` shapes
in the SF-TL54 order; ``imagePath`` names the image, relative to the JSON file or in a sibling
``images/`` folder (SF-TL54's ``{images,json}`` layout). Thermal images may be 8-bit renderings
(PNG/JPEG) or radiometric ``.npy`` arrays, which are stretched to 8 bits like on the device.

    python -m trainer.thermal_landmarks --train DIR [--val DIR] --out thermal_landmarks.dat
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.errors import EmotionEdgeError
from device.features.thermal_landmarks import (
    LabelledFace,
    PredictorTraining,
    ThermalLandmarker,
    mean_point_error,
    to_grey8,
    train_shape_predictor,
)
from device.features.thermal_roi import LANDMARK_COUNT, Box
from trainer.argtypes import positive_int as _positive_int
from trainer.errors import DatasetError


@dataclass(frozen=True)
class TrainingReport:
    model_path: Path
    train_faces: int
    val_faces: int
    train_error: float
    val_error: float | None
    seconds: float


def load_annotation(json_path: Path) -> LabelledFace:
    """One labelme JSON and its image as a LabelledFace; DatasetError names the file."""
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{json_path} is not a readable labelme JSON file: {exc}") from None
    shapes = data.get("shapes") if isinstance(data, dict) else None
    if not isinstance(shapes, list):
        raise DatasetError(f"{json_path} has no 'shapes' list: not a labelme annotation")
    box = _face_box(shapes, json_path)
    points = _points(shapes, json_path)
    image = _load_image(_image_path(json_path, data.get("imagePath")), json_path)
    return LabelledFace(image, box, points)


def _face_box(shapes: list[dict[str, Any]], where: Path) -> Box:
    rects = [s for s in shapes if s.get("shape_type") == "rectangle"]
    if len(rects) != 1:
        raise DatasetError(f"{where} has {len(rects)} rectangles; SF-TL54 files have one face box")
    (x0, y0), (x1, y1) = rects[0]["points"]
    return Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _points(shapes: list[dict[str, Any]], where: Path) -> np.ndarray:
    points = [s["points"][0] for s in shapes if s.get("shape_type") == "point"]
    if len(points) != LANDMARK_COUNT:
        raise DatasetError(f"{where} has {len(points)} landmark points, not {LANDMARK_COUNT}")
    return np.array(points, dtype=np.float64)


def _image_path(json_path: Path, image_path: Any) -> Path:
    if not isinstance(image_path, str) or not image_path:
        raise DatasetError(f"{json_path} does not name its image (imagePath)")
    name = Path(image_path.replace("\\", "/"))
    for candidate in (json_path.parent / name, json_path.parent.parent / "images" / name.name):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{json_path}: its image {image_path} is not beside it nor in ../images")


def _load_image(path: Path, where: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return to_grey8(np.load(path))
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.ascontiguousarray(np.asarray(image.convert("L"), dtype=np.uint8))
    except (OSError, UnidentifiedImageError):
        raise DatasetError(f"{where}: image {path} cannot be read") from None


def load_folder(folder: Path) -> list[LabelledFace]:
    if not folder.is_dir():
        raise DatasetError(f"annotation folder {folder} does not exist")
    files = sorted(folder.rglob("*.json"))
    if not files:
        raise DatasetError(f"{folder} holds no labelme .json files")
    return [load_annotation(path) for path in files]


def train(
    train_dir: Path, val_dir: Path | None, out: Path, options: PredictorTraining
) -> TrainingReport:
    faces = load_folder(train_dir)
    held_out = load_folder(val_dir) if val_dir is not None else []
    t0 = time.perf_counter()
    train_shape_predictor(faces, out, options)
    seconds = time.perf_counter() - t0
    landmarker = ThermalLandmarker(out)
    val_error = mean_point_error(landmarker, held_out) if held_out else None
    train_error = mean_point_error(landmarker, faces)
    return TrainingReport(out, len(faces), len(held_out), train_error, val_error, seconds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``emotion-trainer thermal-landmarks`` (and of ``python -m``)."""
    parser.add_argument("--train", type=Path, required=True, help="folder of labelme JSON files")
    parser.add_argument("--val", type=Path, help="held-out folder: reports its point error")
    parser.add_argument("--out", type=Path, required=True, help="the .dat model to write")
    parser.add_argument("--tree-depth", type=_positive_int, default=4)
    parser.add_argument("--cascade-depth", type=_positive_int, default=10)
    parser.add_argument("--oversampling", type=_positive_int, default=20)
    parser.add_argument("--threads", type=_positive_int, default=2)


def run(args: argparse.Namespace) -> int:
    """Train from parsed arguments and print the result; errors are EmotionEdgeError."""
    options = PredictorTraining(
        tree_depth=args.tree_depth,
        cascade_depth=args.cascade_depth,
        oversampling=args.oversampling,
        threads=args.threads,
    )
    print(format_report(train(args.train, args.val, args.out, options)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emotion-trainer thermal-landmarks", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except EmotionEdgeError as exc:
        print(f"emotion-trainer: {exc}", file=sys.stderr)
        return exc.exit_code


def format_report(report: TrainingReport) -> str:
    val = "n/a" if report.val_error is None else f"{report.val_error:.4f}"
    return (
        f"wrote {report.model_path} ({report.model_path.stat().st_size:,} B) in "
        f"{report.seconds:.1f} s from {report.train_faces} faces; mean point error / box "
        f"diagonal: train {report.train_error:.4f}, held-out ({report.val_faces} faces) {val}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
