"""Feature extraction: chunking, the on-disk cache, and resuming after a killed run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from device.features.blendshapes import BlendshapeExtractor
from device.features.schema import RGB_FEATURES
from trainer.datasets.fer2013 import FerDataset
from trainer.extract import (
    ExtractionConfig,
    Features,
    chunk_path,
    chunk_spans,
    extract_features,
    extraction_provenance,
)


class Killed(Exception):
    """Stands in for SIGKILL in the middle of a run."""


@pytest.fixture
def config(landmarker_path: Path, tmp_path: Path) -> ExtractionConfig:
    return ExtractionConfig(
        landmarker_path=landmarker_path,
        cache_dir=tmp_path / "cache",
        jobs=1,
        chunk_size=10,
        timing_sample=0,
        progress=False,
    )


@pytest.fixture(scope="module")
def images(fer_slice: FerDataset) -> np.ndarray:
    return fer_slice.images[:40]


def test_chunk_spans_cover_every_row_once() -> None:
    assert chunk_spans(25, 10) == [(0, 10), (10, 20), (20, 25)]
    assert chunk_spans(0, 10) == []
    with pytest.raises(ValueError, match="at least 1"):
        chunk_spans(5, 0)


def test_features_match_the_session_extraction(
    fer_slice_features: Features, fer_slice: FerDataset
) -> None:
    values, found = fer_slice_features.values, fer_slice_features.face_found
    assert values.shape == (len(fer_slice), len(RGB_FEATURES)) and values.dtype == np.float32
    assert fer_slice_features.feature_names == RGB_FEATURES
    assert np.isnan(values[~found]).all() and not np.isnan(values[found]).any()
    assert 0.75 < fer_slice_features.coverage < 1.0
    assert fer_slice_features.extraction_summary()["running_mode"] == "image"


def test_killed_run_resumes_with_only_the_missing_chunks(
    images: np.ndarray, config: ExtractionConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_extract = BlendshapeExtractor.extract
    calls = {"n": 0}

    def dies_after_25_images(self: BlendshapeExtractor, rgb: np.ndarray, ts_ms: int | None = None):
        calls["n"] += 1
        if calls["n"] > 25:
            raise Killed
        return real_extract(self, rgb, ts_ms)

    monkeypatch.setattr(BlendshapeExtractor, "extract", dies_after_25_images)
    with pytest.raises(Killed):
        extract_features(images, config)
    chunk_dir = config.cache_dir / extraction_provenance(images, config)["cache_key"]
    assert sorted(p.name for p in chunk_dir.glob("*.npz")) == [
        chunk_path(chunk_dir, (0, 10)).name,
        chunk_path(chunk_dir, (10, 20)).name,
    ]
    assert not list(chunk_dir.glob("*.tmp"))
    kept = {p: p.stat().st_mtime_ns for p in chunk_dir.glob("*.npz")}

    monkeypatch.setattr(BlendshapeExtractor, "extract", real_extract)
    resumed = extract_features(images, config)
    assert resumed.timings["computed_chunks"] == 2 and resumed.timings["cached_chunks"] == 2
    assert resumed.timings["computed_images"] == 20
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items())

    fresh = extract_features(images, replace(config, cache_dir=config.cache_dir / "fresh"))
    np.testing.assert_array_equal(resumed.values, fresh.values)


def test_cache_key_depends_on_pixels_and_mode(images: np.ndarray, config: ExtractionConfig) -> None:
    key = extraction_provenance(images, config)["cache_key"]
    assert key == extraction_provenance(images.copy(), config)["cache_key"]
    changed = images.copy()
    changed[0, 0, 0] ^= 1
    assert extraction_provenance(changed, config)["cache_key"] != key
    video = replace(config, running_mode="video")
    assert extraction_provenance(images, video)["cache_key"] != key


def test_fully_cached_run_computes_nothing_and_reports_rates(
    images: np.ndarray, config: ExtractionConfig
) -> None:
    extract_features(images[:10], config)
    again = extract_features(images[:10], replace(config, timing_sample=10))
    assert again.timings["computed_images"] == 0 and again.timings["images_per_s"] is None
    assert again.timings["single_core_images_per_s"] > 0
