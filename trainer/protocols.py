"""Evaluation protocols as scikit-learn splitters that never leak a subject, clip or chunk.

Every protocol is a class with ``split(X, y=None, groups=None)`` yielding ``(train, test)`` row
indices and ``get_n_splits``, so it plugs into ``cross_val_score``, ``permutation_test_score`` or
the trainer's own loop. The metadata a protocol needs (usage, subject, clip id, time) is given to
its constructor explicitly, one value per row, as scikit-learn's ``PredefinedSplit`` does; the
grouped splitters also accept their groups through ``split(..., groups=...)`` when the
constructor got none. ``fold_names`` names each split for tables and figures.

- ``StratifiedKFoldProtocol``: the paper's FER2013 protocol (optionally grouped, e.g. by
  pixel-identical duplicates, through ``StratifiedGroupKFold``).
- ``OfficialSplit``: FER2013 ``Training`` -> ``PrivateTest``, one split.
- ``LeaveOneSubjectOut``: one fold per subject.
- ``PersonSpecificChunks``: the paper's person-specific CV; every clip is cut by time into 5
  contiguous chunks, fold k tests chunk k of every clip of one subject and trains on the other 4
  chunks of that subject's clips (``per_subject=False``: all subjects share each fold).
- ``ClipGroupedKFold``: K folds of whole clips (stratified by clip label where possible).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from trainer.errors import DatasetError, UsageError

Split = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
DEFAULT_FOLDS = 5
PROTOCOL_NAMES = ("cv5", "official", "loso", "person_specific", "clip_kfold")


def _array(values: Any, name: str) -> npt.NDArray[Any]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise UsageError(f"{name} must hold one value per row")
    return array


def _check_rows(x: Any, meta: npt.NDArray[Any], name: str) -> None:
    n = len(x)
    if len(meta) != n:
        raise UsageError(f"{name} has {len(meta)} values but the data has {n} rows")


def _groups_for(own: npt.NDArray[Any] | None, groups: Any, name: str) -> npt.NDArray[Any]:
    """The constructor's metadata, else the ``groups`` passed to ``split``."""
    if own is not None:
        if groups is not None and not np.array_equal(np.asarray(groups), own):
            raise UsageError(f"{name} given twice with different values")
        return own
    if groups is None:
        raise UsageError(f"this protocol needs {name}: pass them to the protocol or as groups")
    return _array(groups, name)


def _indices(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    return np.flatnonzero(mask).astype(np.int64)


class StratifiedKFoldProtocol:
    """Stratified K-fold over rows; with ``groups`` no group is split across folds."""

    name = "cv5"

    def __init__(
        self, n_splits: int = DEFAULT_FOLDS, seed: int = 0, groups: Any | None = None
    ) -> None:
        if n_splits < 2:
            raise UsageError(f"K-fold needs at least 2 folds, not {n_splits}")
        self.n_splits, self.seed = n_splits, seed
        self.groups = None if groups is None else _array(groups, "groups")

    def split(self, x: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        if y is None:
            raise UsageError("stratified K-fold needs the labels")
        own = self.groups if self.groups is not None else groups
        if own is None:
            splitter: Any = StratifiedKFold(self.n_splits, shuffle=True, random_state=self.seed)
            yield from splitter.split(x, y)
            return
        _check_rows(x, np.asarray(own), "groups")
        grouped = StratifiedGroupKFold(self.n_splits, shuffle=True, random_state=self.seed)
        yield from grouped.split(x, y, own)

    def get_n_splits(self, x: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def fold_names(self, groups: Any = None) -> list[str]:
        return [f"fold {k + 1}" for k in range(self.n_splits)]


class OfficialSplit:
    """One split: rows whose usage is in ``train_usage`` -> rows in ``test_usage``."""

    name = "official"

    def __init__(
        self,
        usage: Any,
        train_usage: Sequence[str] = ("Training",),
        test_usage: Sequence[str] = ("PrivateTest",),
    ) -> None:
        self.usage = _array(usage, "usage").astype(str)
        self.train_usage, self.test_usage = tuple(train_usage), tuple(test_usage)

    def split(self, x: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        _check_rows(x, self.usage, "usage")
        train = _indices(np.isin(self.usage, self.train_usage))
        test = _indices(np.isin(self.usage, self.test_usage))
        if len(train) == 0 or len(test) == 0:
            raise DatasetError(
                "the official split needs rows with Usage Training and PrivateTest; "
                f"this dataset has {sorted(set(self.usage.tolist()))}"
            )
        yield train, test

    def get_n_splits(self, x: Any = None, y: Any = None, groups: Any = None) -> int:
        return 1

    def fold_names(self, groups: Any = None) -> list[str]:
        return [f"{'+'.join(self.train_usage)} -> {'+'.join(self.test_usage)}"]


class LeaveOneSubjectOut:
    """One fold per subject: that subject's rows are tested, every other subject's trained on."""

    name = "loso"

    def __init__(self, subjects: Any | None = None) -> None:
        self.subjects = None if subjects is None else _array(subjects, "subjects")

    def split(self, x: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        subjects = _groups_for(self.subjects, groups, "subjects")
        _check_rows(x, subjects, "subjects")
        if len(np.unique(subjects)) < 2:
            raise DatasetError("leave-one-subject-out needs at least 2 subjects")
        for subject in np.unique(subjects):
            yield _indices(subjects != subject), _indices(subjects == subject)

    def get_n_splits(self, x: Any = None, y: Any = None, groups: Any = None) -> int:
        return len(np.unique(_groups_for(self.subjects, groups, "subjects")))

    def fold_names(self, groups: Any = None) -> list[str]:
        return [str(s) for s in np.unique(_groups_for(self.subjects, groups, "subjects"))]


def temporal_chunks(
    clips: npt.NDArray[Any], times: npt.NDArray[Any], n_chunks: int = DEFAULT_FOLDS
) -> npt.NDArray[np.int64]:
    """Chunk 0..n_chunks-1 of every row: each clip's rows sorted by time, cut into equal runs."""
    chunks = np.empty(len(clips), dtype=np.int64)
    for clip in np.unique(clips):
        rows = np.flatnonzero(clips == clip)
        if len(rows) < n_chunks:
            raise DatasetError(
                f"clip {clip} has {len(rows)} frames, fewer than the {n_chunks} temporal chunks"
            )
        ordered = rows[np.argsort(times[rows], kind="stable")]
        for k, part in enumerate(np.array_split(ordered, n_chunks)):
            chunks[part] = k
    return chunks


class PersonSpecificChunks:
    """The paper's person-specific CV: fold k tests chunk k of every clip, trains on the rest.

    ``buffer_s`` > 0 also drops from training the frames of the same clip within that many
    seconds of the test chunk, so neighbouring frames (100 ms apart) cannot leak across it.
    """

    name = "person_specific"

    def __init__(
        self,
        subjects: Any,
        clips: Any,
        times: Any,
        *,
        n_chunks: int = DEFAULT_FOLDS,
        per_subject: bool = True,
        buffer_s: float = 0.0,
    ) -> None:
        if n_chunks < 2:
            raise UsageError(f"person-specific CV needs at least 2 chunks, not {n_chunks}")
        self.subjects = _array(subjects, "subjects")
        self.clips = _array(clips, "clips")
        self.times = _array(times, "times").astype(float)
        if not len(self.subjects) == len(self.clips) == len(self.times):
            raise UsageError("subjects, clips and times must have one value per row each")
        self.n_chunks, self.per_subject, self.buffer_s = n_chunks, per_subject, buffer_s
        self.chunks = temporal_chunks(self.clip_keys(), self.times, n_chunks)

    def clip_keys(self) -> npt.NDArray[np.str_]:
        """Clip ids made unique per subject (two subjects may both have a clip ``001``)."""
        return np.char.add(np.char.add(self.subjects.astype(str), "\x1f"), self.clips.astype(str))

    def _scopes(self) -> list[tuple[str, npt.NDArray[np.bool_]]]:
        if not self.per_subject:
            return [("all", np.ones(len(self.subjects), dtype=bool))]
        return [(str(s), self.subjects == s) for s in np.unique(self.subjects)]

    def split(self, x: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        _check_rows(x, self.subjects, "subjects")
        for _, scope in self._scopes():
            for k in range(self.n_chunks):
                test = scope & (self.chunks == k)
                train = scope & (self.chunks != k) & ~self._near(test)
                yield _indices(train), _indices(test)

    def _near(self, test: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Rows of the test rows' clips within ``buffer_s`` of that clip's test span."""
        near = np.zeros(len(test), dtype=bool)
        if self.buffer_s <= 0:
            return near
        keys = self.clip_keys()
        for clip in np.unique(keys[test]):
            span = self.times[test & (keys == clip)]
            lo, hi = span.min() - self.buffer_s, span.max() + self.buffer_s
            near |= (keys == clip) & (self.times >= lo) & (self.times <= hi)
        return near

    def get_n_splits(self, x: Any = None, y: Any = None, groups: Any = None) -> int:
        return len(self._scopes()) * self.n_chunks

    def fold_names(self, groups: Any = None) -> list[str]:
        return [f"{s} chunk {k + 1}" for s, _ in self._scopes() for k in range(self.n_chunks)]

    def fold_subjects(self) -> list[str]:
        """The subject each split belongs to (``all`` when ``per_subject`` is off)."""
        return [s for s, _ in self._scopes() for _ in range(self.n_chunks)]


class ClipGroupedKFold:
    """K folds of whole clips: no clip has rows on both sides; stratified by label if given."""

    name = "clip_kfold"

    def __init__(self, clips: Any | None = None, n_splits: int = DEFAULT_FOLDS, seed: int = 0):
        if n_splits < 2:
            raise UsageError(f"K-fold needs at least 2 folds, not {n_splits}")
        self.clips = None if clips is None else _array(clips, "clips")
        self.n_splits, self.seed = n_splits, seed

    def split(self, x: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        clips = _groups_for(self.clips, groups, "clips")
        _check_rows(x, clips, "clips")
        if len(np.unique(clips)) < self.n_splits:
            raise DatasetError(
                f"{len(np.unique(clips))} clips cannot fill {self.n_splits} clip-grouped folds"
            )
        labels = np.zeros(len(clips), dtype=np.int64) if y is None else np.asarray(y)
        splitter = StratifiedGroupKFold(self.n_splits, shuffle=True, random_state=self.seed)
        yield from splitter.split(x, labels, clips)

    def get_n_splits(self, x: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def fold_names(self, groups: Any = None) -> list[str]:
        return [f"fold {k + 1}" for k in range(self.n_splits)]


Protocol = (
    StratifiedKFoldProtocol
    | OfficialSplit
    | LeaveOneSubjectOut
    | PersonSpecificChunks
    | ClipGroupedKFold
)


def make_protocol(
    name: str,
    *,
    n_splits: int = DEFAULT_FOLDS,
    seed: int = 0,
    usage: Any | None = None,
    subjects: Any | None = None,
    clips: Any | None = None,
    times: Any | None = None,
    groups: Any | None = None,
    buffer_s: float = 0.0,
) -> Protocol:
    """A protocol by name (``PROTOCOL_NAMES``) with the row metadata it needs."""
    needs = {
        "official": {"usage": usage},
        "person_specific": {"subjects": subjects, "clips": clips, "times": times},
    }
    missing = [key for key, value in needs.get(name, {}).items() if value is None]
    if missing:
        raise UsageError(f"protocol {name!r} needs {', '.join(missing)} for every row")
    if name == "cv5":
        return StratifiedKFoldProtocol(n_splits, seed, groups)
    if name == "official":
        return OfficialSplit(usage)
    if name == "loso":
        return LeaveOneSubjectOut(subjects)
    if name == "person_specific":
        return PersonSpecificChunks(subjects, clips, times, n_chunks=n_splits, buffer_s=buffer_s)
    if name == "clip_kfold":
        return ClipGroupedKFold(clips, n_splits, seed)
    raise UsageError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOL_NAMES)}")


def protocol_groups(protocol: Protocol) -> npt.NDArray[Any] | None:
    """Rows whose labels a permutation test may exchange: one subject's (LOSO, person-specific).

    Stratified K-fold gives its own groups (duplicates); the others allow any exchange.
    """
    if isinstance(protocol, LeaveOneSubjectOut | PersonSpecificChunks):
        return protocol.subjects
    if isinstance(protocol, StratifiedKFoldProtocol):
        return protocol.groups
    return None


def protocol_units(protocol: Protocol) -> npt.NDArray[Any] | None:
    """The blocks that keep one label (clips) and must be permuted whole, or None for rows."""
    if isinstance(protocol, PersonSpecificChunks):
        return protocol.clip_keys()
    if isinstance(protocol, ClipGroupedKFold):
        return protocol.clips
    return None
