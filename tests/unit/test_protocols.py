"""Every protocol splits without leaks: no subject, clip or temporal chunk on both sides.

The rows are the real FER2013 slice; subjects, clips and frame times are laid over it the way a
video dataset has them (several clips per subject, frames every 100 ms, rows out of time order).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score

from trainer.datasets.fer2013 import FerDataset
from trainer.errors import DatasetError, UsageError
from trainer.protocols import (
    PROTOCOL_NAMES,
    ClipGroupedKFold,
    LeaveOneSubjectOut,
    OfficialSplit,
    PersonSpecificChunks,
    StratifiedKFoldProtocol,
    make_protocol,
    protocol_groups,
    protocol_units,
    temporal_chunks,
)


@pytest.fixture(scope="module")
def video_meta(fer_slice: FerDataset) -> dict[str, np.ndarray]:
    """4 subjects x 3 clips of ~22 frames; labels constant per clip; rows shuffled."""
    n = len(fer_slice)
    rng = np.random.default_rng(1)
    clip_of_row = np.sort(np.arange(n) % 12)
    order = rng.permutation(n)
    clips = clip_of_row[order]
    times = np.zeros(n)
    for clip in range(12):
        rows = np.flatnonzero(clips == clip)
        times[rows] = rng.permutation(len(rows)) * 0.1
    return {
        "x": fer_slice.images.reshape(n, -1),
        "y": (clips % 7).astype(np.int64),
        "subjects": np.array([f"S{c // 3:03d}" for c in clips]),
        "clips": np.array([f"{c % 3:03d}" for c in clips]),  # ids repeat across subjects
        "times": times,
    }


def _assert_partition(splits: list[tuple[np.ndarray, np.ndarray]], n: int) -> None:
    tests = np.concatenate([test for _, test in splits])
    assert sorted(tests.tolist()) == list(range(n))  # every row tested exactly once
    for train, test in splits:
        assert len(np.intersect1d(train, test)) == 0


def test_loso_never_shares_a_subject(video_meta: dict[str, np.ndarray]) -> None:
    x, subjects = video_meta["x"], video_meta["subjects"]
    protocol = LeaveOneSubjectOut(subjects)
    splits = list(protocol.split(x, video_meta["y"]))
    assert len(splits) == protocol.get_n_splits() == 4
    _assert_partition(splits, len(x))
    for (train, test), name in zip(splits, protocol.fold_names(), strict=True):
        assert set(subjects[test]) == {name}
        assert name not in set(subjects[train])
        assert len(train) + len(test) == len(x)


def test_loso_takes_subjects_as_groups_like_scikit_learn(
    video_meta: dict[str, np.ndarray],
) -> None:
    x, y, subjects = video_meta["x"], video_meta["y"], video_meta["subjects"]
    scores = cross_val_score(DummyClassifier(), x, y, groups=subjects, cv=LeaveOneSubjectOut())
    assert len(scores) == 4
    with pytest.raises(UsageError, match="needs subjects"):
        list(LeaveOneSubjectOut().split(x, y))
    with pytest.raises(UsageError, match="given twice"):
        list(LeaveOneSubjectOut(subjects).split(x, y, groups=subjects[::-1]))
    with pytest.raises(UsageError, match="has 3 values but the data has"):
        list(LeaveOneSubjectOut(subjects[:3]).split(x, y))
    with pytest.raises(DatasetError, match="at least 2 subjects"):
        list(LeaveOneSubjectOut(np.full(len(x), "S1")).split(x, y))


def _clip_key(meta: dict[str, np.ndarray]) -> np.ndarray:
    return np.char.add(np.char.add(meta["subjects"], "/"), meta["clips"])


def test_person_specific_tests_one_contiguous_chunk_per_clip(
    video_meta: dict[str, np.ndarray],
) -> None:
    x, subjects, times = video_meta["x"], video_meta["subjects"], video_meta["times"]
    keys = _clip_key(video_meta)
    protocol = PersonSpecificChunks(subjects, video_meta["clips"], times)
    splits = list(protocol.split(x, video_meta["y"]))
    assert len(splits) == protocol.get_n_splits() == 4 * 5
    _assert_partition(splits, len(x))
    for (train, test), subject in zip(splits, protocol.fold_subjects(), strict=True):
        assert set(subjects[train]) == set(subjects[test]) == {subject}  # one person only
        assert len(train) + len(test) == np.sum(subjects == subject)
        for clip in np.unique(keys[test]):  # every clip of the subject gives one test chunk
            ordered = np.flatnonzero(keys == clip)[np.argsort(times[keys == clip])]
            tested = np.isin(ordered, test)
            run = np.flatnonzero(tested)
            assert run.max() - run.min() + 1 == len(run)  # contiguous in time
            assert 0.15 <= len(run) / len(ordered) <= 0.25  # one fifth of the clip
        assert set(keys[test]) == set(keys[subjects == subject])


def test_person_specific_train_and_test_never_share_a_chunk(
    video_meta: dict[str, np.ndarray],
) -> None:
    keys = _clip_key(video_meta)
    protocol = PersonSpecificChunks(
        video_meta["subjects"], video_meta["clips"], video_meta["times"]
    )
    chunk_ids = np.char.add(np.char.add(keys, "#"), protocol.chunks.astype(str))
    for train, test in protocol.split(video_meta["x"]):
        assert not set(chunk_ids[train]) & set(chunk_ids[test])
    for clip in np.unique(keys):  # chunks of a clip: disjoint, ordered runs in time
        rows = np.flatnonzero(keys == clip)
        in_time = protocol.chunks[rows][np.argsort(video_meta["times"][rows])]
        assert (np.diff(in_time) >= 0).all() and set(in_time) == set(range(5))


def test_person_specific_buffer_drops_temporal_neighbours(
    video_meta: dict[str, np.ndarray],
) -> None:
    keys, times = _clip_key(video_meta), video_meta["times"]
    protocol = PersonSpecificChunks(
        video_meta["subjects"], video_meta["clips"], times, buffer_s=0.25
    )
    plain = PersonSpecificChunks(video_meta["subjects"], video_meta["clips"], times)
    for (train, test), (plain_train, _) in zip(
        protocol.split(video_meta["x"]), plain.split(video_meta["x"]), strict=True
    ):
        assert len(train) < len(plain_train)
        for clip in np.unique(keys[test]):
            span = times[test][keys[test] == clip]
            neighbours = times[train][keys[train] == clip]
            gap = np.minimum(np.abs(neighbours - span.min()), np.abs(neighbours - span.max()))
            assert (gap > 0.25).all()


def test_person_specific_pooled_over_subjects_and_short_clips() -> None:
    subjects = np.array(["a"] * 10 + ["b"] * 10)
    clips = np.array(["1"] * 10 + ["1"] * 10)
    times = np.tile(np.arange(10) * 0.1, 2)
    pooled = PersonSpecificChunks(subjects, clips, times, per_subject=False)
    splits = list(pooled.split(np.zeros((20, 1))))
    assert len(splits) == 5 and {tuple(np.unique(subjects[t])) for _, t in splits} == {("a", "b")}
    with pytest.raises(DatasetError, match="has 3 frames, fewer than the 5 temporal chunks"):
        temporal_chunks(np.array(["c"] * 3), np.arange(3.0))


def test_clip_grouped_kfold_keeps_clips_whole_and_stratifies(
    video_meta: dict[str, np.ndarray],
) -> None:
    keys = _clip_key(video_meta)
    protocol = ClipGroupedKFold(keys, n_splits=3, seed=0)
    splits = list(protocol.split(video_meta["x"], video_meta["y"]))
    assert len(splits) == protocol.get_n_splits() == 3
    _assert_partition(splits, len(keys))
    for train, test in splits:
        assert not set(keys[train]) & set(keys[test])
    with pytest.raises(DatasetError, match="12 clips cannot fill 20"):
        list(ClipGroupedKFold(keys, n_splits=20).split(video_meta["x"]))


def test_stratified_kfold_matches_scikit_learn_and_stratifies(fer_slice: FerDataset) -> None:
    x, y = fer_slice.images.reshape(len(fer_slice), -1), fer_slice.labels
    protocol = StratifiedKFoldProtocol(5, seed=3)
    ours = list(protocol.split(x, y))
    theirs = list(StratifiedKFold(5, shuffle=True, random_state=3).split(x, y))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(ours, theirs, strict=True))
    _assert_partition(ours, len(y))
    expected = np.bincount(y) / 5
    for _, test in ours:
        assert np.all(np.abs(np.bincount(y[test], minlength=7) - expected) <= 1)


def test_stratified_kfold_with_groups_keeps_duplicates_together(fer_slice: FerDataset) -> None:
    y = fer_slice.labels
    groups = np.arange(len(y)) // 2  # pairs of rows standing for pixel-identical duplicates
    protocol = StratifiedKFoldProtocol(5, seed=0, groups=groups)
    splits = list(protocol.split(np.zeros((len(y), 1)), y))
    _assert_partition(splits, len(y))
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
    assert protocol_groups(protocol) is groups


def test_official_split_is_one_split(fer_slice: FerDataset) -> None:
    protocol = OfficialSplit(fer_slice.usage)
    ((train, test),) = list(protocol.split(fer_slice.images))
    assert set(fer_slice.usage[train]) == {"Training"}
    assert set(fer_slice.usage[test]) == {"PrivateTest"}
    assert protocol.get_n_splits() == 1 and protocol.fold_names() == ["Training -> PrivateTest"]
    with pytest.raises(DatasetError, match="needs rows with Usage Training and PrivateTest"):
        list(OfficialSplit(np.full(len(fer_slice), "Training")).split(fer_slice.images))


def test_make_protocol_by_name(video_meta: dict[str, np.ndarray], fer_slice: FerDataset) -> None:
    meta = {k: video_meta[k] for k in ("subjects", "clips", "times")}
    built = {name: make_protocol(name, usage=fer_slice.usage, **meta) for name in PROTOCOL_NAMES}
    assert {name: p.name for name, p in built.items()} == {n: n for n in PROTOCOL_NAMES}
    assert protocol_groups(built["loso"]) is meta["subjects"]
    assert protocol_groups(built["person_specific"]) is meta["subjects"]
    assert protocol_groups(built["clip_kfold"]) is None
    assert protocol_units(built["clip_kfold"]) is meta["clips"]
    assert len(set(protocol_units(built["person_specific"]))) == 12  # clip ids made unique
    with pytest.raises(UsageError, match="needs clips, times"):
        make_protocol("person_specific", subjects=meta["subjects"])
    with pytest.raises(UsageError, match="unknown protocol 'kfold'"):
        make_protocol("kfold")
