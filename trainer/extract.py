"""Blendshape features for a stack of grey faces, through the device's own extractor.

Work is split into chunks of rows. Each finished chunk is saved as one npz under a cache folder
whose name is keyed by the pixels, the feature schema, the MediaPipe version, the landmarker file
and the running mode, so an interrupted run resumes with the chunks that are still missing.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import util as mp_util
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from device.assets import file_sha256
from device.features.blendshapes import (
    BlendshapeExtractor,
    FaceFeatures,
    RunningMode,
    grey_to_rgb,
    mediapipe_version,
)
from device.features.framing import framed_stack
from device.features.schema import FEATURE_SCHEMA_VERSION, RGB_FEATURES

logger = logging.getLogger(__name__)

Span = tuple[int, int]  # [start, stop) rows of one chunk
Arrays = dict[str, npt.NDArray[Any]]  # what one chunk holds, by name
ChunkResult = tuple[Span, Arrays]
RowsFn = Callable[[Callable[[npt.NDArray[np.uint8]], Any], npt.NDArray[np.uint8]], Arrays]
N_FEATURES = len(RGB_FEATURES)
DEFAULT_CHUNK_SIZE = 500
DEFAULT_TIMING_SAMPLE = 200
DEFAULT_MIN_FACE_CONFIDENCE = 0.5  # the device's default (device.config FeaturesConfig)
TIMING_WARMUP = 5
FRAMED_INPUT = (
    "grey image inside a mid-grey margin (device.features.framing.framed), "
    "replicated to RGB by device.features.blendshapes.grey_to_rgb"
)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emotion-edge" / "features"


@dataclass(frozen=True)
class ExtractionConfig:
    landmarker_path: Path
    cache_dir: Path = field(default_factory=default_cache_dir)
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    running_mode: RunningMode = "image"
    min_face_confidence: float = DEFAULT_MIN_FACE_CONFIDENCE
    face_margin: float = 0.0  # mid-grey margin around each face (device.features.framing)
    timing_sample: int = DEFAULT_TIMING_SAMPLE  # 0: do not measure the single-core rate
    progress: bool = True


@dataclass(frozen=True)
class Features:
    """Blendshapes per image (NaN rows where no face was found) and how they were made."""

    values: npt.NDArray[np.float32]  # (N, 52), schema order
    face_found: npt.NDArray[np.bool_]  # (N,)
    feature_names: tuple[str, ...]
    provenance: dict[str, Any]
    timings: dict[str, Any]

    @property
    def coverage(self) -> float:
        return float(self.face_found.mean()) if self.face_found.size else 0.0

    def extraction_summary(self) -> dict[str, Any]:
        """The manifest's ``feature_extraction`` block."""
        return {**self.provenance, "coverage": round(self.coverage, 6)}


def extract_features(images: npt.NDArray[np.uint8], config: ExtractionConfig) -> Features:
    """Blendshapes for every grey image, computing only the chunks not yet in the cache."""
    provenance = extraction_provenance(images, config)
    framed = framed_stack(images, config.face_margin)
    arrays, timings = cached_rows(framed, config, provenance["cache_key"], extract_rows)
    values = arrays["features"] if len(images) else _empty()
    return Features(values, ~np.isnan(values[:, 0]), RGB_FEATURES, provenance, timings)


def cached_rows(
    images: npt.NDArray[np.uint8], config: ExtractionConfig, cache_key: str, rows: RowsFn
) -> tuple[Arrays, dict[str, Any]]:
    """``rows`` over every image, computing only the chunks not yet cached under ``cache_key``."""
    chunk_dir = config.cache_dir / cache_key
    chunk_dir.mkdir(parents=True, exist_ok=True)
    spans = chunk_spans(len(images), config.chunk_size)
    missing = [span for span in spans if not chunk_path(chunk_dir, span).is_file()]
    logger.info(
        "%s: %d of %d chunks cached in %s",
        cache_key,
        len(spans) - len(missing),
        len(spans),
        chunk_dir,
    )
    started = time.perf_counter()
    for span, values in compute_chunks(images, missing, config, rows):
        save_chunk(chunk_dir, span, values)
    elapsed = time.perf_counter() - started
    chunks = [load_chunk(chunk_dir, span) for span in spans]
    arrays = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]} if chunks else {}
    return arrays, _timings(images, missing, elapsed, config)


def extraction_provenance(
    images: npt.NDArray[np.uint8], config: ExtractionConfig
) -> dict[str, Any]:
    """What the features depend on; its hash names the cache folder."""
    digest = hashlib.sha256(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    facts: dict[str, Any] = {
        "extractor": "device.features.blendshapes.BlendshapeExtractor",
        "input": "grey image replicated to RGB by device.features.blendshapes.grey_to_rgb",
        "running_mode": config.running_mode,
        "min_face_confidence": config.min_face_confidence,
        "mediapipe_version": mediapipe_version(),
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "landmarker_sha256": file_sha256(config.landmarker_path),
        "images_sha256": digest.hexdigest(),
    }
    if config.face_margin:  # absent when 0, so caches made before margins existed still match
        facts["face_margin"] = config.face_margin
        facts["input"] = FRAMED_INPUT
    key = hashlib.sha256(repr(sorted(facts.items())).encode()).hexdigest()[:16]
    return {
        **facts,
        "cache_key": f"blendshapes-s{FEATURE_SCHEMA_VERSION}-{config.running_mode}-{key}",
    }


def chunk_spans(n_rows: int, chunk_size: int) -> list[Span]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    return [(start, min(start + chunk_size, n_rows)) for start in range(0, n_rows, chunk_size)]


def chunk_path(chunk_dir: Path, span: Span) -> Path:
    return chunk_dir / f"rows_{span[0]:08d}_{span[1]:08d}.npz"


def save_chunk(chunk_dir: Path, span: Span, values: Arrays) -> None:
    """Write atomically: a killed run leaves whole chunks or none."""
    with tempfile.NamedTemporaryFile(dir=chunk_dir, suffix=".tmp", delete=False) as handle:
        np.savez(handle, **values)  # type: ignore[arg-type]
    Path(handle.name).replace(chunk_path(chunk_dir, span))


def load_chunk(chunk_dir: Path, span: Span) -> Arrays:
    with np.load(chunk_path(chunk_dir, span)) as data:
        return {key: data[key] for key in data.files}


def compute_chunks(
    images: npt.NDArray[np.uint8],
    spans: list[Span],
    config: ExtractionConfig,
    rows: RowsFn | None = None,
) -> Iterator[ChunkResult]:
    """Chunks as they finish (any order), with a progress bar over images."""
    if not spans:
        return
    total = sum(stop - start for start, stop in spans)
    jobs = max(1, min(config.jobs, len(spans)))
    rows = rows or extract_rows
    bar = tqdm(total=total, unit="img", desc=rows.__name__, disable=not config.progress)
    with bar:
        run = _run_serial if jobs == 1 else _run_pool
        for span, values in run(images, spans, config, jobs, rows):
            bar.update(span[1] - span[0])
            yield span, values


def _run_serial(
    images: npt.NDArray[np.uint8],
    spans: list[Span],
    config: ExtractionConfig,
    jobs: int,
    rows: RowsFn,
) -> Iterator[ChunkResult]:
    with _extractor(config) as extractor:
        for start, stop in spans:
            yield (start, stop), rows(extractor.extract, images[start:stop])


def _run_pool(
    images: npt.NDArray[np.uint8],
    spans: list[Span],
    config: ExtractionConfig,
    jobs: int,
    rows: RowsFn,
) -> Iterator[ChunkResult]:
    # spawn: a forked child would inherit MediaPipe's threads and locks in an unknown state.
    context = multiprocessing.get_context("spawn")
    init_args = (config.landmarker_path, config.running_mode, config.min_face_confidence)
    with context.Pool(jobs, initializer=_init_worker, initargs=init_args) as pool:
        tasks: Iterable[tuple[Span, npt.NDArray[np.uint8], RowsFn]] = (
            ((start, stop), images[start:stop], rows) for start, stop in spans
        )
        yield from pool.imap_unordered(_worker_chunk, tasks)
        pool.close()
        pool.join()


def extract_rows(
    extract: Callable[[npt.NDArray[np.uint8]], Any], images: npt.NDArray[np.uint8]
) -> Arrays:
    """One row of RGB features (blendshapes, geometry) per grey image; NaN without a face."""
    out = np.full((len(images), N_FEATURES), np.nan, dtype=np.float32)
    for row, grey in enumerate(images):
        result = extract(grey_to_rgb(grey))
        if isinstance(result, FaceFeatures):
            out[row] = result.rgb_vector()
    return {"features": out}


_WORKER: BlendshapeExtractor | None = None


def _extractor(config: ExtractionConfig) -> BlendshapeExtractor:
    return BlendshapeExtractor(
        config.landmarker_path, config.running_mode, config.min_face_confidence
    )


def _init_worker(landmarker_path: Path, running_mode: RunningMode, min_conf: float) -> None:
    global _WORKER
    _WORKER = BlendshapeExtractor(landmarker_path, running_mode, min_conf)
    mp_util.Finalize(_WORKER, _WORKER.close, exitpriority=10)


def _worker_chunk(task: tuple[Span, npt.NDArray[np.uint8], RowsFn]) -> ChunkResult:
    span, images, rows = task
    if _WORKER is None:
        raise RuntimeError("extraction worker used before its initializer ran")
    return span, rows(_WORKER.extract, images)


def measure_landmarker_rate(images: npt.NDArray[np.uint8], config: ExtractionConfig) -> float:
    """Images per second of one landmarker in this process (after a short warm-up)."""
    with _extractor(config) as extractor:
        extract_rows(extractor.extract, images[:TIMING_WARMUP])
        started = time.perf_counter()
        extract_rows(extractor.extract, images)
        return len(images) / max(time.perf_counter() - started, 1e-9)


def _timings(
    images: npt.NDArray[np.uint8], missing: list[Span], elapsed: float, config: ExtractionConfig
) -> dict[str, Any]:
    computed = sum(stop - start for start, stop in missing)
    timings: dict[str, Any] = {
        "images": len(images),
        "computed_images": computed,
        "computed_chunks": len(missing),
        "cached_chunks": len(chunk_spans(len(images), config.chunk_size)) - len(missing),
        "jobs": max(1, min(config.jobs, len(missing))) if missing else 0,
        "seconds": round(elapsed, 3),
        "images_per_s": round(computed / elapsed, 1) if computed and elapsed > 0 else None,
        "single_core_images_per_s": None,
    }
    sample = images[: config.timing_sample]
    if config.timing_sample > 0 and len(sample):
        rate = measure_landmarker_rate(sample, config)
        timings["single_core_images_per_s"] = round(rate, 1)
    return timings


def _empty() -> npt.NDArray[np.float32]:
    return np.zeros((0, N_FEATURES), dtype=np.float32)
