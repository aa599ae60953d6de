"""How much the CNN's answers depend on how a large face is sampled into its 48 x 48 crop.

    python -m trainer.crop_sampling VIDEO... [--model BUNDLE.json] [--frames 300]

For every frame with a face: the shipped crop (``face_crop``, bilinear, reads 2 x 2 image pixels
per crop pixel) and the area-averaged candidate (``area_averaged_crop``), each through the
bundle's CNN. Prints per video the face's size (image pixels per crop pixel), how far the two
crops differ, how often the CNN names another class, how often its class changes from one frame
to the next, its classes with each crop, and the median time of each crop in a warm loop (the
device's cold-cache cost is ``bench``'s). Aggregates only: no pixels, no landmarks.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.argtypes import positive_int
from device.assets import AssetResolver
from device.errors import EmotionEdgeError
from device.features.blendshapes import BlendshapeExtractor, FaceFeatures
from device.features.crop import CROP_POINTS, area_averaged_crop, crop_inverse, face_crop
from device.inference.bundle import FusedModel
from device.inference.classifier import MODELS_DIR
from device.sources.opencv import read_video_frames


@dataclass
class SamplingRun:
    """Per frame with a face: face scale, crop difference, both classes, both crop times."""

    scale: list[float] = field(default_factory=list)
    grey_diff: list[float] = field(default_factory=list)
    point_class: list[int] = field(default_factory=list)
    area_class: list[int] = field(default_factory=list)
    point_s: list[float] = field(default_factory=list)
    area_s: list[float] = field(default_factory=list)

    def add(self, model: FusedModel, face: FaceFeatures, rgb: npt.NDArray[np.uint8]) -> None:
        points = face.points_xy(CROP_POINTS)
        t0 = time.perf_counter()
        point = face_crop(rgb, points, model.crop_spec)
        t1 = time.perf_counter()
        area = area_averaged_crop(rgb, points, model.crop_spec)
        t2 = time.perf_counter()
        inverse = crop_inverse(points, rgb.shape[1], rgb.shape[0], model.crop_spec)
        self.scale.append(float(np.hypot(inverse[0, 0], inverse[1, 0])))
        self.grey_diff.append(float(np.abs(point.astype(np.int16) - area).mean()))
        self.point_class.append(int(model.predict_crop(point).argmax()))
        self.area_class.append(int(model.predict_crop(area).argmax()))
        self.point_s.append(t1 - t0)
        self.area_s.append(t2 - t1)


def sample_video(
    model: FusedModel, extractor: BlendshapeExtractor, video: Path, frames: int
) -> SamplingRun:
    run = SamplingRun()
    for index, _, rgb in read_video_frames(video):
        if index >= frames:
            break
        face = extractor.extract(rgb, 0)
        if isinstance(face, FaceFeatures):
            run.add(model, face, rgb)
    return run


def flips(classes: list[int]) -> float:
    """Share of consecutive frames whose class differs."""
    values = np.asarray(classes)
    return float((values[1:] != values[:-1]).mean()) if len(values) > 1 else 0.0


def summary(run: SamplingRun, labels: tuple[str, ...]) -> list[str]:
    if not run.scale:
        return ["  no face found"]
    point, area = np.asarray(run.point_class), np.asarray(run.area_class)

    def counts(classes: npt.NDArray[np.int64]) -> str:
        found = np.bincount(classes, minlength=len(labels))
        return ", ".join(f"{name} {n}" for name, n in zip(labels, found, strict=True) if n)

    return [
        f"  {len(run.scale)} frames with a face; image pixels per crop pixel: median "
        f"{np.median(run.scale):.2f} ({min(run.scale):.2f} to {max(run.scale):.2f})",
        f"  crops differ by {np.mean(run.grey_diff):.2f} grey levels on average; the CNN names "
        f"the same class on {np.mean(point == area):.1%} of frames",
        f"  class changes from frame to frame: {flips(run.point_class):.1%} shipped crop, "
        f"{flips(run.area_class):.1%} area-averaged",
        f"  classes, shipped crop: {counts(point)}",
        f"  classes, area-averaged: {counts(area)}",
        f"  crop ms (median, warm loop): shipped {1000 * np.median(run.point_s):.3f}, "
        f"area-averaged {1000 * np.median(run.area_s):.3f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.crop_sampling", description=__doc__)
    parser.add_argument("videos", type=Path, nargs="+", metavar="VIDEO")
    parser.add_argument("--model", type=Path, default=MODELS_DIR / "fer2013_fused.json")
    parser.add_argument("--frames", type=positive_int, default=300, help="frames read per video")
    args = parser.parse_args(argv)
    try:
        model = FusedModel(args.model)
        landmarker = AssetResolver().resolve("face_landmarker")
        with BlendshapeExtractor(landmarker, "image") as extractor:
            for video in args.videos:
                run = sample_video(model, extractor, video, args.frames)
                print(video.name)
                print("\n".join(summary(run, model.labels)))
    except EmotionEdgeError as exc:  # a missing video or model: one sentence, no traceback
        parser.exit(2, f"{parser.prog}: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
