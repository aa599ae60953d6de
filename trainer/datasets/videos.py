"""A user's own labelled videos: a folder of video files plus a CSV that labels them.

CSV columns ``path,subject,label`` and optionally ``start_s,end_s`` (a labelled segment; several
rows may cut one video). ``path`` is relative to the CSV's folder (or absolute). The same reader
quirks as the BAUM-1 sheets are tolerated (header found by name, any case, `,` `;` or tab, any
line ending); labels compare case-insensitively and pass through the merge map.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from trainer.datasets.common import (
    IDENTITY_MAP,
    MergeMap,
    Problem,
    VideoDataset,
    VideoItem,
    normalise_label,
    raise_if_strict,
    relative_path,
    sorted_problems,
)
from trainer.datasets.sheets import Sheet, read_sheet
from trainer.datasets.video_io import VIDEO_SUFFIXES, probe_items
from trainer.errors import DatasetError

CSV_COLUMNS = ("path", "subject", "label")
LABELS_FILE = "labels.csv"


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float | None


def load_video_folder(
    path: Path | str,
    *,
    merge_map: MergeMap = IDENTITY_MAP,
    probe: bool = True,
    strict: bool = False,
) -> VideoDataset:
    """Items from the labels CSV (``path``, or ``labels.csv`` / the only CSV in folder ``path``)."""
    csv_path = find_labels_csv(Path(path).expanduser())
    base = csv_path.parent
    sheet = read_sheet(csv_path, CSV_COLUMNS)
    items, problems, dropped = parse_rows(sheet, base, merge_map)
    problems += unlisted_videos(base, {item.path for item in items} | _listed(sheet, base))
    if probe:
        items, probe_problems = probe_items(items, base)
        problems += probe_problems + segment_problems(items, base)
        items = [item for item in items if _segment_fits(item)]
    raise_if_strict(strict, f"videos at {base}", problems)
    return VideoDataset(
        "videos", str(csv_path), tuple(items), sorted_problems(problems), dropped, merge_map
    )


def find_labels_csv(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetError(f"video dataset {path} does not exist")
    if (path / LABELS_FILE).is_file():
        return path / LABELS_FILE
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if len(found) != 1:
        raise DatasetError(
            f"{path} must hold {LABELS_FILE} or exactly one .csv (found {len(found)}); "
            "or pass the CSV itself"
        )
    return found[0]


def parse_rows(
    sheet: Sheet, base: Path, merge_map: MergeMap
) -> tuple[list[VideoItem], list[Problem], dict[str, int]]:
    items: dict[str, VideoItem] = {}
    problems: list[Problem] = []
    dropped: Counter[str] = Counter()
    for number, cells in sheet.rows:
        if not any(cells):
            continue
        item = _parse_row(sheet, base, number, cells)
        if isinstance(item, Problem):
            problems.append(item)
            continue
        label = merge_map.apply(item.source_label)
        if item.clip in items:
            first = items[item.clip].row
            message = f"row {number}: {item.clip} repeats row {first}; row ignored"
            problems.append(Problem("duplicate_row", message, sheet.path.name, number))
        elif label is None:
            dropped[item.source_label] += 1
        else:
            items[item.clip] = replace(item, label=label)
    return list(items.values()), problems, dict(dropped)


def _parse_row(sheet: Sheet, base: Path, number: int, cells: list[str]) -> VideoItem | Problem:
    file = sheet.path.name
    text, subject = sheet.cell(cells, "path"), sheet.cell(cells, "subject")
    label = normalise_label(sheet.cell(cells, "label"))
    values = {"path": text, "subject": subject, "label": label}
    missing = [name for name, value in values.items() if not value]
    if missing:
        return Problem("bad_row", f"row {number}: empty {', '.join(missing)}", file, number)
    segment = _segment(sheet, cells)
    if isinstance(segment, str):
        return Problem("bad_row", f"row {number}: {segment}", file, number)
    video = Path(text) if Path(text).is_absolute() else base / text
    if not video.is_file():
        message = f"row {number}: video {text} does not exist"
        return Problem("missing_video", message, relative_path(video, base), number)
    clip = _clip_id(relative_path(video, base), segment)
    return VideoItem(video, subject, clip, label, label, segment.start_s, segment.end_s, number)


def _segment(sheet: Sheet, cells: list[str]) -> Segment | str:
    """The row's start/end (both optional) or why they are wrong."""
    texts = {name: sheet.cell(cells, name) for name in ("starts", "ends")}
    values: dict[str, float | None] = {}
    for name, text in texts.items():
        try:
            values[name] = float(text) if text else None
        except ValueError:
            return f"{name[:-1]}_s {text!r} is not a number of seconds"
    start, end = values["starts"] or 0.0, values["ends"]
    if start < 0 or (end is not None and end <= start):
        shown = "end" if end is None else f"{end:g}"
        return f"segment {start:g}..{shown} s is empty or negative"
    return Segment(start, end)


def _clip_id(relative: str, segment: Segment) -> str:
    stem = relative.rsplit(".", 1)[0]
    if segment.start_s == 0 and segment.end_s is None:
        return stem
    end = "end" if segment.end_s is None else f"{segment.end_s:g}"
    return f"{stem}@{segment.start_s:g}-{end}"


def _listed(sheet: Sheet, base: Path) -> set[Path]:
    """Every video the CSV names, usable row or not (so it is not also 'without a row')."""
    texts = (sheet.cell(cells, "path") for _, cells in sheet.rows)
    return {base / text for text in texts if text}


def unlisted_videos(base: Path, listed: set[Path]) -> list[Problem]:
    """Videos under the CSV's folder that no row names (symlinks count as their own files)."""
    named = {_absolute(path) for path in listed}
    problems = []
    for path in sorted(base.rglob("*")):
        is_video = path.suffix.lower() in VIDEO_SUFFIXES and path.is_file()
        if is_video and _absolute(path) not in named:
            shown = relative_path(path, base)
            problems.append(Problem("video_without_row", f"video {shown} has no row", shown))
    return problems


def _absolute(path: Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def segment_problems(items: list[VideoItem], base: Path) -> list[Problem]:
    return [
        Problem(
            "bad_segment",
            f"row {item.row}: segment starts at {item.start_s:g} s, after the video's end "
            f"({item.info.duration_s:.2f} s)",
            relative_path(item.path, base),
            item.row,
        )
        for item in items
        if item.info is not None and not _segment_fits(item)
    ]


def _segment_fits(item: VideoItem) -> bool:
    return item.info is None or item.start_s < item.info.duration_s
