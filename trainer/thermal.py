"""The paper's thermal Table 1: mean ROI temperature per condition, and the shifts from baseline.

``python -m trainer.thermal table INPUT --out DIR`` reads a tidy CSV
(``subject,condition,roi,temp_c``), one labelled thermal session (.npz) or a folder of them,
and writes ``table1.csv`` and ``table1.md`` into DIR.

For each subject and ROI: the mean temperature in each condition, and for every condition
other than ``baseline`` the difference ``condition - baseline`` (fear - baseline and
happiness - baseline are the paper's). The ``overall`` rows average the subjects' means with
equal weight per subject (NaN-aware), so a subject with more frames does not dominate.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from device.errors import EmotionEdgeError
from device.features.schema import THERMAL_ROIS
from trainer.datasets.thermal_table import ThermalRow, load_rows
from trainer.errors import DatasetError, UsageError

BASELINE = "baseline"
CONDITION_ORDER = ("baseline", "neutral", "fear", "happiness")
OVERALL = "overall"
PROG = "python -m trainer.thermal"


@dataclass(frozen=True, slots=True)
class Table1Row:
    subject: str
    roi: str
    mean_c: Mapping[str, float]  # condition -> mean °C (NaN if not measured)
    count: Mapping[str, int]  # condition -> measurements behind the mean
    minus_baseline_c: Mapping[str, float]  # non-baseline condition -> mean - baseline mean


@dataclass(frozen=True, slots=True)
class Table1:
    conditions: tuple[str, ...]  # baseline first, then neutral, fear, happiness, others
    rows: tuple[Table1Row, ...]  # per subject and ROI, then the overall rows

    @property
    def compared(self) -> tuple[str, ...]:
        """The conditions that get a difference column."""
        return tuple(c for c in self.conditions if c != BASELINE)

    def row(self, subject: str, roi: str) -> Table1Row:
        for row in self.rows:
            if row.subject == subject and row.roi == roi:
                return row
        raise KeyError(f"no row for subject {subject!r}, roi {roi!r}")


def _ordered(names: Iterable[str], first: Sequence[str]) -> tuple[str, ...]:
    present = set(names)
    return tuple(n for n in first if n in present) + tuple(sorted(present - set(first)))


def _group_means(rows: Sequence[ThermalRow]) -> dict[tuple[str, str, str], tuple[float, int]]:
    """(subject, roi, condition) -> (mean °C, count)."""
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in rows:
        groups[(row.subject, row.roi, row.condition)].append(row.temp_c)
    return {key: (float(np.mean(v)), len(v)) for key, v in groups.items()}


def _differences(mean_c: Mapping[str, float], compared: Sequence[str]) -> dict[str, float]:
    base = mean_c.get(BASELINE, math.nan)
    return {c: mean_c.get(c, math.nan) - base for c in compared}


def _overall_row(roi: str, rows: Sequence[Table1Row], table: Table1) -> Table1Row:
    mine = [row for row in rows if row.roi == roi]

    def average(values: list[float]) -> float:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan

    means = {c: average([r.mean_c[c] for r in mine]) for c in table.conditions}
    counts = {c: sum(r.count[c] for r in mine) for c in table.conditions}
    diffs = {c: average([r.minus_baseline_c[c] for r in mine]) for c in table.compared}
    return Table1Row(OVERALL, roi, means, counts, diffs)


def table1(rows: Sequence[ThermalRow]) -> Table1:
    """Table 1 from tidy rows; raises DatasetError without any baseline measurement."""
    if not any(row.condition == BASELINE for row in rows):
        raise DatasetError(f"Table 1 needs measurements of the {BASELINE!r} condition; none found")
    if any(row.subject == OVERALL for row in rows):
        raise DatasetError(f"a subject may not be called {OVERALL!r}: Table 1 uses that name")
    groups = _group_means(rows)
    shell = Table1(_ordered((r.condition for r in rows), CONDITION_ORDER), ())
    subjects = _ordered((r.subject for r in rows), ())
    rois = _ordered((r.roi for r in rows), THERMAL_ROIS)
    per_subject = []
    for subject in subjects:
        for roi in rois:
            found = {c: groups.get((subject, roi, c), (math.nan, 0)) for c in shell.conditions}
            means = {c: m for c, (m, _) in found.items()}
            counts = {c: n for c, (_, n) in found.items()}
            diffs = _differences(means, shell.compared)
            per_subject.append(Table1Row(subject, roi, means, counts, diffs))
    overall = [_overall_row(roi, per_subject, shell) for roi in rois]
    return Table1(shell.conditions, tuple(per_subject + overall))


# ---------------------------------------------------------------- output


def _header(table: Table1) -> list[str]:
    means = [f"{c}_c" for c in table.conditions]
    diffs = [f"{c}_minus_baseline_c" for c in table.compared]
    counts = [f"{c}_n" for c in table.conditions]
    return ["subject", "roi", *means, *diffs, *counts]


def _cells(row: Table1Row, table: Table1, digits: int) -> list[str]:
    def fmt(value: float) -> str:
        if not math.isfinite(value):
            return ""
        return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.00"

    means = [fmt(row.mean_c[c]) for c in table.conditions]
    diffs = [fmt(row.minus_baseline_c[c]) for c in table.compared]
    counts = [str(row.count[c]) for c in table.conditions]
    return [row.subject, row.roi, *means, *diffs, *counts]


def write_csv(table: Table1, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(_header(table))
        writer.writerows(_cells(row, table, 4) for row in table.rows)
    return path


def to_markdown(table: Table1) -> str:
    """Table 1 as Markdown: means and differences in °C to 2 decimals (counts left out)."""
    columns = len(table.conditions) + len(table.compared)
    names = [*(f"{c} °C" for c in table.conditions), *(f"{c} - baseline" for c in table.compared)]
    lines = [
        "| subject | ROI | " + " | ".join(names) + " |",
        "|---|---|" + "---:|" * columns,
    ]
    for row in table.rows:
        cells = _cells(row, table, 2)[: 2 + columns]
        lines.append("| " + " | ".join(cell or "n/a" for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def write_table1(table: Table1, out_dir: Path) -> tuple[Path, Path]:
    """``table1.csv`` and ``table1.md`` in ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(table, out_dir / "table1.csv")
    md_path = out_dir / "table1.md"
    md_path.write_text(to_markdown(table), encoding="utf-8")
    return csv_path, md_path


# ---------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Thermal ROI tables (the paper's Table 1).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_actions(commands)
    return parser


def add_thermal_command(commands: Any) -> None:
    """``emotion-trainer thermal table|train`` under the trainer's sub-commands."""
    help_text = "thermal: the paper's Table 1, or a thermal ROI classifier"
    thermal = commands.add_parser("thermal", help=help_text, description=help_text)
    add_actions(thermal.add_subparsers(dest="thermal_action", required=True, metavar="ACTION"))


def add_actions(commands: Any) -> None:
    """The ``table`` and ``train`` actions, each with its handler."""
    table = commands.add_parser("table", help="Table 1 from a CSV table or thermal sessions")
    table.set_defaults(handler=run_table_command)
    table.add_argument("input", type=Path, help="tidy CSV, a session .npz, or a folder of .npz")
    table.add_argument("--out", type=Path, required=True, help="output folder")
    table.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    train = commands.add_parser("train", help="a thermal classifier (ONNX + manifest)")
    train.set_defaults(handler=run_train)
    train.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    train.add_argument("input", type=Path, help="a labelled session .npz or a folder of them")
    train.add_argument("--out", type=Path, required=True, help="output folder")
    train.add_argument("--name", default="thermal_rois", help="file stem of the model")
    train.add_argument("--model", default=None, help="model spec, e.g. random_forest:max_depth=8")
    train.add_argument("--baseline-label", default="neutral", help="each subject's calm condition")


def run_table(input_path: Path, out_dir: Path) -> Table1:
    """Read ``input_path``, build Table 1, write it to ``out_dir``; returns the table."""
    table = table1(load_rows(input_path))
    write_table1(table, out_dir)
    return table


def run_train(args: argparse.Namespace) -> int:
    from trainer.model_config import parse_spec
    from trainer.thermal_model import DEFAULT_CHOICE, train_thermal_model

    choice = parse_spec(args.model) if args.model else DEFAULT_CHOICE
    result, metrics = train_thermal_model(
        args.input, args.out, args.name, choice, args.baseline_label
    )
    print(f"wrote {result.onnx_path} ({result.size_bytes:,} B) and {result.manifest_path}")
    if "accuracy" in metrics:
        print(
            f"leave-one-subject-out: accuracy {metrics['accuracy']:.4f}, macro-F1 "
            f"{metrics['macro_f1']:.4f} over {metrics['n']} frames"
        )
    return 0


def run_table_command(args: argparse.Namespace) -> int:
    table = run_table(args.input, args.out)
    subjects = len({row.subject for row in table.rows}) - 1
    print(f"Table 1: {subjects} subject(s), conditions {', '.join(table.conditions)}")
    print(f"wrote {args.out / 'table1.csv'} and {args.out / 'table1.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except EmotionEdgeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
