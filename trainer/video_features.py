"""Blendshapes of video frames sampled every 100 ms, through the device's own extractor.

Each clip's frames are sampled by timestamp (``trainer.datasets.video_io``) and run through
``device.features.blendshapes.BlendshapeExtractor`` in IMAGE mode, like the FER extraction: every
frame on its own, so a frame's features do not depend on the frames before it. Clips run in
parallel worker processes (spawned, one landmarker each) with a progress bar. Each finished clip is
cached as one npz, keyed by the video's bytes, its segment, the sampling step and everything the
features depend on, written atomically: an interrupted run computes only the missing clips.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import tempfile
import time
from collections.abc import Iterator, Sequence
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
    mediapipe_version,
)
from device.features.schema import FEATURE_SCHEMA_VERSION, RGB_FEATURES
from trainer.datasets.common import FRAME_STEP_S, Problem, VideoItem
from trainer.datasets.table import FeatureTable
from trainer.datasets.video_io import UnreadableVideo, sampled_frames
from trainer.extract import DEFAULT_MIN_FACE_CONFIDENCE, default_cache_dir

logger = logging.getLogger(__name__)

N_FEATURES = len(RGB_FEATURES)
RUNNING_MODE: RunningMode = "image"
_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class VideoExtractionConfig:
    landmarker_path: Path
    cache_dir: Path = field(default_factory=default_cache_dir)
    jobs: int = 1
    step_s: float = FRAME_STEP_S
    min_face_confidence: float = DEFAULT_MIN_FACE_CONFIDENCE
    progress: bool = True


@dataclass(frozen=True)
class ClipFeatures:
    """The sampled frames of one clip: index, time, 52 blendshapes (NaN where no face)."""

    frame_indices: npt.NDArray[np.int64]
    times: npt.NDArray[np.float64]
    values: npt.NDArray[np.float32]
    error: str | None = None


@dataclass(frozen=True)
class ClipTask:
    position: int
    path: Path
    start_s: float
    end_s: float | None
    step_s: float
    cache_file: Path


@dataclass(frozen=True)
class VideoFeatures:
    """One table row per sampled frame, the clips that failed, and how it was made."""

    table: FeatureTable
    problems: tuple[Problem, ...]
    provenance: dict[str, Any]
    timings: dict[str, Any]


def extract_video_features(
    items: Sequence[VideoItem], config: VideoExtractionConfig
) -> VideoFeatures:
    """Blendshapes for every sampled frame of every item, computing only uncached clips."""
    provenance = video_provenance(config)
    cache = config.cache_dir / provenance["cache_key"]
    cache.mkdir(parents=True, exist_ok=True)
    tasks = [_task(position, item, config, cache) for position, item in enumerate(items)]
    missing = [task for task in tasks if not task.cache_file.is_file()]
    logger.info(
        "video features: %d of %d clips cached in %s", len(tasks) - len(missing), len(tasks), cache
    )
    started = time.perf_counter()
    results = {task.position: clip for task, clip in compute_clips(missing, config)}
    elapsed = time.perf_counter() - started
    for task in tasks:
        if task.position not in results:
            results[task.position] = load_clip(task.cache_file)
    table, problems = assemble(items, results)
    computed = sum(len(results[task.position].times) for task in missing)
    timings = _timings(len(tasks), len(missing), computed, elapsed, config)
    return VideoFeatures(table, tuple(problems), provenance, timings)


def video_provenance(config: VideoExtractionConfig) -> dict[str, Any]:
    """What the features depend on (as for FER, plus the sampling); its hash names the cache."""
    facts = {
        "extractor": "device.features.blendshapes.BlendshapeExtractor",
        "input": "video frames sampled by timestamp (trainer.datasets.video_io), as RGB",
        "running_mode": RUNNING_MODE,
        "min_face_confidence": config.min_face_confidence,
        "frame_step_s": config.step_s,
        "mediapipe_version": mediapipe_version(),
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "landmarker_sha256": file_sha256(config.landmarker_path),
    }
    key = hashlib.sha256(repr(sorted(facts.items())).encode()).hexdigest()[:16]
    return {**facts, "cache_key": f"video-blendshapes-{RUNNING_MODE}-{key}"}


def _task(position: int, item: VideoItem, config: VideoExtractionConfig, cache: Path) -> ClipTask:
    digest = hashlib.sha256(file_digest(item.path).encode())
    digest.update(repr((item.start_s, item.end_s, config.step_s)).encode())
    cache_file = cache / f"clip_{digest.hexdigest()[:24]}.npz"
    return ClipTask(position, item.path, item.start_s, item.end_s, config.step_s, cache_file)


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (a missing file hashes to its name: it fails later, reported)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
    except OSError:
        digest.update(f"missing:{path}".encode())
    return digest.hexdigest()


# --- computing clips ------------------------------------------------------------------------


def compute_clips(
    tasks: list[ClipTask], config: VideoExtractionConfig
) -> Iterator[tuple[ClipTask, ClipFeatures]]:
    """Clips as they finish (any order), each saved to the cache, with a progress bar."""
    if not tasks:
        return
    jobs = max(1, min(config.jobs, len(tasks)))
    bar = tqdm(total=len(tasks), unit="clip", desc="video blendshapes", disable=not config.progress)
    with bar:
        run = _run_serial if jobs == 1 else _run_pool
        for task, clip in run(tasks, config, jobs):
            if clip.error is None:
                save_clip(task.cache_file, clip)
            bar.update(1)
            yield task, clip


def _run_serial(
    tasks: list[ClipTask], config: VideoExtractionConfig, jobs: int
) -> Iterator[tuple[ClipTask, ClipFeatures]]:
    with _new_extractor(config.landmarker_path, config.min_face_confidence) as extractor:
        for task in tasks:
            yield task, clip_features(extractor, task)


def _run_pool(
    tasks: list[ClipTask], config: VideoExtractionConfig, jobs: int
) -> Iterator[tuple[ClipTask, ClipFeatures]]:
    # spawn: a forked child would inherit MediaPipe's threads and locks in an unknown state.
    context = multiprocessing.get_context("spawn")
    init_args = (config.landmarker_path, config.min_face_confidence)
    with context.Pool(jobs, initializer=_init_worker, initargs=init_args) as pool:
        yield from pool.imap_unordered(_worker_clip, tasks)
        pool.close()
        pool.join()


def clip_features(extractor: BlendshapeExtractor, task: ClipTask) -> ClipFeatures:
    """Sample the clip and extract each frame; an unreadable video gives an ``error``."""
    indices, times, rows = [], [], []
    try:
        for index, time_s, rgb in sampled_frames(task.path, task.step_s, task.start_s, task.end_s):
            result = extractor.extract(rgb)
            indices.append(index)
            times.append(time_s)
            rows.append(result.rgb_vector() if isinstance(result, FaceFeatures) else None)
    except UnreadableVideo as exc:
        return _empty_clip(str(exc))
    if not rows:
        return _empty_clip(f"video {task.path} gave no frame between the segment's start and end")
    values = np.full((len(rows), N_FEATURES), np.nan, dtype=np.float32)
    for row, scores in enumerate(rows):
        if scores is not None:
            values[row] = scores
    return ClipFeatures(np.array(indices, np.int64), np.array(times, np.float64), values)


def _empty_clip(error: str) -> ClipFeatures:
    empty = np.zeros((0, N_FEATURES), np.float32)
    return ClipFeatures(np.zeros(0, np.int64), np.zeros(0, np.float64), empty, error)


_WORKER: BlendshapeExtractor | None = None


def _new_extractor(landmarker_path: Path, min_conf: float) -> BlendshapeExtractor:
    return BlendshapeExtractor(landmarker_path, RUNNING_MODE, min_conf)


def _init_worker(landmarker_path: Path, min_conf: float) -> None:
    global _WORKER
    _WORKER = _new_extractor(landmarker_path, min_conf)
    mp_util.Finalize(_WORKER, _WORKER.close, exitpriority=10)


def _worker_clip(task: ClipTask) -> tuple[ClipTask, ClipFeatures]:
    if _WORKER is None:
        raise RuntimeError("video extraction worker used before its initializer ran")
    return task, clip_features(_WORKER, task)


# --- cache and assembly -----------------------------------------------------------------------


def save_clip(path: Path, clip: ClipFeatures) -> None:
    """Write atomically: a killed run leaves whole clips or none."""
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        np.savez(handle, frame_indices=clip.frame_indices, times=clip.times, values=clip.values)
    Path(handle.name).replace(path)


def load_clip(path: Path) -> ClipFeatures:
    with np.load(path) as data:
        return ClipFeatures(
            data["frame_indices"].astype(np.int64),
            data["times"].astype(np.float64),
            data["values"].astype(np.float32),
        )


def assemble(
    items: Sequence[VideoItem], results: dict[int, ClipFeatures]
) -> tuple[FeatureTable, list[Problem]]:
    """One row per sampled frame, in item order; failed clips become problems."""
    problems, parts = [], []
    for position, item in enumerate(items):
        clip = results[position]
        if clip.error is not None:
            problems.append(Problem("unreadable_video", clip.error, item.path.name, item.row))
            continue
        parts.append((item, clip))
    table = FeatureTable(
        values=_concat([clip.values for _, clip in parts], (0, N_FEATURES), np.float32),
        feature_names=RGB_FEATURES,
        subjects=_repeat(parts, lambda item: item.subject),
        labels=_repeat(parts, lambda item: item.label),
        clips=_repeat(parts, lambda item: item.clip),
        times=_concat([clip.times for _, clip in parts], (0,), np.float64),
        face_found=_concat([~np.isnan(c.values[:, 0]) for _, c in parts], (0,), np.bool_),
    )
    return table, problems


def _concat(arrays: list[npt.NDArray[Any]], empty: tuple[int, ...], dtype: Any) -> Any:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(empty, dtype)


def _repeat(parts: list[tuple[VideoItem, ClipFeatures]], get: Any) -> npt.NDArray[np.str_]:
    return np.array([get(item) for item, clip in parts for _ in clip.times], dtype=np.str_)


def _timings(
    clips: int, computed_clips: int, frames: int, elapsed: float, config: VideoExtractionConfig
) -> dict[str, Any]:
    return {
        "clips": clips,
        "computed_clips": computed_clips,
        "cached_clips": clips - computed_clips,
        "computed_frames": frames,
        "jobs": max(1, min(config.jobs, computed_clips)) if computed_clips else 0,
        "seconds": round(elapsed, 3),
        "frames_per_s": round(frames / elapsed, 1) if frames and elapsed > 0 else None,
    }
