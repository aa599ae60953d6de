"""``emotion-device classify``: the device's own path on image files, locally, publishing nothing.

Each image goes through the same landmarker (IMAGE mode), feature vector and model as on the
device. A file without a face gets the explicit ``no_face`` state and no probabilities, never a
guess. With ``evaluate``, the name of each image's folder is its true label (``happy/x.jpg``),
and a summary of accuracy, macro-F1 and face coverage follows.

With ``pre_cropped`` (images that are already face crops, like FER2013's), the landmarker sees each
image inside the mid-grey margin the model's training framed its faces with
(``device.features.framing``; recorded in the manifest), and an image in which it still finds no
face is labelled by the bundle's CNN alone, on the image as it is; its JSON keeps
``"face": false`` (no landmarks were found). A blendshape-only model cannot do this.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from device.assets import AssetResolver
from device.errors import EmotionEdgeError
from device.features.blendshapes import BlendshapeExtractor, FaceFeatures
from device.features.crop import whole_image_crop
from device.features.framing import framed
from device.inference.bundle import FusedModel
from device.inference.classifier import ModelHolder, OnnxClassifier
from device.pipeline import FaceModel

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})
NO_FACE = "no_face"
EX_DATAERR = 65  # some inputs could not be read


class UnreadableImage(EmotionEdgeError):
    exit_code = EX_DATAERR


@dataclass(frozen=True)
class Classified:
    path: Path
    label: str
    probabilities: dict[str, float]
    face: bool

    def as_json(self) -> str:
        data = {
            "path": str(self.path),
            "label": self.label,
            "probabilities": self.probabilities,
            "face": self.face,
        }
        return json.dumps(data)


@dataclass(frozen=True)
class ClassifyOptions:
    paths: Sequence[Path]
    model: Path | None = None
    min_face_confidence: float = 0.5
    as_json: bool = False
    evaluate: bool = False
    builtin: str = "fused"  # the built-in model when ``model`` is None: fused or blendshapes
    pre_cropped: bool = False
    progress: bool | None = None  # a bar on stderr; None: when it is a terminal and files are many


PROGRESS_FROM = 10  # images; fewer finish before a bar would tell anything


def image_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Files as given, and the images inside folders (recursively, sorted)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def read_rgb(path: Path) -> npt.NDArray[np.uint8]:
    from device.sources.opencv import read_image_rgb

    if not path.is_file():
        raise UnreadableImage(f"{path} does not exist")
    image = read_image_rgb(path)
    if image is None:
        raise UnreadableImage(f"{path} cannot be read as an image")
    return image


def classify_image(
    path: Path, extractor: BlendshapeExtractor, model: FaceModel, pre_cropped: bool = False
) -> Classified:
    image = read_rgb(path)
    seen = framed(image, face_margin_of(model)) if pre_cropped else image
    face = extractor.extract(seen, 0)
    if isinstance(face, FaceFeatures):
        return _classified(path, model.labels, model.predict_face(face, seen), face=True)
    if pre_cropped and isinstance(model, FusedModel):
        probs = model.predict_crop(whole_image_crop(image, model.crop_spec))
        return _classified(path, model.labels, probs, face=False)
    return Classified(path, NO_FACE, {}, face=False)


def face_margin_of(model: FaceModel) -> float:
    """The margin the model's training framed its face images with (0 for models without one)."""
    extraction: dict[str, Any] = {}
    if isinstance(model, FusedModel):
        extraction = model.manifest.training_data.get("crop_extraction", {})
    elif isinstance(model, OnnxClassifier):
        extraction = model.manifest.feature_extraction
    return float(extraction.get("face_margin", 0.0))


def _classified(
    path: Path, labels: Sequence[str], probs: npt.NDArray[np.float32], face: bool
) -> Classified:
    best = int(np.argmax(probs))
    table = {label: round(float(p), 4) for label, p in zip(labels, probs, strict=True)}
    return Classified(path, labels[best], table, face=face)


def run_classify(options: ClassifyOptions, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    classifier = ModelHolder(options.model, options.builtin).current
    landmarker = AssetResolver().resolve("face_landmarker")
    results: list[Classified] = []
    failures = 0
    files = list(image_files(options.paths))
    with BlendshapeExtractor(landmarker, "image", options.min_face_confidence) as extractor:
        for path in _with_progress(files, options.progress):
            try:
                result = classify_image(path, extractor, classifier, options.pre_cropped)
            except UnreadableImage as exc:
                tqdm.write(f"emotion-device: {exc}", file=sys.stderr)
                failures += 1
                continue
            results.append(result)
            tqdm.write(result.as_json() if options.as_json else _line(result), file=out)
            out.flush()
    if options.evaluate:
        print(format_summary(summarise(results, classifier.labels)), file=sys.stderr)
    if not results and not failures:
        print("emotion-device: no image files found in the given paths", file=sys.stderr)
        return EX_DATAERR
    return EX_DATAERR if failures else 0


def _with_progress(files: list[Path], progress: bool | None) -> Iterator[Path]:
    """The files, counted on a stderr bar as each finishes; ``tqdm.write`` keeps lines whole."""
    if progress is None:
        progress = len(files) >= PROGRESS_FROM and sys.stderr.isatty()
    return iter(tqdm(files, desc="classify", unit="image", file=sys.stderr, disable=not progress))


def _line(result: Classified) -> str:
    if not result.face:
        return f"{NO_FACE:10} {'':6} {result.path}"
    return f"{result.label:10} {result.probabilities[result.label]:6.3f} {result.path}"


def summarise(results: Sequence[Classified], labels: Sequence[str]) -> dict[str, float | int]:
    """Accuracy over images whose folder names a label; no face counts as wrong."""
    scored = [r for r in results if r.path.parent.name in labels]
    truth = [r.path.parent.name for r in scored]
    predicted = [r.label for r in scored]
    return {
        "images": len(scored),
        "faces": sum(r.face for r in scored),
        "accuracy": _accuracy(truth, predicted),
        "macro_f1": _macro_f1(truth, predicted, labels),
    }


def _accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    if not truth:
        return 0.0
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)


def _macro_f1(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    present = [label for label in labels if label in truth]
    scores = []
    for label in present:
        tp = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(p == label != t for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label != p for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def format_summary(summary: dict[str, float | int]) -> str:
    images = int(summary["images"])
    if images == 0:
        return "evaluate: no image sits in a folder named after a label (e.g. happy/x.jpg)"
    return (
        f"evaluate: {images} labelled images, face found in {int(summary['faces'])}, "
        f"accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f} "
        "(no face counts as wrong)"
    )
