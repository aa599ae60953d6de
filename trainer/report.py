"""Reports a person opens: PNG figures, a Markdown summary and a manifest of what ran.

Figures follow the paper: Figure 2, the distribution of a feature per class (by default the mean
of ``mouthSmileLeft`` and ``mouthSmileRight``); Figure 3, scores per fold; Figure 4, scores per
subject (only when the data has subjects); and row-normalised confusion matrices of the pooled
out-of-fold predictions. Plots use matplotlib's ``Figure`` directly (Agg canvas, no pyplot
state). Every function returns the numbers it drew and writes its file.
"""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from trainer.errors import UsageError
from trainer.evaluate import LabelledFeatures, ProtocolRun, run_protocol, write_json
from trainer.metrics import format_mean_std, mean_std, normalised_confusion
from trainer.protocols import LeaveOneSubjectOut, Protocol, protocol_groups, protocol_units
from trainer.significance import (
    DEFAULT_BOOTSTRAP,
    compare_runs,
    compare_to_majority,
    format_interval,
    permutation_test,
)

logger = logging.getLogger(__name__)

SMILE = ("blendshape.mouthSmileLeft", "blendshape.mouthSmileRight")
FIGURES = "figures"
VERSIONED = ("emotion-edge", "numpy", "scikit-learn", "scipy", "joblib", "matplotlib", "mediapipe")
Runs = dict[str, dict[str, ProtocolRun]]  # protocol -> model -> run


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


# --- Figure 2: a feature per class ------------------------------------------------------------


def feature_by_class(
    data: LabelledFeatures, feature_names: Sequence[str], features: Sequence[str] = SMILE
) -> dict[str, npt.NDArray[np.float64]]:
    """The mean of ``features`` for every row with a face, grouped by class name."""
    missing = [name for name in features if name not in feature_names]
    if missing:
        raise UsageError(f"unknown feature {missing[0]!r}; features are named like {SMILE[0]}")
    columns = [list(feature_names).index(name) for name in features]
    values = data.values[:, columns].astype(np.float64).mean(axis=1)
    found = data.face_found
    return {name: values[found & (data.labels == k)] for k, name in enumerate(data.class_names)}


def feature_distribution_figure(
    data: LabelledFeatures,
    feature_names: Sequence[str],
    out_path: Path,
    features: Sequence[str] = SMILE,
) -> dict[str, dict[str, float]]:
    """Figure 2: box plots of the feature per class; returns median, quartiles, mean, n."""
    groups = feature_by_class(data, feature_names, features)
    fig = Figure(figsize=(1.1 * len(groups) + 2, 4))
    ax = fig.subplots()
    ax.boxplot([g if len(g) else [np.nan] for g in groups.values()], showfliers=False)
    ax.set_xticks(range(1, len(groups) + 1), list(groups), rotation=30)
    label = " / ".join(name.removeprefix("blendshape.") for name in features)
    ax.set_ylabel(f"mean of {label}" if len(features) > 1 else label)
    ax.set_title("Feature distribution per class (rows with a face)")
    _save(fig, out_path)
    return {name: _describe(values) for name, values in groups.items()}


def _describe(values: npt.NDArray[np.float64]) -> dict[str, float]:
    if len(values) == 0:
        return {"n": 0}
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return {
        "n": len(values),
        "mean": float(values.mean()),
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
    }


# --- Figures 3 and 4: scores per fold and per subject ---------------------------------------


def _bars(
    ax: Any, series: Mapping[str, Sequence[float]], names: Sequence[str], baseline: Sequence[float]
) -> None:
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(names))
    for i, (model, scores) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, scores, width, label=model)
    ax.scatter(x, baseline, marker="_", s=400, color="black", label="majority class", zorder=3)
    ax.set_xticks(x, list(names), rotation=30 if len(names) > 6 else 0)
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")


def fold_scores_figure(
    runs: Mapping[str, ProtocolRun], out_path: Path, metric: str = "accuracy"
) -> dict[str, list[float]]:
    """Figure 3: ``metric`` per fold and model (rows with a face), majority baseline marked."""
    first = next(iter(runs.values()))
    series = {model: run.fold_scores("face_found", metric) for model, run in runs.items()}
    baseline = first.fold_scores("majority_face_found", metric)
    fig = Figure(figsize=(max(6.0, 0.5 * len(first.folds) * len(runs) + 3), 4))
    ax = fig.subplots()
    _bars(ax, series, first.fold_names, baseline)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} per fold: {first.protocol}")
    _save(fig, out_path)
    return {**series, "majority class": baseline}


def subject_scores(
    runs: Mapping[str, ProtocolRun], data: LabelledFeatures, metric: str = "accuracy"
) -> dict[str, dict[str, float]]:
    """``metric`` of each subject's pooled out-of-fold rows, per model."""
    return {
        model: {s: float(m.get(metric, np.nan)) for s, m in run.per_subject(data).items()}
        for model, run in runs.items()
    }


def subject_scores_figure(
    runs: Mapping[str, ProtocolRun],
    data: LabelledFeatures,
    out_path: Path,
    metric: str = "accuracy",
) -> dict[str, dict[str, float]]:
    """Figure 4: ``metric`` per subject and model; nothing is drawn without subjects."""
    scores = subject_scores(runs, data, metric)
    subjects = sorted({s for per in scores.values() for s in per})
    if not subjects:
        return {}
    series = {model: [per.get(s, np.nan) for s in subjects] for model, per in scores.items()}
    baseline = _subject_baseline(next(iter(runs.values())), data, subjects, metric)
    fig = Figure(figsize=(max(6.0, 0.45 * len(subjects) * len(runs) + 3), 4))
    ax = fig.subplots()
    _bars(ax, series, subjects, baseline)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} per subject: {next(iter(runs.values())).protocol}")
    _save(fig, out_path)
    return scores


def _subject_baseline(
    run: ProtocolRun, data: LabelledFeatures, subjects: Sequence[str], metric: str
) -> list[float]:
    per = replace(run, predicted=run.baseline).per_subject(data)
    return [float(per[s].get(metric, np.nan)) if s in per else np.nan for s in subjects]


# --- confusion matrices ----------------------------------------------------------------------


def confusion_figure(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], out_path: Path, title: str
) -> list[list[float]]:
    """A row-normalised confusion matrix (true class per row) with every cell labelled."""
    norm = normalised_confusion(matrix)
    size = 1.0 + 0.75 * len(class_names)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.subplots()
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, list(class_names), rotation=45, ha="right")
    ax.set_yticks(ticks, list(class_names))
    for (i, j), value in np.ndenumerate(norm):
        color = "white" if value > 0.5 else "black"
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    _save(fig, out_path)
    rows: list[list[float]] = norm.tolist()
    return rows


# --- running the evaluations and tests behind a report ---------------------------------------


@dataclass(frozen=True)
class ReportSettings:
    """Which models run, how many permutations and bootstrap draws, where folds run."""

    models: tuple[str, ...]
    seed: int = 0
    n_permutations: int = 0
    n_boot: int = DEFAULT_BOOTSTRAP
    n_jobs: int | None = None
    progress: bool = False  # a bar per model and protocol as its folds finish
    metric: str = "accuracy"
    features: tuple[str, ...] = SMILE
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """The files of a report and the numbers in them."""

    out_dir: Path
    markdown: Path
    manifest: Path
    metrics: Path
    figures: dict[str, Path]
    results: dict[str, Any]


def run_evaluations(
    data: LabelledFeatures, protocols: Mapping[str, Protocol], settings: ReportSettings
) -> Runs:
    """Every model under every protocol (folds through joblib)."""
    return {
        name: {
            model: run_protocol(
                model,
                data,
                protocol,
                settings.seed,
                n_jobs=settings.n_jobs,
                params=settings.model_params.get(model),
                progress=settings.progress,
            )
            for model in settings.models
        }
        for name, protocol in protocols.items()
    }


def significance(
    runs: Runs, data: LabelledFeatures, protocols: Mapping[str, Protocol], settings: ReportSettings
) -> dict[str, Any]:
    """Per protocol: each model against the majority class and chance, each pair of models."""
    out: dict[str, Any] = {}
    for name, by_model in runs.items():
        boot: dict[str, Any] = {"n_boot": settings.n_boot, "seed": settings.seed}
        boot["groups"] = bootstrap_units(protocols[name])
        models = list(by_model)
        out[name] = {
            "vs_majority": {m: compare_to_majority(r, data, **boot) for m, r in by_model.items()},
            "pairwise": [
                compare_runs(by_model[a], by_model[b], data, **boot)
                for i, a in enumerate(models)
                for b in models[i + 1 :]
            ],
            "permutation": _permutations(by_model, data, protocols[name], settings),
        }
    return out


def bootstrap_units(protocol: Protocol) -> npt.NDArray[Any] | None:
    """What a bootstrap resamples whole: clips, else subjects (LOSO), else single rows."""
    units = protocol_units(protocol)
    if units is not None:
        return units
    return protocol.subjects if isinstance(protocol, LeaveOneSubjectOut) else None


def _permutations(
    by_model: Mapping[str, ProtocolRun],
    data: LabelledFeatures,
    protocol: Protocol,
    settings: ReportSettings,
) -> dict[str, Any]:
    if settings.n_permutations < 1:
        return {}
    return {
        model: permutation_test(
            model,
            data,
            protocol,
            n_permutations=settings.n_permutations,
            seed=settings.seed,
            groups=protocol_groups(protocol),
            units=protocol_units(protocol),
            n_jobs=settings.n_jobs,
            observed=float(np.nanmean(run.fold_scores("face_found", settings.metric))),
            metric=settings.metric,
            params=settings.model_params.get(model),
        )
        for model, run in by_model.items()
    }


def draw_figures(
    runs: Runs,
    data: LabelledFeatures,
    feature_names: Sequence[str],
    out_dir: Path,
    settings: ReportSettings,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Every figure of the report; their paths and the numbers drawn, keyed alike."""
    fig_dir = out_dir / FIGURES
    paths: dict[str, Path] = {"fig2_feature": fig_dir / "fig2_feature_per_class.png"}
    drawn: dict[str, Any] = {
        "fig2_feature": feature_distribution_figure(
            data, feature_names, paths["fig2_feature"], settings.features
        )
    }
    for protocol, by_model in runs.items():
        key = f"fig3_{protocol}"
        paths[key] = fig_dir / f"fig3_folds_{protocol}.png"
        drawn[key] = fold_scores_figure(by_model, paths[key], settings.metric)
        per_subject = subject_scores_figure(
            by_model, data, fig_dir / f"fig4_subjects_{protocol}.png", settings.metric
        )
        if per_subject:
            paths[f"fig4_{protocol}"] = fig_dir / f"fig4_subjects_{protocol}.png"
            drawn[f"fig4_{protocol}"] = per_subject
        for model, run in by_model.items():
            key = f"confusion_{protocol}_{model}"
            paths[key] = fig_dir / f"confusion_{protocol}_{model}.png"
            matrix = run.pooled(data)["face_found"].get("confusion_matrix", [])
            title = f"{model}, {protocol} (rows with a face, row-normalised)"
            drawn[key] = confusion_figure(matrix, data.class_names, paths[key], title)
    return paths, drawn


def results_dict(
    runs: Runs, data: LabelledFeatures, tests: dict[str, Any], settings: ReportSettings
) -> dict[str, Any]:
    """Everything measured: per protocol and model the folds, mean ± std, pooled, per subject."""
    protocols: dict[str, Any] = {}
    for name, by_model in runs.items():
        models = {
            model: {
                **run.to_dict(),
                "pooled": run.pooled(data),
                "per_subject": run.per_subject(data),
                "per_subject_summary": _subject_summary(run, data),
            }
            for model, run in by_model.items()
        }
        protocols[name] = {"models": models, "significance": tests.get(name, {})}
    return {
        "n_rows": len(data.labels),
        "n_faces": int(data.face_found.sum()),
        "coverage": float(data.face_found.mean()),
        "class_names": list(data.class_names),
        "seed": settings.seed,
        "protocols": protocols,
    }


def _subject_summary(run: ProtocolRun, data: LabelledFeatures) -> dict[str, Any]:
    per = run.per_subject(data)
    keys = ("accuracy", "macro_f1", "balanced_accuracy")
    return {key: mean_std(m.get(key, np.nan) for m in per.values()) for key in keys} if per else {}


# --- Markdown summary and manifest -----------------------------------------------------------


def _p(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _fold_p(paired: dict[str, Any]) -> str:
    """Corrected t (else paired t) and Wilcoxon p-values over folds, or a dash for one fold."""
    t = paired.get("corrected_t_test") or paired.get("t_test")
    if t is None:
        return "-"
    return f"{_p(t['p_value'])} / {_p(paired['wilcoxon']['p_value'])}"


def _cell(summary: dict[str, Any], section: str, key: str) -> str:
    return format_mean_std(summary[section][key])


def protocol_table(protocol: str, block: dict[str, Any]) -> list[str]:
    """The Markdown table of one protocol: one row per model plus the majority baseline."""
    rows = [
        f"### {protocol}",
        "",
        "| model | accuracy | macro-F1 | balanced acc. | macro precision | macro recall "
        "| all-rows acc. | Δ acc. vs majority [95% CI] | p boot. | p fold t / Wilcoxon "
        "| p permutation |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tests = block["significance"]
    for model, result in block["models"].items():
        vs = tests["vs_majority"][model]
        perm = tests.get("permutation", {}).get(model, {}).get("p_value")
        cells = [
            _cell(result, "face_found", k)
            for k in (
                "accuracy",
                "macro_f1",
                "balanced_accuracy",
                "macro_precision",
                "macro_recall",
            )
        ]
        rows.append(
            f"| {model} | {' | '.join(cells)} | {_cell(result, 'all_rows', 'accuracy')} "
            f"| {format_interval(vs['bootstrap'])} | {_p(vs['bootstrap']['p_value'])} "
            f"| {_fold_p(vs['paired'])} | {_p(perm)} |"
        )
    first = next(iter(block["models"].values()))
    base = [
        _cell(first, "majority_face_found", k)
        for k in ("accuracy", "macro_f1", "balanced_accuracy", "macro_precision", "macro_recall")
    ]
    majority_all = _cell(first, "majority_all_rows", "accuracy")
    rows.append(f"| majority class | {' | '.join(base)} | {majority_all} | | | | |")
    return [*rows, "", *_pairwise_table(tests["pairwise"]), *_subject_lines(block)]


def _pairwise_table(pairs: list[dict[str, Any]]) -> list[str]:
    if not pairs:
        return []
    rows = [
        "| A vs B | Δ acc. [95% CI] | p boot. | p McNemar | p fold t / Wilcoxon |",
        "|---|---|---|---|---|",
    ]
    for pair in pairs:
        rows.append(
            f"| {pair['a']} vs {pair['b']} | {format_interval(pair['bootstrap'])} "
            f"| {_p(pair['bootstrap']['p_value'])} | {_p(pair['mcnemar']['p_value'])} "
            f"| {_fold_p(pair['paired'])} |"
        )
    return [*rows, ""]


def _subject_lines(block: dict[str, Any]) -> list[str]:
    lines = []
    for model, result in block["models"].items():
        summary = result.get("per_subject_summary")
        if summary:
            acc = summary["accuracy"]
            lines.append(
                f"- {model}, accuracy per subject: {format_mean_std(acc)} "
                f"(range {acc['min']:.3f} to {acc['max']:.3f}, {acc['n']} subjects)"
            )
    return [*lines, ""] if lines else []


def write_markdown(
    out_dir: Path, results: dict[str, Any], figures: Mapping[str, Path], title: str
) -> Path:
    """``report.md``: headline numbers, significance and a link to every figure."""
    lines = [f"# {title}", "", *_intro(results), ""]
    for protocol, block in results["protocols"].items():
        lines += protocol_table(protocol, block)
    lines += ["## Figures", ""]
    for key, path in figures.items():
        lines += [
            f"### {_caption(key)}",
            "",
            f"![{key}]({path.relative_to(out_dir).as_posix()})",
            "",
        ]
    lines += _notes()
    path = out_dir / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def _intro(results: dict[str, Any]) -> list[str]:
    return [
        f"{results['n_rows']:,} rows, a face in {results['coverage']:.1%} "
        f"({results['n_faces']:,}); classes {', '.join(results['class_names'])}; "
        f"seed {results['seed']}.",
        "",
        "Scores are on rows with a face, mean ± population std over folds; *all-rows* counts a "
        "row without a face as the training majority class. Details: `metrics.json`; what ran: "
        "`manifest.json`.",
    ]


def _caption(key: str) -> str:
    if key.startswith("fig2"):
        return "Figure 2: feature per class"
    if key.startswith("fig3_"):
        return f"Figure 3: scores per fold, {key.removeprefix('fig3_')}"
    if key.startswith("fig4_"):
        return f"Figure 4: scores per subject, {key.removeprefix('fig4_')}"
    return f"Confusion matrix, {key.removeprefix('confusion_').replace('_', ' ', 1)}"


def _notes() -> list[str]:
    return [
        "## How to read the tests",
        "",
        "- Δ acc. vs majority: accuracy minus the majority-class baseline of the same folds on "
        "the pooled out-of-fold rows; the CI and *p boot.* come from a bootstrap over rows (over "
        "whole clips, or subjects under LOSO, when the data has them).",
        "- *p fold t / Wilcoxon*: the Nadeau-Bengio corrected paired t-test and Wilcoxon's "
        "signed-rank test over fold scores (5 folds: Wilcoxon cannot go below 0.0625).",
        "- *p permutation*: labels permuted and the model refitted on the same folds; with n "
        "permutations p is at least 1/(n+1). A dash: not run (`--permutations N`).",
        "- McNemar: exact test on the rows where exactly one of the two models is right.",
    ]


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def write_manifest(
    out_dir: Path, command: Sequence[str], settings: ReportSettings, inputs: dict[str, Any]
) -> dict[str, Any]:
    """``manifest.json``: the command, versions, seed, settings and inputs of this report."""
    from trainer.export import git_sha

    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": list(command),
        "seed": settings.seed,
        "settings": {**asdict(settings), "features": list(settings.features)},
        "inputs": inputs,
        "software": {**versions(), "emotion_edge_git_sha": git_sha(Path(__file__).parents[1])},
        "files": sorted(
            p.relative_to(out_dir).as_posix()
            for p in out_dir.rglob("*")
            if p.is_file() and p.name != "manifest.json"
        ),
    }
    write_json(manifest, out_dir / "manifest.json")
    return manifest


# --- the whole report ------------------------------------------------------------------------


def build_report(
    data: LabelledFeatures,
    feature_names: Sequence[str],
    protocols: Mapping[str, Protocol],
    out_dir: Path,
    settings: ReportSettings,
    *,
    command: Sequence[str] = (),
    inputs: dict[str, Any] | None = None,
    title: str = "Evaluation report",
) -> Report:
    """Run every model under every protocol, test, draw, and write the report folder."""
    if not settings.models or not protocols:
        raise UsageError("a report needs at least one model and one protocol")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = run_evaluations(data, protocols, settings)
    tests = significance(runs, data, protocols, settings)
    results = results_dict(runs, data, tests, settings)
    figures, drawn = draw_figures(runs, data, feature_names, out_dir, settings)
    results["figures"] = drawn
    write_json(results, out_dir / "metrics.json")
    markdown = write_markdown(out_dir, results, figures, title)
    manifest = out_dir / "manifest.json"
    write_manifest(out_dir, command or sys.argv, settings, inputs or {})
    return Report(out_dir, markdown, manifest, out_dir / "metrics.json", figures, results)


def fer_protocols(data: LabelledFeatures, names: Sequence[str], seed: int) -> dict[str, Protocol]:
    """FER2013's protocols by name: ``cv5`` (stratified 5-fold) and ``official``."""
    from trainer.protocols import make_protocol

    unknown = [n for n in names if n not in ("cv5", "official")]
    if unknown:
        raise UsageError(f"FER2013 has no protocol {unknown[0]!r}; choose cv5 or official")
    return {name: make_protocol(name, seed=seed, usage=data.usage) for name in names}


SUBJECT_PROTOCOLS = ("loso", "person_specific", "clip_kfold", "cv5")


def table_protocols(
    subjects: Any, clips: Any, times: Any, names: Sequence[str], seed: int
) -> dict[str, Protocol]:
    """Protocols for frames with subjects: ``loso``, ``person_specific``, ``clip_kfold``,
    ``cv5``. Clip ids are made unique per subject (tables may reuse ``001``)."""
    from trainer.protocols import make_protocol

    unknown = [n for n in names if n not in SUBJECT_PROTOCOLS]
    if unknown:
        raise UsageError(
            f"labelled frames have no protocol {unknown[0]!r}; "
            f"choose from {', '.join(SUBJECT_PROTOCOLS)}"
        )
    subjects = np.asarray(subjects).astype(str)
    clip_keys = np.char.add(np.char.add(subjects, "/"), np.asarray(clips).astype(str))
    return {
        name: make_protocol(
            name, seed=seed, subjects=subjects, clips=clip_keys, times=np.asarray(times, float)
        )
        for name in names
    }


def table_data(table: Any) -> LabelledFeatures:
    """A ``FeatureTable`` (BAUM-1, labelled videos, a user's table) as ``LabelledFeatures``."""
    return LabelledFeatures(
        values=table.values,
        face_found=table.face_found,
        labels=table.label_indices(),
        usage=np.full(len(table), "", dtype=np.str_),
        class_names=table.class_names,
        subjects=table.subjects,
    )


def run_table_report(
    table: Any,
    protocol_names: Sequence[str],
    out_dir: Path,
    settings: ReportSettings,
    command: Sequence[str] = (),
    *,
    inputs: dict[str, Any] | None = None,
    feature_prefix: str | None = None,
) -> Report:
    """The report for labelled frames (a ``FeatureTable``): LOSO, person-specific, …"""
    if len(set(table.labels.tolist())) < 2 or not table.face_found.any():
        raise UsageError("a report needs frames with a face of at least 2 labels")
    data, names = select_features(table_data(table), table.feature_names, feature_prefix)
    protocols = table_protocols(
        table.subjects, table.clips, table.times, protocol_names, settings.seed
    )
    n_subjects = len(set(table.subjects.tolist()))
    title = f"Labelled frames of {n_subjects} subjects, {len(names)} face features"
    return build_report(
        data, names, protocols, out_dir, settings, command=command, inputs=inputs, title=title
    )


def select_features(
    data: LabelledFeatures, names: Sequence[str], prefix: str | None
) -> tuple[LabelledFeatures, tuple[str, ...]]:
    """Only the feature columns whose name starts with ``prefix`` (all of them for None)."""
    keep = [i for i, name in enumerate(names) if prefix is None or name.startswith(prefix)]
    if not keep:
        raise UsageError(f"no feature is named {prefix}*")
    return replace(data, values=data.values[:, keep]), tuple(names[i] for i in keep)


def run_fer_report(
    prepared: Any,
    protocol_names: Sequence[str],
    out_dir: Path,
    settings: ReportSettings,
    command: Sequence[str] = (),
    *,
    feature_prefix: str | None = None,
) -> Report:
    """The FER2013 report from ``workflows.Prepared``; ``feature_prefix`` picks the columns."""
    names = prepared.features.feature_names
    data, names = select_features(prepared.labelled(), names, feature_prefix)
    inputs = {
        "dataset": prepared.dataset.summary(),
        "feature_extraction": prepared.features.extraction_summary(),
        "feature_columns": list(names),
    }
    protocols = fer_protocols(data, protocol_names, settings.seed)
    title = f"FER2013, {len(names)} face features: the paper's protocols"
    return build_report(
        data,
        names,
        protocols,
        out_dir,
        settings,
        command=command,
        inputs=inputs,
        title=title,
    )
