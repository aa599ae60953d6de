"""Hand-made annotation sheets, xlsx or CSV, as rows of trimmed text with their row numbers.

CSV: UTF-8 (with or without BOM) or Windows-1252, any line ending, delimiter `,` `;` or tab.
xlsx: the first worksheet that holds the wanted header, through openpyxl (read-only). The header
row is found by its column names (letters and digits only, any case), and a header split over two
lines (merged cells exported row by row) is joined.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.datasets.common import normalise_header
from trainer.errors import DatasetError

HEADER_SEARCH_ROWS = 30
Row = tuple[int, list[str]]  # (1-based row number in the file, cells)


@dataclass(frozen=True)
class Sheet:
    """The rows below the header, and each wanted column's position."""

    path: Path
    header: list[str]  # the header cells as written (joined when it spans two lines)
    columns: dict[str, int]  # normalised name -> index of its first occurrence
    rows: list[Row]

    def cell(self, cells: list[str], name: str) -> str:
        index = self.columns.get(name)
        return cells[index] if index is not None and index < len(cells) else ""


def read_sheet(path: Path, required: tuple[str, ...]) -> Sheet:
    """The first table in ``path`` whose header holds every ``required`` column."""
    wanted = tuple(normalise_header(name) for name in required)
    tables = _xlsx_tables(path) if path.suffix.lower() in (".xlsx", ".xlsm") else [_csv_rows(path)]
    for rows in tables:
        found = _find_header(rows, wanted)
        if found is not None:
            header_end, header = found
            return Sheet(path, header, _columns(header), rows[header_end:])
    raise DatasetError(
        f"{path} has no header row with the columns {', '.join(required)} "
        f"in its first {HEADER_SEARCH_ROWS} rows"
    )


def cell_text(value: Any) -> str:
    """A cell as trimmed text; whole floats (Excel's numbers) lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


def _find_header(rows: list[Row], wanted: tuple[str, ...]) -> tuple[int, list[str]] | None:
    """(index of the first data row, header cells) for a one- or two-line header."""
    for position, (_, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if all(name in _columns(cells) for name in wanted):
            return position + 1, cells
        if position + 1 < len(rows):
            joined = _join_cells(cells, rows[position + 1][1])
            if all(name in _columns(joined) for name in wanted):
                return position + 2, joined
    return None


def _columns(cells: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, cell in enumerate(cells):
        columns.setdefault(normalise_header(cell), index)
    columns.pop("", None)
    return columns


def _join_cells(upper: list[str], lower: list[str]) -> list[str]:
    width = max(len(upper), len(lower))
    padded = [(upper + [""] * width)[:width], (lower + [""] * width)[:width]]
    return [f"{a} {b}".strip() for a, b in zip(*padded, strict=True)]


# --- xlsx ----------------------------------------------------------------------------------


def _xlsx_tables(path: Path) -> list[list[Row]]:
    try:
        from openpyxl import load_workbook
    except ImportError:
        raise DatasetError(
            f"reading {path.name} needs openpyxl: pip install 'emotion-edge[trainer]' "
            "(or export the sheet to CSV)"
        ) from None
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable xlsx workbook ({exc})") from None
    try:
        return [_sheet_rows(sheet) for sheet in book.worksheets]
    finally:
        book.close()


def _sheet_rows(sheet: Any) -> list[Row]:
    return [
        (number, [cell_text(value) for value in values])
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)
    ]


# --- CSV -----------------------------------------------------------------------------------


def _csv_rows(path: Path) -> list[Row]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path} cannot be read ({exc.strerror})") from None
    text = _decode(raw)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    rows: list[Row] = []
    for cells in reader:
        rows.append((reader.line_num, [cell_text(cell) for cell in cells]))
    return rows


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _delimiter(text: str) -> str:
    """The most frequent of `,` `;` tab in the first 8 KB (`,` on a tie)."""
    sample = text[:8192]
    return max(",;\t", key=lambda char: (sample.count(char), char == ","))
