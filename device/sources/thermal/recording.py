"""The project's thermal recording format: writer, reader, and a replay source.

Format ``emotion-edge-thermal/1`` (full description: ``docs/thermal-recording.md``): an
uncompressed .npz (a zip of .npy members, readable with ``numpy.load(allow_pickle=False)``):

- ``format``: 0-d str, ``"emotion-edge-thermal/1"``
- ``units``: 0-d str, ``"celsius"`` (``frames`` float32), ``"centikelvin"`` (uint16, TLinear
  style) or ``"counts"`` (uint16 raw sensor counts, not radiometric)
- ``frames``: N x H x W
- ``ts_s``: N float64, seconds, strictly rising
- ``metadata``: 0-d str, a JSON object (``subject``, ``sensor``, ``created_utc``, ... free form)
- ``segment_label`` (M str), ``segment_start_s``, ``segment_end_s`` (M float64): labelled
  intervals ``[start, end)`` on the ``ts_s`` clock; M may be 0
- optional ``face_boxes``: N x 4 float32 ``x0, y0, x1, y1`` (pixel-centre coordinates, NaN row
  = no face), and optional ``landmarks``: N x 54 x 2 float32 (SF-TL54 layout, NaN = none)

**A recording is personal data** (thermal images of a face). Files are written atomically
(a hidden ``.partial`` file renamed into place) and readable by their owner only (mode 0600).
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
import zlib
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt

from device.errors import SourceUnavailable
from device.frames import ThermalFrame
from device.sources.latest import Pacer

FORMAT = "emotion-edge-thermal/1"
Units = Literal["celsius", "centikelvin", "counts"]
UNIT_DTYPES: dict[str, np.dtype[Any]] = {
    "celsius": np.dtype(np.float32),
    "centikelvin": np.dtype(np.uint16),
    "counts": np.dtype(np.uint16),
}
KELVIN_OFFSET_C = 273.15
Celsius = npt.NDArray[np.float32]
_BAD_FILE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


class InvalidRecording(SourceUnavailable):
    """A thermal recording is missing, truncated or not in the documented format."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A labelled interval ``[start_s, end_s)`` on the recording's ``ts_s`` clock."""

    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class ThermalRecording:
    """A whole session in memory: ``frames`` N x H x W float32 (°C, or counts when
    ``units`` is ``"counts"``) and ``ts_s`` N float64."""

    frames: Celsius
    ts_s: npt.NDArray[np.float64]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    segments: tuple[Segment, ...] = ()
    face_boxes: npt.NDArray[np.float32] | None = None
    landmarks: npt.NDArray[np.float32] | None = None
    radiometric: bool = True

    def labels(self) -> list[str | None]:
        """The segment label of each frame (None outside every segment)."""
        return [label_at(self.segments, float(ts)) for ts in self.ts_s]


def label_at(segments: tuple[Segment, ...], ts_s: float) -> str | None:
    """The label of the first segment containing ``ts_s``."""
    for segment in segments:
        if segment.start_s <= ts_s < segment.end_s:
            return segment.label
    return None


# ---------------------------------------------------------------- conversions


def to_units(celsius: npt.NDArray[np.floating], units: Units) -> npt.NDArray[Any]:
    """°C (or counts) as stored for ``units``; centikelvin is rounded to 0.01 K."""
    if units == "celsius":
        return np.asarray(celsius, dtype=np.float32)
    if units == "centikelvin":
        scaled = (np.asarray(celsius, np.float64) + KELVIN_OFFSET_C) * 100.0
    else:
        scaled = np.asarray(celsius, np.float64)
    stored: npt.NDArray[np.uint16] = np.clip(np.rint(scaled), 0, 65535).astype(np.uint16)
    return stored


def to_celsius(stored: npt.NDArray[Any], units: str) -> Celsius:
    """Stored frames back to float32 °C (counts stay counts, as float32)."""
    if units == "centikelvin":
        return (stored.astype(np.float64) / 100.0 - KELVIN_OFFSET_C).astype(np.float32)
    return np.asarray(stored, dtype=np.float32)


# ---------------------------------------------------------------- writing


def write_recording(path: Path, recording: ThermalRecording, units: Units = "celsius") -> Path:
    """Write ``recording`` atomically to ``path`` (.npz, mode 0600) and return the path."""
    if path.suffix != ".npz":
        raise ValueError(f"a thermal recording must be saved as .npz, not {path.name}")
    if not recording.radiometric and units != "counts":
        raise ValueError("a non-radiometric recording can only be stored as counts")
    check_recording(recording, str(path))
    members = _members(recording, units)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as archive:
                for name, array in members.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def _members(recording: ThermalRecording, units: Units) -> dict[str, npt.NDArray[Any]]:
    segments = recording.segments
    members: dict[str, npt.NDArray[Any]] = {
        "format": np.array(FORMAT),
        "units": np.array(units),
        "ts_s": np.asarray(recording.ts_s, dtype=np.float64),
        "metadata": np.array(json.dumps(dict(recording.metadata), sort_keys=True)),
        "segment_label": np.array([s.label for s in segments], dtype=np.str_),
        "segment_start_s": np.array([s.start_s for s in segments], dtype=np.float64),
        "segment_end_s": np.array([s.end_s for s in segments], dtype=np.float64),
    }
    if recording.face_boxes is not None:
        members["face_boxes"] = np.asarray(recording.face_boxes, dtype=np.float32)
    if recording.landmarks is not None:
        members["landmarks"] = np.asarray(recording.landmarks, dtype=np.float32)
    members["frames"] = to_units(recording.frames, units)  # last: the reader streams it
    return members


# ---------------------------------------------------------------- checks


def check_recording(recording: ThermalRecording, where: str) -> None:
    """Raise InvalidRecording when the arrays do not fit together."""
    frames, ts = recording.frames, recording.ts_s
    if frames.ndim != 3 or frames.shape[0] == 0:
        raise _invalid(where, f"frames must be N x H x W with N > 0, got {frames.shape}")
    _check_timestamps(ts, frames.shape[0], where)
    for name, extra in (("face_boxes", (4,)), ("landmarks", (54, 2))):
        array = getattr(recording, name)
        if array is not None and array.shape != (frames.shape[0], *extra):
            raise _invalid(where, f"{name} has shape {array.shape}, expected N x {extra}")
    for segment in recording.segments:
        if not segment.label or not segment.start_s < segment.end_s:
            raise _invalid(where, f"segment {segment} needs a label and start < end")


def _check_timestamps(ts: npt.NDArray[np.float64], count: int, where: str) -> None:
    if ts.shape != (count,):
        raise _invalid(where, f"{count} frames but ts_s has shape {ts.shape}")
    if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
        raise _invalid(where, "ts_s is not strictly rising")


def _invalid(where: str, why: str) -> InvalidRecording:
    return InvalidRecording(f"{where} is not a valid thermal recording ({FORMAT}): {why}")


# ---------------------------------------------------------------- reading


def read_recording(path: Path) -> ThermalRecording:
    """Load a whole recording into memory, checked; raises InvalidRecording."""
    where = str(path)
    if not path.is_file():
        raise InvalidRecording(f"thermal recording {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            units = _header_units(data, where)
            recording = ThermalRecording(
                frames=to_celsius(data["frames"], units),
                ts_s=np.asarray(data["ts_s"], dtype=np.float64),
                metadata=_metadata(str(data["metadata"]), where),
                segments=_segments(data),
                face_boxes=data.get("face_boxes"),
                landmarks=data.get("landmarks"),
                radiometric=units != "counts",
            )
    except _BAD_FILE as exc:
        raise _invalid(where, f"{type(exc).__name__}: {exc}") from exc
    check_recording(recording, where)
    return recording


def _header_units(data: Mapping[str, npt.NDArray[Any]], where: str) -> str:
    if "format" not in data or str(data["format"]) != FORMAT:
        raise _invalid(where, "the format member is missing or names another format")
    units = str(data["units"])
    if units not in UNIT_DTYPES:
        raise _invalid(where, f"unknown units {units!r}")
    return units


def _metadata(text: str, where: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise _invalid(where, "metadata is not a JSON object")
    return value


def _segments(data: Mapping[str, npt.NDArray[Any]]) -> tuple[Segment, ...]:
    labels, starts, ends = (data[k] for k in ("segment_label", "segment_start_s", "segment_end_s"))
    if not labels.shape == starts.shape == ends.shape:
        raise ValueError("segment arrays differ in length")
    return tuple(
        Segment(str(a), float(b), float(c)) for a, b, c in zip(labels, starts, ends, strict=True)
    )


def _read_header(stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    return np.lib.format.read_array_header_2_0(stream)


class RecordingStream:
    """Checks a recording's small members on construction; ``frames()`` streams the frames
    one at a time, so a long session is never loaded whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        where = str(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                self.units = _header_units(data, where)
                self.ts_s = np.asarray(data["ts_s"], dtype=np.float64)
            with zipfile.ZipFile(path) as archive, archive.open("frames.npy") as stream:
                self.shape, fortran, dtype = _read_header(stream)
        except _BAD_FILE as exc:
            raise _invalid(where, f"{type(exc).__name__}: {exc}") from exc
        if len(self.shape) != 3 or fortran or dtype != UNIT_DTYPES[self.units]:
            raise _invalid(where, f"frames are {self.shape} {dtype} in {self.units}")
        _check_timestamps(self.ts_s, self.shape[0], where)
        self.radiometric = self.units != "counts"

    def frames(self) -> Generator[tuple[float, Celsius], None, None]:
        """(ts_s, frame) for each frame, in °C (or counts), reading the archive as it goes."""
        _, height, width = self.shape
        dtype = UNIT_DTYPES[self.units]
        nbytes = height * width * dtype.itemsize
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open("frames.npy") as stream:
                _read_header(stream)
                for ts in self.ts_s:
                    data = stream.read(nbytes)
                    if len(data) != nbytes:
                        raise _invalid(str(self.path), "frame data is truncated")
                    stored = np.frombuffer(data, dtype=dtype).reshape(height, width)
                    yield float(ts), to_celsius(stored, self.units).copy()
        except _BAD_FILE as exc:
            raise _invalid(str(self.path), f"{type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------- replay


class ThermalReplaySource:
    """Plays a thermal recording at ``speed`` x its recorded timing, optionally looped.

    Output ``ts_s`` is the recorded timeline from the first frame (0.0), unscaled by
    ``speed``; when looping, each pass continues where the previous one ended.
    """

    def __init__(self, path: Path, speed: float = 1.0, loop: bool = False) -> None:
        self._path = path
        self._loop = loop
        self._lock = threading.Lock()
        self._pacer = Pacer(speed)
        self._stream: RecordingStream | None = None
        self._timeline: Generator[tuple[float, Celsius], None, None] | None = None
        self._index = 0

    def open(self) -> None:
        self.close()
        if not self._path.is_file():
            raise InvalidRecording(f"thermal recording {self._path} does not exist")
        self._stream = RecordingStream(self._path)
        self._pacer.reset()
        self._timeline, self._index = self._passes(self._stream), 0

    def read(self) -> ThermalFrame | None:
        with self._lock:
            item = next(self._timeline, None) if self._timeline is not None else None
        if item is None or not self._pacer.wait_until(item[0]):
            return None
        radiometric = self._stream.radiometric if self._stream is not None else True
        frame = ThermalFrame(item[1], ts_s=item[0], index=self._index, radiometric=radiometric)
        self._index += 1
        return frame

    def close(self) -> None:
        """Idempotent and safe from another thread; wakes a paced read."""
        self._pacer.interrupt()
        with self._lock:
            if self._timeline is not None:
                self._timeline.close()
            self._timeline = None

    def _passes(self, stream: RecordingStream) -> Generator[tuple[float, Celsius], None, None]:
        ts = stream.ts_s
        step = float(np.median(np.diff(ts))) if ts.size > 1 else 1.0
        period = float(ts[-1] - ts[0]) + step
        offset = 0.0
        while True:
            for stamp, frame in stream.frames():
                yield offset + stamp - float(ts[0]), frame
            if not self._loop:
                return
            offset += period
