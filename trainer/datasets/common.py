"""What every labelled dataset reader returns: items, problems, a merge map and a summary.

A reader never drops data silently. Anything it cannot use (a row without a video, an unreadable
clip, a label the merge map drops) is either a ``Problem`` with its file and row, or a count in
``dropped``; ``DatasetSummary`` carries both into the JSON that ``datasets check`` writes.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.errors import DatasetError

FRAME_STEP_S = 0.1  # the paper's sampling: one frame every 100 ms, chosen by timestamp

PROBLEM_KINDS: dict[str, str] = {
    "missing_video": "a row names a video file that does not exist",
    "row_without_video": "an annotation row whose clip has no video in the tree",
    "video_without_row": "a video that no annotation row labels",
    "unreadable_video": "a video that cannot be opened or holds no frames",
    "bad_row": "a row that cannot be parsed (missing or malformed values)",
    "unknown_code": "an emotion code that the set's legend does not define",
    "duplicate_row": "a second row for a clip that already has one",
    "duplicate_video": "a second video file for the same clip",
    "bad_video_name": "a video whose file name is not a clip name",
    "bad_segment": "a start/end segment outside the video",
    "unknown_column": "a feature column that the feature schema does not define",
}


@dataclass(frozen=True)
class Problem:
    """One thing a reader could not use, with where it is (file and 1-based row or line)."""

    kind: str
    message: str
    file: str | None = None
    row: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": self.file, "row": self.row, "message": self.message}


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (fps and size are read, never assumed)."""

    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


@dataclass(frozen=True)
class VideoItem:
    """One labelled clip (a whole video, or a segment of one); ``label`` is after the merge map."""

    path: Path
    subject: str
    clip: str
    label: str
    source_label: str
    start_s: float = 0.0
    end_s: float | None = None
    row: int | None = None
    info: VideoInfo | None = None


@dataclass(frozen=True)
class FrameSample:
    """One sampled frame of a clip: the clip's label at the frame's time in the video."""

    clip: str
    subject: str
    label: str
    time_s: float
    frame_index: int


def normalise_label(text: object) -> str:
    """Labels compare case- and space-insensitively: ``' Happiness '`` → ``'happiness'``."""
    return " ".join(str(text).split()).lower()


def normalise_header(text: object) -> str:
    """Column names compare on letters and digits only: ``'Clip  Name'`` → ``'clipname'``."""
    return re.sub(r"[^0-9a-z]", "", str(text).lower())


# --- merge map -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeMap:
    """Renames/merges labels (``merge``) and drops others (``drop``); anything else is kept."""

    merge: Mapping[str, str] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()

    def apply(self, label: str) -> str | None:
        """The label after the map, or None when the map drops it."""
        key = normalise_label(label)
        if key in self.drop:
            return None
        return self.merge.get(key, key)

    def to_dict(self) -> dict[str, Any]:
        return {"merge": dict(sorted(self.merge.items())), "drop": sorted(self.drop)}


IDENTITY_MAP = MergeMap()

# The paper's BAUM-1 protocol as data (the same content as docs/datasets.md's example file).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"merge": {"contempt": "anger"}, "drop": ["unsure"]},
    "none": {},
}


def merge_map_from_dict(data: Mapping[str, Any], source: str = "merge map") -> MergeMap:
    """Validate ``{"merge": {from: to}, "drop": [label, …]}``: no chains, no label in both."""
    unknown = sorted(set(data) - {"merge", "drop"})
    if unknown:
        raise DatasetError(f"{source}: unknown keys {unknown}; expected 'merge' and 'drop'")
    raw_merge, raw_drop = data.get("merge", {}), data.get("drop", [])
    if not isinstance(raw_merge, Mapping) or not isinstance(raw_drop, list):
        raise DatasetError(f"{source}: 'merge' must be a table of label = label, 'drop' a list")
    merge = {normalise_label(k): normalise_label(v) for k, v in raw_merge.items()}
    drop = frozenset(normalise_label(label) for label in raw_drop)
    chained = sorted(set(merge.values()) & (set(merge) | drop))
    if chained:
        raise DatasetError(f"{source}: merge targets {chained} are themselves merged or dropped")
    both = sorted(set(merge) & drop)
    if both:
        raise DatasetError(f"{source}: labels {both} are both merged and dropped")
    return MergeMap(merge=merge, drop=drop)


def load_merge_map(spec: str | Path | None) -> MergeMap:
    """A preset name (``paper``, ``none``), a .toml or .json file, or None for no merging."""
    if spec is None:
        return IDENTITY_MAP
    if str(spec) in PRESETS:
        return merge_map_from_dict(PRESETS[str(spec)], f"preset {spec}")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DatasetError(
            f"merge map {path} does not exist (give a .toml/.json file or one of {sorted(PRESETS)})"
        )
    return merge_map_from_dict(_read_map_file(path), str(path))


def _read_map_file(path: Path) -> Mapping[str, Any]:
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"merge map {path} cannot be parsed: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"merge map {path} must hold an object with 'merge' and 'drop'")
    return data


# --- datasets and their summary --------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSummary:
    """What ``datasets check`` reports; ``to_dict`` is its JSON."""

    kind: str
    source: str
    items: int
    subjects: tuple[str, ...]
    label_counts: Mapping[str, int]
    problems: tuple[Problem, ...]
    dropped: Mapping[str, int] = field(default_factory=dict)
    merge_map: MergeMap = IDENTITY_MAP
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "items": self.items,
            "n_subjects": len(self.subjects),
            "subjects": list(self.subjects),
            "label_counts": dict(sorted(self.label_counts.items())),
            "dropped_by_merge_map": dict(sorted(self.dropped.items())),
            "merge_map": self.merge_map.to_dict(),
            **dict(self.extra),
            "problem_counts": dict(sorted(Counter(p.kind for p in self.problems).items())),
            "problems": [problem.to_dict() for problem in self.problems],
        }


@dataclass(frozen=True)
class VideoDataset:
    """Labelled clips ready to sample, plus everything the reader could not use."""

    kind: str
    source: str
    items: tuple[VideoItem, ...]
    problems: tuple[Problem, ...]
    dropped: Mapping[str, int]
    merge_map: MergeMap

    def summary(self, step_s: float = FRAME_STEP_S) -> DatasetSummary:
        from trainer.datasets.video_io import expected_samples

        frames: Counter[str] = Counter()
        for item in self.items:
            if item.info is not None:
                frames[item.label] += expected_samples(item.info, item.start_s, item.end_s, step_s)
        return DatasetSummary(
            kind=self.kind,
            source=self.source,
            items=len(self.items),
            subjects=tuple(sorted({item.subject for item in self.items})),
            label_counts=Counter(item.label for item in self.items),
            problems=self.problems,
            dropped=self.dropped,
            merge_map=self.merge_map,
            extra={"frame_step_s": step_s, "expected_frames": dict(sorted(frames.items()))},
        )


def raise_if_strict(strict: bool, source: str, problems: Iterable[Problem]) -> None:
    """In strict mode any problem is fatal: one sentence naming the count and the first."""
    found = sorted_problems(problems)
    if strict and found:
        first = found[0]
        where = f" ({first.file}{f', row {first.row}' if first.row else ''})" if first.file else ""
        raise DatasetError(
            f"{source}: {len(found)} problem(s); first: {first.message}{where} "
            "(run `emotion-trainer datasets check` for the full list)"
        )


def relative_path(path: Path, root: Path) -> str:
    """``path`` below ``root`` as posix text (problem reports stay short and portable)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def sorted_problems(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    """Problems in reading order: by file, then row (file-level ones first)."""
    return tuple(sorted(problems, key=lambda p: (p.file or "", p.row or 0, p.kind)))
