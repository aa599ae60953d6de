"""Record a session to the .npz format ``ReplaySource`` plays back.

**A recording is personal data**: it holds camera frames of a person's face. The device never
records on its own; this runs only when a person starts it from an interactive terminal
(``force=True`` exists for tests), writes the file readable by its owner only (mode 0600), and
never uploads it. Keep recordings out of version control and delete them when no longer needed.

Format: an uncompressed .npz with ``frames`` (N x H x W x 3 uint8 RGB) and ``ts_s`` (N
float64, seconds since the first frame, strictly rising).
"""

from __future__ import annotations

import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.errors import EmotionEdgeError, SourceUnavailable
from device.sources.base import RgbSource

EX_USAGE = 64  # sysexits.h
Rgb = npt.NDArray[np.uint8]


class RecordingRefused(EmotionEdgeError):
    """Recording was asked for without a person at an interactive terminal."""

    exit_code = EX_USAGE


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    path: Path
    frame_count: int
    duration_s: float
    width_px: int
    height_px: int


def record_session(
    source: RgbSource,
    out_path: Path,
    seconds: float,
    max_frames: int | None = None,
    *,
    force: bool = False,
) -> RecordingSummary:
    """Open ``source``, record for ``seconds`` (or ``max_frames``, or its end), close it, save.

    Frames are held in memory until the end (``max_frames`` bounds that), then written
    atomically. Raises RecordingRefused when stdin is not a TTY and ``force`` is False,
    SourceUnavailable when the source cannot open or delivers nothing.
    """
    if not force and (sys.stdin is None or not sys.stdin.isatty()):
        raise RecordingRefused(
            "recording saves camera frames (personal data); start it from an interactive terminal"
        )
    if out_path.suffix != ".npz":
        raise ValueError(f"a recording must be saved as .npz, not {out_path.name}")
    images, stamps = _capture(source, seconds, max_frames)
    ts_s = np.asarray(stamps, dtype=np.float64) - stamps[0]
    _write_npz(out_path, images, ts_s)
    height, width = images[0].shape[:2]
    return RecordingSummary(out_path, len(images), float(ts_s[-1]), int(width), int(height))


def _capture(
    source: RgbSource, seconds: float, max_frames: int | None
) -> tuple[list[Rgb], list[float]]:
    images: list[Rgb] = []
    stamps: list[float] = []
    source.open()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (max_frames is None or len(images) < max_frames):
            frame = source.read()
            if frame is None:
                break
            if images and frame.image.shape != images[0].shape:
                raise SourceUnavailable("the frame size changed during the recording")
            images.append(frame.image)
            stamps.append(frame.ts_s)
    finally:
        source.close()
    if not images:
        raise SourceUnavailable("the source delivered no frames; nothing was recorded")
    return images, stamps


def _write_npz(path: Path, images: list[Rgb], ts_s: npt.NDArray[np.float64]) -> None:
    """Stream the frames into the archive one by one (no second copy of the whole session)."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (len(images), *images[0].shape)}
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as archive:
            with archive.open("ts_s.npy", "w") as member:
                np.lib.format.write_array(member, ts_s, allow_pickle=False)
            with archive.open("frames.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, header)
                for image in images:
                    member.write(np.ascontiguousarray(image).tobytes())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
