"""Record a session to the .npz format ``ReplaySource`` plays back (and, with a thermal
camera, a thermal recording beside it).

**A recording is personal data**: it holds camera frames of a person's face. The device never
records on its own; this runs only when a person starts it from an interactive terminal (never
under systemd; ``force=True`` and the ``is_tty``/``environ`` parameters exist for tests), says
on screen that it stores images before it starts, writes files readable by their owner only
(mode 0600), and never uploads them. Keep recordings out of version control and delete them
when no longer needed.

Format: an uncompressed .npz with ``frames`` (N x H x W x 3 uint8 RGB) and ``ts_s`` (N
float64, seconds since the first frame, strictly rising). ``record_cameras`` also writes
``<name>.thermal.npz`` in the thermal recording format (``docs/thermal-recording.md``,
centikelvin, or counts for a non-radiometric camera) whose ``ts_s`` is on the RGB file's clock
(seconds since its first frame; both stamped when the device received the frame).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import EmotionEdgeError, SourceUnavailable
from device.frames import ThermalFrame
from device.sources.base import RgbSource
from device.sources.thermal import ThermalSource
from device.sources.thermal.recording import ThermalRecording, write_recording

EX_USAGE = 64  # sysexits.h
Rgb = npt.NDArray[np.uint8]
STORES_IMAGES = (
    "RECORDING STORES IMAGES: {what} of whoever is in front of the camera(s) will be saved to "
    "{files} on this unit (owner-only files, never uploaded). Ctrl-C stops. Delete the files "
    "when you no longer need them."
)


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
    if not force:
        refuse_unless_interactive()
    if out_path.suffix != ".npz":
        raise ValueError(f"a recording must be saved as .npz, not {out_path.name}")
    images, stamps = _capture(source, seconds, max_frames)
    ts_s = np.asarray(stamps, dtype=np.float64) - stamps[0]
    _write_npz(out_path, images, ts_s)
    height, width = images[0].shape[:2]
    return RecordingSummary(out_path, len(images), float(ts_s[-1]), int(width), int(height))


def _capture(
    source: RgbSource, seconds: float, max_frames: int | None, received: bool = False
) -> tuple[list[Rgb], list[float]]:
    """Frames and their stamps: the source's ``ts_s``, or (``received``) the monotonic clock
    when each frame arrived."""
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
            stamps.append(time.monotonic() if received else frame.ts_s)
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


def stdin_is_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def refuse_unless_interactive(
    environ: Mapping[str, str] = os.environ, is_tty: Callable[[], bool] = stdin_is_tty
) -> None:
    """RecordingRefused under systemd or without a terminal on stdin."""
    if "INVOCATION_ID" in environ or "JOURNAL_STREAM" in environ:
        raise RecordingRefused(
            "recording is refused under systemd: it saves images of a person (personal data); "
            "run `emotion-device record` yourself from a terminal"
        )
    if not is_tty():
        raise RecordingRefused(
            "recording saves camera frames (personal data); start it from an interactive terminal"
        )


def thermal_path(out_path: Path) -> Path:
    """``session.npz`` → ``session.thermal.npz``."""
    return out_path.with_name(f"{out_path.stem}.thermal.npz")


@dataclass(frozen=True, slots=True)
class SessionSummary:
    rgb: RecordingSummary
    thermal_path: Path | None
    thermal_frames: int


@dataclass
class _Take:
    frames: list[ThermalFrame]
    received_s: list[float]
    error: BaseException | None = None


def record_cameras(
    rgb_source: RgbSource,
    thermal_source: ThermalSource | None,
    out_path: Path,
    seconds: float,
    max_frames: int | None = None,
    *,
    subject: str = "subject",
    sensor: str = "thermal",
    environ: Mapping[str, str] = os.environ,
    is_tty: Callable[[], bool] = stdin_is_tty,
    announce: Callable[[str], None] = print,
) -> SessionSummary:
    """Record both cameras at once (RGB only when ``thermal_source`` is None), interactive only.

    Says on screen that it stores images before any camera is opened. The thermal camera is
    read in its own thread; both are stamped on receipt, so their ``ts_s`` share one clock.
    """
    refuse_unless_interactive(environ, is_tty)
    if out_path.suffix != ".npz":
        raise ValueError(f"a recording must be saved as .npz, not {out_path.name}")
    files = [out_path] + ([thermal_path(out_path)] if thermal_source is not None else [])
    what = "RGB frames" + (" and thermal (temperature) frames" if thermal_source else "")
    announce(STORES_IMAGES.format(what=what, files=", ".join(map(str, files))))
    take, stop = _Take([], []), threading.Event()
    worker = _start_thermal(thermal_source, take, stop, seconds, max_frames)
    try:
        images, stamps = _capture(rgb_source, seconds, max_frames, received=True)
    finally:
        stop.set()
        if worker is not None:
            worker.join()
    if take.error is not None:
        raise take.error
    origin = stamps[0]
    ts_s = np.asarray(stamps, dtype=np.float64) - origin
    _write_npz(out_path, images, ts_s)
    height, width = images[0].shape[:2]
    rgb = RecordingSummary(out_path, len(images), float(ts_s[-1]), int(width), int(height))
    if thermal_source is None:
        return SessionSummary(rgb, None, 0)
    metadata = {
        "subject": subject,
        "sensor": sensor,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "clock": f"seconds since the first frame of {out_path.name}",
        "rgb_recording": out_path.name,
    }
    path = _write_thermal(files[1], take, origin, metadata)
    return SessionSummary(rgb, path, len(take.frames))


def _start_thermal(
    source: ThermalSource | None,
    take: _Take,
    stop: threading.Event,
    seconds: float,
    max_frames: int | None,
) -> threading.Thread | None:
    if source is None:
        return None

    def run() -> None:
        try:
            _collect(source, take, stop, seconds, max_frames)
        except BaseException as exc:  # handed to the main thread, raised there
            take.error = exc

    worker = threading.Thread(target=run, name="record-thermal", daemon=True)
    worker.start()
    return worker


def _collect(
    source: ThermalSource, take: _Take, stop: threading.Event, seconds: float, limit: int | None
) -> None:
    source.open()
    try:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            if limit is not None and len(take.frames) >= limit:
                break
            frame = source.read()
            if frame is None:
                break
            if take.frames and frame.celsius.shape != take.frames[0].celsius.shape:
                raise SourceUnavailable("the thermal frame size changed during the recording")
            take.frames.append(frame)
            take.received_s.append(time.monotonic())
    finally:
        source.close()
    if not take.frames:
        raise SourceUnavailable("the thermal camera delivered no frames; nothing was recorded")


def _write_thermal(path: Path, take: _Take, origin: float, metadata: dict[str, Any]) -> Path:
    radiometric = all(f.radiometric for f in take.frames)
    ts_s = np.asarray(take.received_s, dtype=np.float64) - origin
    recording = ThermalRecording(
        frames=np.stack([f.celsius for f in take.frames]).astype(np.float32),
        ts_s=ts_s,
        metadata=metadata,
        radiometric=radiometric,
    )
    return write_recording(path, recording, "centikelvin" if radiometric else "counts")
