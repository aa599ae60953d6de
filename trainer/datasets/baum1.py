"""BAUM-1s (spontaneous) and BAUM-1a (acted) as distributed: MP4 clips plus an annotation sheet.

Layout: ``<root>/BAUM1s_MP4 - All/S001/S001_001.mp4`` (folder also ``BAUM1s_MP4_all``, subject
folders in any case) and ``<root>/Annotations_BAUM1s.xlsx`` (or a CSV export of it). Rows are
keyed on ``Clip Name`` (``Sxxx_yyy``; the subject is its prefix) and ``Emotion Code`` (names from
the set's legend); ``Clip``, ``Subject Label``, ``Emotion`` and the side legend after ``Gender``
are ignored, because the hand-made sheets do not keep them in step. Every row or file that cannot
be used is a ``Problem``; labels the merge map drops are counted in ``dropped``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from trainer.datasets.common import (
    IDENTITY_MAP,
    MergeMap,
    Problem,
    VideoDataset,
    VideoItem,
    normalise_header,
    raise_if_strict,
    relative_path,
    sorted_problems,
)
from trainer.datasets.sheets import Sheet, read_sheet
from trainer.datasets.video_io import VIDEO_SUFFIXES, probe_items
from trainer.errors import DatasetError

BAUM1_CODES: dict[str, dict[int, str]] = {
    "baum1s": dict(
        enumerate(
            (
                "anger",
                "boredom",
                "bothered",
                "concentrating",
                "contempt",
                "disgust",
                "fear",
                "happiness",
                "neutral",
                "sadness",
                "surprise",
                "thinking",
                "unsure",
            ),
            start=1,
        )
    ),
    "baum1a": dict(
        enumerate(
            (
                "anger",
                "boredom",
                "disgust",
                "fear",
                "happiness",
                "interest",
                "sadness",
                "surprise",
                "unsure",
            ),
            start=1,
        )
    ),
}
SHEET_COLUMNS = ("Clip Name", "Emotion Code")
SHEET_SUFFIXES = (".xlsx", ".xlsm", ".csv")
_CLIP = re.compile(r"^s\s*0*(\d{1,4})\s*[_\- ]\s*0*(\d{1,4})$", re.IGNORECASE)


@dataclass(frozen=True)
class SheetEntry:
    clip: str
    code: int
    label: str
    row: int


def clip_key(text: str) -> str | None:
    """``' s1_02.mp4 '`` → ``'S001_002'``; None when the text is not a clip name."""
    stem = text.strip()
    if Path(stem).suffix.lower() in VIDEO_SUFFIXES:
        stem = Path(stem).stem
    match = _CLIP.match(stem)
    if match is None:
        return None
    return f"S{int(match[1]):03d}_{int(match[2]):03d}"


def load_baum1(
    root: Path | str,
    kind: str = "baum1s",
    *,
    annotations: Path | None = None,
    merge_map: MergeMap = IDENTITY_MAP,
    probe: bool = True,
    strict: bool = False,
) -> VideoDataset:
    """The labelled clips of one BAUM-1 set; ``probe`` opens each video to read fps and size."""
    if kind not in BAUM1_CODES:
        raise DatasetError(f"unknown BAUM-1 set {kind!r}; expected one of {sorted(BAUM1_CODES)}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"BAUM-1 folder {root} does not exist")
    video_dir = find_video_dir(root, kind)
    sheet = read_sheet(annotations or find_annotations(root, kind), SHEET_COLUMNS)
    entries, problems = parse_sheet(sheet, BAUM1_CODES[kind])
    videos, video_problems = index_videos(video_dir, root)
    items, join_problems, dropped = join(entries, videos, merge_map, sheet.path.name, root)
    problems += video_problems + join_problems
    if probe:
        items, probe_problems = probe_items(items, root)
        problems += probe_problems
    raise_if_strict(strict, f"{kind} at {root}", problems)
    return VideoDataset(
        kind, str(root), tuple(items), sorted_problems(problems), dropped, merge_map
    )


# --- finding the parts ---------------------------------------------------------------------


def _display(kind: str) -> str:
    return f"BAUM1{kind[-1]}"


def find_video_dir(root: Path, kind: str) -> Path:
    """``BAUM1s_MP4 - All`` (any spelling with the set's name) or ``root`` itself."""
    wanted = f"{kind}mp4"
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if normalise_header(child.name).startswith(wanted):
            return child
    if any(clip_key(f"{p.name}_1") for p in root.iterdir() if p.is_dir()):
        return root  # the user pointed at the video folder itself
    raise DatasetError(
        f"{root} holds no '{_display(kind)}_MP4 - All' folder nor subject folders S001…; "
        "point at the folder that holds them"
    )


def find_annotations(root: Path, kind: str) -> Path:
    """``Annotations_BAUM1s.xlsx`` or its CSV export in ``root``, else in its parent; xlsx first."""
    wanted = f"annotations{kind}"
    found = sorted(
        (p for p in (*root.iterdir(), *root.parent.iterdir()) if p.is_file()),
        key=lambda p: (p.parent != root, p.suffix.lower() != ".xlsx", p.name),
    )
    for path in found:
        if path.suffix.lower() in SHEET_SUFFIXES and normalise_header(path.stem) == wanted:
            return path
    raise DatasetError(
        f"no Annotations_{_display(kind)}.xlsx or .csv in {root} or its parent; "
        "pass the sheet with --annotations"
    )


# --- the sheet -----------------------------------------------------------------------------


def parse_sheet(sheet: Sheet, codes: dict[int, str]) -> tuple[dict[str, SheetEntry], list[Problem]]:
    """One entry per clip; blank rows are skipped, everything else unusable is a problem."""
    entries: dict[str, SheetEntry] = {}
    problems: list[Problem] = []
    for number, cells in _data_rows(sheet):
        entry = _parse_row(sheet, number, cells, codes)
        if isinstance(entry, Problem):
            problems.append(entry)
        elif entry.clip in entries:
            problems.append(_duplicate(sheet, entry, entries[entry.clip]))
        else:
            entries[entry.clip] = entry
    return entries, problems


def _data_rows(sheet: Sheet) -> Iterator[tuple[int, list[str]]]:
    """Rows cut after ``Gender`` (the side legend lives beyond it); fully blank rows skipped."""
    used = [sheet.columns[name] for name in ("clipname", "emotioncode")]
    last = sheet.columns.get("gender", max(used))
    for number, cells in sheet.rows:
        data = cells[: last + 1]
        if any(data):
            yield number, data


def _parse_row(
    sheet: Sheet, number: int, cells: list[str], codes: dict[int, str]
) -> SheetEntry | Problem:
    name, code_text = sheet.cell(cells, "clipname"), sheet.cell(cells, "emotioncode")
    file = sheet.path.name
    clip = clip_key(name)
    if clip is None:
        shown = f"Clip Name {name!r} is not Sxxx_yyy" if name else "no Clip Name"
        return Problem("bad_row", f"row {number}: {shown}", file, number)
    code = _code(code_text)
    if code is None:
        message = f"row {number}: clip {clip} has Emotion Code {code_text!r}, not a number"
        return Problem("bad_row", message, file, number)
    if code not in codes:
        message = f"row {number}: clip {clip} has Emotion Code {code}, outside 1..{len(codes)}"
        return Problem("unknown_code", message, file, number)
    return SheetEntry(clip=clip, code=code, label=codes[code], row=number)


def _code(text: str) -> int | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _duplicate(sheet: Sheet, entry: SheetEntry, first: SheetEntry) -> Problem:
    same = "the same label" if entry.code == first.code else f"code {first.code} there"
    message = f"row {entry.row}: clip {entry.clip} repeats row {first.row} ({same}); row ignored"
    return Problem("duplicate_row", message, sheet.path.name, entry.row)


# --- the videos and the join ---------------------------------------------------------------


def index_videos(video_dir: Path, root: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Every video file under the folder by clip name; odd names and duplicates are problems."""
    videos: dict[str, Path] = {}
    problems: list[Problem] = []
    for path in sorted(video_dir.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        shown = relative_path(path, root)
        clip = clip_key(path.stem)
        if clip is None:
            problems.append(Problem("bad_video_name", f"{shown} is not named Sxxx_yyy", shown))
        elif clip in videos:
            kept = relative_path(videos[clip], root)
            message = f"{shown} is a second video for {clip} (kept {kept})"
            problems.append(Problem("duplicate_video", message, shown))
        else:
            videos[clip] = path
    return videos, problems


def join(
    entries: dict[str, SheetEntry],
    videos: dict[str, Path],
    merge_map: MergeMap,
    sheet_name: str,
    root: Path,
) -> tuple[list[VideoItem], list[Problem], dict[str, int]]:
    """Items for rows with a video and a kept label; rows and videos without a partner."""
    items: list[VideoItem] = []
    problems: list[Problem] = []
    dropped: Counter[str] = Counter()
    for clip, entry in sorted(entries.items()):
        label = merge_map.apply(entry.label)
        if clip not in videos:
            message = f"row {entry.row}: clip {clip} has no video file"
            problems.append(Problem("row_without_video", message, sheet_name, entry.row))
        elif label is None:
            dropped[entry.label] += 1
        else:
            subject = clip.split("_", 1)[0]
            items.append(VideoItem(videos[clip], subject, clip, label, entry.label, row=entry.row))
    for clip in sorted(set(videos) - set(entries)):
        shown = relative_path(videos[clip], root)
        message = f"video {shown} has no row for {clip} in {sheet_name}"
        problems.append(Problem("video_without_row", message, shown))
    return items, problems, dict(dropped)
