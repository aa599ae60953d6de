"""``emotion-device bench-rounds``: several models benched in turn, round after round.

A shared machine's speed drifts from minute to minute and from day to day, so two models benched
an hour apart do not compare. Here every round runs ``emotion-device bench`` once per model, each in
a fresh process as a device starts, and the table gives each model's figures over the rounds: the
fused path's extra cost over the blendshape-only path (mean, median, range), its CNN stage, the
device step against the bare landmarker and the peak RSS. The differences between rows hold even
when the whole table moves.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from device.errors import EmotionEdgeError


class BenchRoundsError(EmotionEdgeError):
    """One of the bench runs failed."""


class MissingModel(BenchRoundsError):
    exit_code = 2  # a usage error: the path is wrong


@dataclass(frozen=True)
class RoundsOptions:
    models: list[Path]
    rounds: int = 3
    bench_args: list[str] = field(default_factory=list)  # passed to every ``bench`` run
    json_path: Path | None = None
    progress: bool = True


def run_bench_rounds(options: RoundsOptions) -> int:
    for model in options.models:
        if not model.is_file():
            raise MissingModel(f"model {model} does not exist: give a .onnx or bundle .json")
    reports = bench_rounds(options)
    rows = [summarize(model, runs) for model, runs in zip(options.models, reports, strict=True)]
    print(format_table(rows))
    if options.json_path is not None:
        table = {"rounds": options.rounds, "models": rows}
        options.json_path.write_text(json.dumps(table, indent=2) + "\n")
        print(f"\nwrote {options.json_path}")
    return 0


def bench_rounds(options: RoundsOptions) -> list[list[dict[str, Any]]]:
    """The bench report of every run, per model in the order given."""
    reports: list[list[dict[str, Any]]] = [[] for _ in options.models]
    steps = tqdm(
        total=options.rounds * len(options.models),
        desc="bench runs",
        unit="run",
        disable=not options.progress,
    )
    with tempfile.TemporaryDirectory() as folder, steps:
        for round_index in range(options.rounds):
            for index, model in enumerate(options.models):
                out = Path(folder) / f"{index}_{round_index}.json"
                _bench_once(model, out, options.bench_args)
                reports[index].append(json.loads(out.read_text()))
                steps.update()
    return reports


def _bench_once(model: Path, out: Path, bench_args: list[str]) -> None:
    command = [sys.executable, "-m", "device.cli", "bench", "--model", str(model)]
    command += ["--json", str(out), *bench_args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        reason = last.removeprefix("emotion-device: ")
        error = BenchRoundsError(f"bench of {model} failed: {reason}")
        error.exit_code = done.returncode  # the run's own reason (78: a bad model file)
        raise error


def summarize(model: Path, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's figures over its runs; the fused ones only for a fused bundle."""
    row: dict[str, Any] = {
        "model": str(model),
        "name": runs[0]["model"],
        "runs": len(runs),
        "device_step_over_bare_landmarker": _mean(
            r["device_step_over_bare_landmarker"] for r in runs
        ),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "classifier_ms": _mean(r["stages_ms"]["classifier"]["mean_ms"] for r in runs),
    }
    fused = [r["fused_path"] for r in runs if "fused_path" in r]
    extra = [f["extra_cost_ms"] for f in fused if f["extra_cost_ms"] is not None]
    if extra:  # None: a run without faces on one of the two paths
        row["extra_cost_ms"] = {
            "mean": _mean(extra),
            "median": round(statistics.median(extra), 4),
            "min": min(extra),
            "max": max(extra),
            "each": extra,
        }
        row["cnn_ms"] = _mean(f["stages_ms"]["cnn"]["mean_ms"] for f in fused)
        row["blendshape_only_model"] = fused[0]["blendshape_only_model"]
    return row


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per model, named by its folder and file (bundles often share a file name)."""
    names = [f"{Path(row['model']).parent.name}/{Path(row['model']).name}" for row in rows]
    width = max(len("model"), *map(len, names)) + 2
    header = f"{'model':<{width}}{'runs':>5}{'extra ms mean':>15}{'median':>8}{'range':>15}"
    header += f"{'CNN ms':>8}{'step/bare':>10}{'RSS MB':>8}"
    lines = [header]
    for name, row in zip(names, rows, strict=True):
        extra = row.get("extra_cost_ms")
        cells = f"{'-':>15}{'-':>8}{'-':>15}{'-':>8}"
        if extra:
            spread = f"{extra['min']:.3f}-{extra['max']:.3f}"
            cells = f"{extra['mean']:>15.3f}{extra['median']:>8.3f}{spread:>15}"
            cells += f"{row['cnn_ms']:>8.3f}"
        step, rss = row["device_step_over_bare_landmarker"], row["peak_rss_mb"]
        lines.append(f"{name:<{width}}{row['runs']:>5}{cells}{step:>10.3f}{rss:>8.1f}")
    return "\n".join(lines)


def _mean(values: Any) -> float:
    return round(statistics.fmean(values), 4)
