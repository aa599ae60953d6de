"""Shared fixtures: the shared folder next to the checkout, the asset mirror, FER2013 slices."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from device.assets import MIRROR_ENV, AssetResolver
from device.errors import AssetError

if TYPE_CHECKING:  # trainer is imported lazily: device-only test runs stay light
    from trainer.datasets.fer2013 import FerDataset
    from trainer.extract import Features

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
FER_NPZ = SHARED_DIR / "data" / "fer2013" / "fer2013.npz"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED_DIR


@pytest.fixture(scope="session", autouse=True)
def asset_mirror_env() -> Iterator[Path]:
    """Point every test (and every process it spawns) at the asset mirror in shared/assets."""
    mirror = SHARED_DIR / "assets"
    previous = os.environ.get(MIRROR_ENV)
    os.environ[MIRROR_ENV] = str(mirror)
    yield mirror
    if previous is None:
        os.environ.pop(MIRROR_ENV, None)
    else:
        os.environ[MIRROR_ENV] = previous


@pytest.fixture(autouse=True)
def drop_cli_log_handlers() -> Iterator[None]:
    """A CLI run in a test calls logging.basicConfig on the test's captured stderr; once the test
    ends that stream is closed, and later log records would print "Logging error" tracebacks into
    other tests' stderr. Take such plain stream handlers off the root logger after each test."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def landmarker_path(asset_mirror_env: Path) -> Path:
    """face_landmarker.task from the mirror (verified by hash); tests never download."""
    resolver = AssetResolver(mirror_dir=asset_mirror_env, allow_download=False)
    try:
        return resolver.resolve("face_landmarker")
    except AssetError as exc:
        pytest.skip(f"face_landmarker.task not available: {exc}")


@pytest.fixture(scope="session")
def fer_npz_path() -> Path:
    if not FER_NPZ.is_file():
        pytest.skip(f"FER2013 npz not found at {FER_NPZ}")
    return FER_NPZ


@pytest.fixture(scope="session")
def fer_slice_rows(fer_npz_path: Path) -> np.ndarray:
    """Rows of a small class-balanced FER2013 slice: 30 Training + 8 PrivateTest per class."""
    with np.load(fer_npz_path) as data:
        labels, usage = data["labels"], data["usage"]
    rows = []
    for label in range(7):
        for split, count in (("Training", 30), ("PrivateTest", 8)):
            rows.extend(np.flatnonzero((labels == label) & (usage == split))[:count].tolist())
    return np.sort(np.array(rows))


@pytest.fixture(scope="session")
def fer_slice(fer_npz_path: Path, fer_slice_rows: np.ndarray) -> FerDataset:
    from trainer.datasets.fer2013 import load_fer2013

    return load_fer2013(fer_npz_path).subset(fer_slice_rows)


@pytest.fixture(scope="session")
def fer_slice_features(
    fer_slice: FerDataset, landmarker_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Features:
    """Blendshapes of the slice, extracted once per session in this process."""
    from trainer.extract import ExtractionConfig, extract_features

    config = ExtractionConfig(
        landmarker_path=landmarker_path,
        cache_dir=tmp_path_factory.mktemp("feature-cache"),
        jobs=1,
        timing_sample=0,
        progress=False,
    )
    return extract_features(fer_slice.images, config)
