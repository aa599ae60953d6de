"""The thermal recording format: round trip, units, atomic writes, bad files, replay timing."""

from __future__ import annotations

import json
import stat
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from device.errors import SourceUnavailable
from device.features.thermal_roi import Box, landmarks_from_box
from device.sources.thermal.recording import (
    FORMAT,
    InvalidRecording,
    RecordingStream,
    Segment,
    ThermalRecording,
    ThermalReplaySource,
    read_recording,
    write_recording,
)
from device.sources.thermal.synthetic import SyntheticThermalFace, ThermalFaceSpec


def _session(
    count: int = 6, step_s: float = 0.115, size: tuple[int, int] = (80, 60)
) -> ThermalRecording:
    face = SyntheticThermalFace(ThermalFaceSpec(width_px=size[0], height_px=size[1]), seed=9)
    boxes = [face.truth(i) for i in range(count)]
    return ThermalRecording(
        frames=np.stack([face.render(i) for i in range(count)]),
        ts_s=100.0 + np.arange(count) * step_s,
        metadata={"subject": "p01", "sensor": "synthetic", "note": "ünïcode ok"},
        segments=(Segment("baseline", 100.0, 100.3), Segment("fear", 100.3, 101.0)),
        face_boxes=np.array([(b.x0, b.y0, b.x1, b.y1) for b in boxes], dtype=np.float32),
        landmarks=np.stack([landmarks_from_box(b) for b in boxes]).astype(np.float32),
    )


def test_round_trip_keeps_every_array_and_the_metadata(tmp_path: Path) -> None:
    original = _session()
    path = write_recording(tmp_path / "s.npz", original)
    loaded = read_recording(path)
    assert np.array_equal(loaded.frames, original.frames)
    assert loaded.frames.dtype == np.float32
    assert np.array_equal(loaded.ts_s, original.ts_s)
    assert loaded.metadata == original.metadata
    assert loaded.segments == original.segments
    assert loaded.face_boxes is not None and original.face_boxes is not None
    assert np.array_equal(loaded.face_boxes, original.face_boxes)
    assert loaded.landmarks is not None and loaded.landmarks.shape == (6, 54, 2)
    assert loaded.labels() == ["baseline"] * 3 + ["fear"] * 3
    assert loaded.radiometric


def test_the_file_is_a_plain_npz_with_the_documented_keys(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "s.npz", _session())
    with np.load(path, allow_pickle=False) as data:
        assert str(data["format"]) == FORMAT and str(data["units"]) == "celsius"
        assert json.loads(str(data["metadata"]))["subject"] == "p01"
        keys = set(data.files)
    assert keys == {
        "format", "units", "frames", "ts_s", "metadata", "segment_label", "segment_start_s",
        "segment_end_s", "face_boxes", "landmarks",
    }  # fmt: skip
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no partial file left


def test_centikelvin_storage_is_within_5_mk(tmp_path: Path) -> None:
    original = _session()
    path = write_recording(tmp_path / "ck.npz", original, units="centikelvin")
    with np.load(path) as data:
        assert data["frames"].dtype == np.uint16
    loaded = read_recording(path)
    assert float(np.abs(loaded.frames - original.frames).max()) <= 0.0051


def test_raw_counts_are_marked_non_radiometric(tmp_path: Path) -> None:
    counts = np.full((2, 60, 80), 8192.0, dtype=np.float32)
    recording = ThermalRecording(counts, np.array([0.0, 0.1]), radiometric=False)
    with pytest.raises(ValueError, match="counts"):
        write_recording(tmp_path / "c.npz", recording)
    loaded = read_recording(write_recording(tmp_path / "c.npz", recording, units="counts"))
    assert not loaded.radiometric and float(loaded.frames[0, 0, 0]) == 8192.0


def test_inconsistent_recordings_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    good = _session()
    bad_ts = ThermalRecording(good.frames, good.ts_s[::-1].copy())
    with pytest.raises(InvalidRecording, match="strictly rising"):
        write_recording(tmp_path / "a.npz", bad_ts)
    bad_boxes = ThermalRecording(good.frames, good.ts_s, face_boxes=np.zeros((2, 4), np.float32))
    with pytest.raises(InvalidRecording, match="face_boxes"):
        write_recording(tmp_path / "b.npz", bad_boxes)
    with pytest.raises(ValueError, match=r"\.npz"):
        write_recording(tmp_path / "c.dat", good)
    assert list(tmp_path.iterdir()) == []


def test_bad_files_give_one_clear_error(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "s.npz", _session())
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    other = tmp_path / "other.npz"
    np.savez(other, frames=np.zeros((1, 2, 2), np.float32), ts_s=np.zeros(1))
    with pytest.raises(InvalidRecording, match="does not exist"):
        read_recording(tmp_path / "missing.npz")
    for bad in (truncated, text, other):
        with pytest.raises(InvalidRecording, match="not a valid thermal recording") as info:
            read_recording(bad)
        assert "\n" not in str(info.value)
    assert issubclass(InvalidRecording, SourceUnavailable)


def test_stream_reads_frames_one_at_a_time(tmp_path: Path) -> None:
    original = _session()
    stream = RecordingStream(write_recording(tmp_path / "s.npz", original, units="centikelvin"))
    assert stream.shape == (6, 60, 80)
    frames = list(stream.frames())
    assert [ts for ts, _ in frames] == pytest.approx(list(original.ts_s))
    assert np.allclose(frames[2][1], original.frames[2], atol=0.0051)


def test_replay_keeps_the_recorded_timeline_and_paces_to_it(tmp_path: Path) -> None:
    """ts_s is the recorded timeline from 0; at speed 10 a 0.575 s recording takes >= 57 ms."""
    original = _session(count=6, step_s=0.115)
    source = ThermalReplaySource(write_recording(tmp_path / "s.npz", original), speed=10.0)
    source.open()
    start = time.monotonic()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    elapsed = time.monotonic() - start
    source.close()
    assert [f.index for f in frames] == list(range(6))
    assert [f.ts_s for f in frames] == pytest.approx(list(original.ts_s - original.ts_s[0]))
    assert np.array_equal(frames[3].celsius, original.frames[3]) and frames[3].radiometric
    span_s = float(original.ts_s[-1] - original.ts_s[0])
    assert elapsed >= span_s / 10.0 - 0.002  # a lower bound only: pacing never runs early


def test_looped_replay_continues_the_timeline(tmp_path: Path) -> None:
    source = ThermalReplaySource(
        write_recording(tmp_path / "s.npz", _session(count=3, step_s=0.1)), speed=100.0, loop=True
    )
    source.open()
    stamps = [frame.ts_s for frame in (source.read() for _ in range(7)) if frame is not None]
    source.close()
    assert stamps == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert source.read() is None


def test_close_wakes_a_read_waiting_for_a_late_frame(tmp_path: Path) -> None:
    frames = np.full((2, 4, 4), 30.0, dtype=np.float32)
    late = ThermalRecording(frames, np.array([0.0, 600.0]))
    source = ThermalReplaySource(write_recording(tmp_path / "late.npz", late))
    source.open()
    assert source.read() is not None
    results: list[object] = []
    reader = threading.Thread(target=lambda: results.append(source.read()))
    reader.start()
    time.sleep(0.05)
    source.close()
    reader.join(5.0)
    assert not reader.is_alive() and results == [None]


def test_replay_of_a_missing_or_broken_file_fails_on_open(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="does not exist"):
        ThermalReplaySource(tmp_path / "nope.npz").open()
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("format.npy", b"junk")
    with pytest.raises(InvalidRecording):
        ThermalReplaySource(broken).open()


def test_landmarks_in_a_recording_are_in_pixel_coordinates(tmp_path: Path) -> None:
    loaded = read_recording(write_recording(tmp_path / "s.npz", _session()))
    assert loaded.landmarks is not None and loaded.face_boxes is not None
    x0, y0, x1, y1 = (float(v) for v in loaded.face_boxes[0])
    assert np.allclose(loaded.landmarks[0], landmarks_from_box(Box(x0, y0, x1, y1)), atol=1e-4)
