"""The generic labelled-video dataset, 100 ms sampling by timestamp, and real extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.features.blendshapes import BlendshapeExtractor, FaceFeatures
from device.features.schema import RGB_FEATURES
from trainer.datasets.common import VideoItem, load_merge_map
from trainer.datasets.video_io import (
    frame_samples,
    half_interval,
    probe_video,
    sample_times,
    sampled_frames,
    tick_frames,
)
from trainer.datasets.videos import load_video_folder
from trainer.errors import DatasetError
from trainer.video_features import VideoExtractionConfig, extract_video_features

ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets"
SHORT_VIDEO = ASSETS / "video_rgb" / "pyfeat_single_face.mp4"  # 30 fps, 72 frames
LONG_VIDEO = ASSETS / "video_rgb" / "pyfeat_WolfgangLanger_Pexels.mp4"  # 23.976 fps, 472 frames

LABELS_CSV = """\
Path, Subject , Label,start_s,end_s
a.mp4,P1,Happy,,
sub/b.mp4,P2,sad,2.0,2.2
sub/b.mp4,P2,HAPPY ,14,14.2

missing.mp4,P3,sad,,
junk.mp4,P3,sad,,
a.mp4,,sad,,
a.mp4,P1,sad,abc,
a.mp4,P1,sad,5,4
sub/b.mp4,P2,sad,30,31
sub/b.mp4,P2,sad,2.0,2.2
a.mp4,P1,unsure,1,2
"""


def build_folder(root: Path, labels: str = LABELS_CSV) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.mp4").symlink_to(SHORT_VIDEO)
    (root / "sub" / "b.mp4").symlink_to(LONG_VIDEO)
    (root / "orphan.mp4").symlink_to(SHORT_VIDEO)
    (root / "junk.mp4").write_bytes(b"\x00" * 1000)
    (root / "labels.csv").write_text(labels)
    return root


def test_items_segments_and_merge_map(tmp_path: Path) -> None:
    dataset = load_video_folder(build_folder(tmp_path), merge_map=load_merge_map("paper"))
    found = [(i.clip, i.subject, i.label, i.start_s, i.end_s) for i in dataset.items]
    assert found == [
        ("a", "P1", "happy", 0.0, None),
        ("sub/b@2-2.2", "P2", "sad", 2.0, 2.2),
        ("sub/b@14-14.2", "P2", "happy", 14.0, 14.2),
    ]
    assert dataset.dropped == {"unsure": 1}
    summary = dataset.summary().to_dict()
    assert summary["label_counts"] == {"happy": 2, "sad": 1}
    assert summary["expected_frames"] == {"happy": 24 + 3, "sad": 3}


def test_problems_name_their_row_and_file(tmp_path: Path) -> None:
    dataset = load_video_folder(build_folder(tmp_path))
    found = [(p.kind, p.file, p.row) for p in dataset.problems]
    assert found == [
        ("unreadable_video", "junk.mp4", 7),
        ("bad_row", "labels.csv", 8),
        ("bad_row", "labels.csv", 9),
        ("bad_row", "labels.csv", 10),
        ("duplicate_row", "labels.csv", 12),
        ("missing_video", "missing.mp4", 6),
        ("video_without_row", "orphan.mp4", None),
        ("bad_segment", "sub/b.mp4", 11),
    ]
    messages = {p.row: p.message for p in dataset.problems}
    assert messages[8] == "row 8: empty subject"
    assert "start_s 'abc' is not a number" in messages[9]
    assert "after the video's end (19.69 s)" in messages[11]


def test_a_folder_needs_one_csv(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("path,subject,label\n")
    (tmp_path / "two.csv").write_text("path,subject,label\n")
    with pytest.raises(DatasetError, match=r"exactly one \.csv"):
        load_video_folder(tmp_path)
    with pytest.raises(DatasetError, match="no header row with the columns path, subject, label"):
        (tmp_path / "bad.csv").write_text("file,who\n")
        load_video_folder(tmp_path / "bad.csv")


# --- sampling every 100 ms by timestamp ---------------------------------------------------------


def test_30fps_clip_is_sampled_on_every_third_frame() -> None:
    samples = sample_times(SHORT_VIDEO)
    assert [index for index, _ in samples] == list(range(0, 72, 3))
    assert np.allclose([t for _, t in samples], np.arange(24) * 0.1)


def test_23976fps_clip_takes_the_nearest_frame_to_each_tick() -> None:
    info = probe_video(LONG_VIDEO)
    assert (info.width, info.height, info.frame_count) == (640, 360, 472)
    times = np.array([t for _, t in sample_times(LONG_VIDEO)])
    ticks = np.arange(len(times)) * 0.1
    assert len(times) == 197  # 0.0 … 19.6 s
    assert np.abs(times - ticks).max() <= half_interval(info.fps, 0.1) + 1e-9
    assert np.all(np.diff(times) > 0.05)


def test_segment_is_sampled_from_its_start_to_its_end() -> None:
    frames = list(sampled_frames(SHORT_VIDEO, 0.1, start_s=0.5, end_s=1.5))
    assert np.allclose([t for _, t, _ in frames], 0.5 + np.arange(11) * 0.1)
    assert frames[0][2].shape == (360, 640, 3) and frames[0][2].dtype == np.uint8


def test_each_sampled_frame_carries_its_clip_label(tmp_path: Path) -> None:
    item = load_video_folder(build_folder(tmp_path)).items[2]  # sub/b.mp4 from 14 to 14.2 s
    samples = frame_samples(item)
    assert [(s.clip, s.subject, s.label) for s in samples] == [("sub/b@14-14.2", "P2", "happy")] * 3
    assert [s.frame_index for s in samples] == [336, 338, 340]
    assert np.allclose([s.time_s for s in samples], [14.0, 14.1, 14.2], atol=0.021)


def test_ticks_with_gaps_and_slow_video() -> None:
    # 10 fps with a missing stretch (0.3-0.5 s): ticks 0.4 and 0.5 have no frame, skipped.
    times = [0.0, 0.1, 0.2, 0.3, 0.6, 0.7]
    picked = tick_frames(iter(enumerate(times)), 0.1, 0.0, None, half_interval(10.0, 0.1))
    assert [round(t, 3) for _, t, ok in picked if ok] == [0.0, 0.1, 0.2, 0.3, 0.6, 0.7]
    # 4 fps, slower than the step: every frame is taken once, each for one tick.
    times = [0.0, 0.25, 0.5, 0.75]
    picked = tick_frames(iter(enumerate(times)), 0.1, 0.0, None, half_interval(4.0, 0.1))
    assert [i for i, _, ok in picked if ok] == [0, 1, 2, 3]
    # 50 fps with an end: frames 0.14 (nearest to 0.1, not 0.1's neighbours) … up to 0.2 only.
    times = [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.22]
    picked = tick_frames(iter(enumerate(times)), 0.1, 0.0, 0.2, half_interval(50.0, 0.1))
    assert [(i, ok) for i, _, ok in picked] == [(0, True), (5, True), (10, True), (11, False)]


# --- real extraction through device.features ---------------------------------------------------


def few_frame_items(tmp_path: Path) -> list[VideoItem]:
    labels = (
        "path,subject,label,start_s,end_s\na.mp4,P1,neutral,0,0.3\nsub/b.mp4,P2,happy,14,14.2\n"
    )
    return list(load_video_folder(build_folder(tmp_path, labels)).items)


def test_extraction_gives_one_row_per_sampled_frame(tmp_path: Path, landmarker_path: Path) -> None:
    items = few_frame_items(tmp_path / "videos")
    config = VideoExtractionConfig(landmarker_path, tmp_path / "cache", jobs=1, progress=False)
    result = extract_video_features(items, config)
    table = result.table
    assert table.clips.tolist() == ["a@0-0.3"] * 4 + ["sub/b@14-14.2"] * 3
    assert table.labels.tolist() == ["neutral"] * 4 + ["happy"] * 3
    assert np.allclose(table.times[:4], [0.0, 0.1, 0.2, 0.3])
    assert table.face_found.all() and table.values.shape == (7, len(RGB_FEATURES))
    assert result.timings["computed_frames"] == 7 and result.problems == ()
    with BlendshapeExtractor(landmarker_path, "image") as extractor:
        _, _, rgb = next(sampled_frames(items[1].path, 0.1, 14.0, 14.2))
        direct = extractor.extract(rgb)
    assert isinstance(direct, FaceFeatures)
    assert np.allclose(table.values[4], direct.rgb_vector(), atol=1e-6)
    again = extract_video_features(items, config)
    assert again.timings["cached_clips"] == 2 and again.timings["computed_clips"] == 0
    assert np.array_equal(again.table.values, table.values)


@pytest.mark.slow  # two spawned workers each start MediaPipe: ~5-10 s on 2 busy cores
def test_extraction_in_worker_processes_reports_broken_clips(
    tmp_path: Path, landmarker_path: Path
) -> None:
    items = few_frame_items(tmp_path / "videos")
    broken = VideoItem(tmp_path / "videos" / "junk.mp4", "P3", "junk", "sad", "sad", row=9)
    config = VideoExtractionConfig(landmarker_path, tmp_path / "cache", jobs=2, progress=False)
    result = extract_video_features([*items, broken], config)
    assert len(result.table) == 7 and result.timings["jobs"] == 2
    assert [(p.kind, p.file, p.row) for p in result.problems] == [
        ("unreadable_video", "junk.mp4", 9)
    ]
