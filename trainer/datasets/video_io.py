"""Video files for the trainer: probing, and frames sampled every ``step_s`` by timestamp.

The only module of ``trainer`` that imports cv2 (lazily). Frame times come from the container
(``CAP_PROP_POS_MSEC``), falling back to index / fps where the container gives none, so a clip at
29.97 fps and one at 23.976 fps are both sampled at 0, 100, 200 ms … of their own time line.
Each tick ``start_s + k * step_s`` takes the nearest frame (the first one within half a frame
interval of the tick); a tick with no frame that close (a gap in the stream) is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.features.blendshapes import quiet_native_stderr
from trainer.datasets.common import (
    FRAME_STEP_S,
    FrameSample,
    Problem,
    VideoInfo,
    VideoItem,
    relative_path,
)
from trainer.errors import DatasetError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
Rgb = npt.NDArray[np.uint8]
_FALLBACK_FPS = 30.0


class UnreadableVideo(DatasetError):
    """A video file that OpenCV cannot open or that holds no frames."""


def _cv2() -> Any:
    import cv2

    return cv2


def _open(path: Path) -> Any:
    cv = _cv2()
    if not path.is_file():
        raise UnreadableVideo(f"video {path} does not exist")
    with quiet_native_stderr():  # FFmpeg prints its own complaint about a broken file
        cap = cv.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise UnreadableVideo(f"video {path} cannot be opened (not a video, or a codec missing)")
    return cap


def probe_video(path: Path) -> VideoInfo:
    """fps, frame count and size from the container; the first frame must decode."""
    cv = _cv2()
    cap = _open(path)
    try:
        if not cap.grab():
            raise UnreadableVideo(f"video {path} holds no decodable frame")
        return VideoInfo(
            fps=float(cap.get(cv.CAP_PROP_FPS) or 0.0),
            frame_count=max(int(cap.get(cv.CAP_PROP_FRAME_COUNT) or 0), 1),
            width=int(cap.get(cv.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(cap.get(cv.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        cap.release()


def half_interval(fps: float, step_s: float) -> float:
    """How far from a tick a frame may lie and still be the tick's frame."""
    if fps > 0 and math.isfinite(fps):
        return min(0.5 / fps, step_s / 2)
    return step_s / 2


def expected_samples(
    info: VideoInfo, start_s: float = 0.0, end_s: float | None = None, step_s: float = FRAME_STEP_S
) -> int:
    """Ticks between start and the last frame (or ``end_s``): the frames sampling will give."""
    fps = info.fps if info.fps > 0 else _FALLBACK_FPS
    last = (info.frame_count - 1) / fps + half_interval(fps, step_s)
    stop = last if end_s is None else min(end_s, last)
    if stop < start_s:
        return 0
    return math.floor((stop - start_s) / step_s + 1e-9) + 1


def frame_times(cap: Any, fps: float) -> Iterator[tuple[int, float]]:
    """(index, seconds) of every frame, grabbing (decoding) but not converting it."""
    cv = _cv2()
    step = 1.0 / fps if fps > 0 and math.isfinite(fps) else 1.0 / _FALLBACK_FPS
    previous: float | None = None
    index = 0
    while cap.grab():
        pos = float(cap.get(cv.CAP_PROP_POS_MSEC)) / 1000.0
        usable = math.isfinite(pos) and (previous is None or pos > previous)
        time_s = pos if usable else (index * step if previous is None else previous + step)
        previous = time_s
        yield index, time_s
        index += 1


def sampled_frames(
    path: Path, step_s: float = FRAME_STEP_S, start_s: float = 0.0, end_s: float | None = None
) -> Iterator[tuple[int, float, Rgb]]:
    """(frame index, frame time, RGB) for each tick from ``start_s`` to ``end_s`` (inclusive)."""
    cap = _open(path)
    try:
        for index, time_s in _picked(cap, step_s, start_s, end_s):
            ok, bgr = cap.retrieve()
            if ok and bgr is not None:
                yield index, time_s, _to_rgb(bgr)
    finally:
        cap.release()


def sample_times(
    path: Path, step_s: float = FRAME_STEP_S, start_s: float = 0.0, end_s: float | None = None
) -> list[tuple[int, float]]:
    """The (frame index, time) pairs ``sampled_frames`` gives, without converting frames."""
    cap = _open(path)
    try:
        return list(_picked(cap, step_s, start_s, end_s))
    finally:
        cap.release()


def _picked(
    cap: Any, step_s: float, start_s: float, end_s: float | None
) -> Iterator[tuple[int, float]]:
    """(index, time) of each frame that serves a tick; the capture has just grabbed it."""
    fps = float(cap.get(_cv2().CAP_PROP_FPS) or 0.0)
    ticks = tick_frames(frame_times(cap, fps), step_s, start_s, end_s, half_interval(fps, step_s))
    for index, time_s, in_tick in ticks:
        if not in_tick:
            return
        yield index, time_s


def tick_frames(
    frames: Iterator[tuple[int, float]],
    step_s: float,
    start_s: float,
    end_s: float | None,
    half: float,
) -> Iterator[tuple[int, float, bool]]:
    """The frames that serve a tick, then one ``False`` marker once past ``end_s``."""
    k = 0
    for index, time_s in frames:
        while start_s + k * step_s < time_s - half:
            k += 1  # ticks that passed with no frame close enough
        tick = start_s + k * step_s
        if end_s is not None and tick > end_s + 1e-9:
            yield index, time_s, False
            return
        if time_s >= tick - half:
            yield index, time_s, True
            k += 1


def _to_rgb(bgr: Any) -> Rgb:
    cv = _cv2()
    code = cv.COLOR_GRAY2RGB if bgr.ndim == 2 else cv.COLOR_BGR2RGB
    rgb: Rgb = np.ascontiguousarray(cv.cvtColor(bgr, code), dtype=np.uint8)
    return rgb


def probe_items(items: list[VideoItem], root: Path) -> tuple[list[VideoItem], list[Problem]]:
    """Each item with its video's fps and size; an unreadable video is a problem, not an item."""
    readable: list[VideoItem] = []
    problems: list[Problem] = []
    for item in items:
        shown = relative_path(item.path, root)
        try:
            readable.append(replace(item, info=probe_video(item.path)))
        except UnreadableVideo as exc:
            message = str(exc).replace(str(item.path), shown)
            problems.append(Problem("unreadable_video", message, shown, item.row))
    return readable, problems


def frame_samples(item: VideoItem, step_s: float = FRAME_STEP_S) -> list[FrameSample]:
    """The labelled frames an item gives (times only, nothing converted): what extraction sees."""
    return [
        FrameSample(item.clip, item.subject, item.label, time_s, index)
        for index, time_s in sample_times(item.path, step_s, item.start_s, item.end_s)
    ]
