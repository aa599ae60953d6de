"""Train/serve parity: trainer.extract (workers, cache) == device.features called directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.features.blendshapes import BlendshapeExtractor, FaceFeatures, grey_to_rgb
from device.features.schema import RGB_FEATURES
from device.pipeline import schema_vector
from trainer.datasets.fer2013 import FerDataset
from trainer.extract import ExtractionConfig, extract_features


def direct_blendshapes(images: np.ndarray, landmarker_path: Path) -> np.ndarray:
    """What the device's pipeline feeds its model: the RGB part of ``schema_vector``."""
    rows = []
    n = len(RGB_FEATURES)
    with BlendshapeExtractor(landmarker_path, running_mode="image") as extractor:
        for grey in images:
            result = extractor.extract(grey_to_rgb(grey))
            found = isinstance(result, FaceFeatures)
            rows.append(schema_vector(result)[:n] if found else np.full(n, np.nan, np.float32))
    return np.array(rows, dtype=np.float32)


def test_trainer_features_equal_device_features(
    fer_slice: FerDataset, landmarker_path: Path, tmp_path: Path
) -> None:
    images = fer_slice.images[::4][:60]
    config = ExtractionConfig(
        landmarker_path=landmarker_path,
        cache_dir=tmp_path,
        jobs=2,  # worker processes, as in a real run
        chunk_size=15,
        timing_sample=0,
        progress=False,
    )
    trainer_side = extract_features(images, config)
    cached = extract_features(images, config)  # read back from the npz cache
    device_side = direct_blendshapes(images, landmarker_path)

    assert trainer_side.timings["jobs"] == 2
    np.testing.assert_array_equal(trainer_side.face_found, ~np.isnan(device_side[:, 0]))
    assert trainer_side.face_found.sum() >= 45
    np.testing.assert_allclose(trainer_side.values, device_side, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(cached.values, trainer_side.values)
