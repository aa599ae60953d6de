"""Aligned face crops of a stack of grey faces, made by the device's own crop function.

The landmarker runs on every image exactly as in feature extraction (same cache machinery,
parallel, resumable); each face found becomes ``device.features.crop.face_crop`` of the image.
Images without a face keep a zero crop and ``face_found`` False.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from device.features.blendshapes import FaceFeatures, grey_to_rgb
from device.features.crop import CROP_POINTS, DEFAULT_CROP, CropSpec, face_crop
from device.features.framing import framed_stack
from trainer.extract import Arrays, ExtractionConfig, cached_rows, extraction_provenance


@dataclass(frozen=True)
class Crops:
    values: npt.NDArray[np.uint8]  # (N, size, size); zeros where no face was found
    face_found: npt.NDArray[np.bool_]  # (N,)
    spec: CropSpec
    provenance: dict[str, Any]
    timings: dict[str, Any]


def extract_crops(
    images: npt.NDArray[np.uint8], config: ExtractionConfig, spec: CropSpec = DEFAULT_CROP
) -> Crops:
    """Aligned crops for every grey image, computing only the chunks not yet cached."""
    provenance = {**extraction_provenance(images, config), "crop": spec.as_dict()}
    key = hashlib.sha256(repr(sorted(provenance.items())).encode()).hexdigest()[:16]
    provenance["cache_key"] = f"crops-v{spec.version}-{spec.size}-{key}"
    rows = crop_rows if spec == DEFAULT_CROP else _rows_for(spec)
    cache_key = provenance["cache_key"]
    framed = framed_stack(images, config.face_margin)
    arrays, timings = cached_rows(framed, _serial_if_custom(config, spec), cache_key, rows)
    if not len(images):
        arrays = {"crops": np.zeros((0, spec.size, spec.size), np.uint8), "face": np.zeros(0, bool)}
    return Crops(arrays["crops"], arrays["face"].astype(bool), spec, provenance, timings)


def crop_rows(
    extract: Callable[[npt.NDArray[np.uint8]], Any], images: npt.NDArray[np.uint8]
) -> Arrays:
    """The default crop of every grey image (zeros and face False where none is found)."""
    return _crops_with(DEFAULT_CROP, extract, images)


def _rows_for(spec: CropSpec) -> Callable[..., Arrays]:
    def rows(
        extract: Callable[[npt.NDArray[np.uint8]], Any], images: npt.NDArray[np.uint8]
    ) -> Arrays:
        return _crops_with(spec, extract, images)

    return rows


def _serial_if_custom(config: ExtractionConfig, spec: CropSpec) -> ExtractionConfig:
    """A non-default spec's row function is a closure, which worker processes cannot take."""
    return config if spec == DEFAULT_CROP else replace(config, jobs=1)


def _crops_with(
    spec: CropSpec, extract: Callable[[npt.NDArray[np.uint8]], Any], images: npt.NDArray[np.uint8]
) -> Arrays:
    crops = np.zeros((len(images), spec.size, spec.size), dtype=np.uint8)
    face = np.zeros(len(images), dtype=bool)
    for row, grey in enumerate(images):
        rgb = grey_to_rgb(grey)  # what the landmarker and, on the device, the crop both see
        result = extract(rgb)
        if isinstance(result, FaceFeatures):
            crops[row] = face_crop(rgb, result.points_xy(CROP_POINTS), spec)
            face[row] = True
    return {"crops": crops, "face": face}
