"""The paper's future-work experiment: FER2013 → BAUM-1 transfer, with pruned BAUM-1 frames.

1. Both sources are put on shared terms: the feature columns both have, and the classes both
   have after an alias map (FER's ``happy`` is BAUM-1's ``happiness``; kept as data,
   ``DEFAULT_ALIASES``). Target frames of other classes are left out and counted.
2. A model fitted on FER2013 alone (the shared classes) predicts every target frame: the
   zero-shot score, and each frame's *confidence*, the FER model's probability of the frame's
   clip label.
3. Pruning keeps a target frame with a face when that confidence is at least ``threshold`` and
   every expert rule for its label holds (rules are data: ``FeatureRule``, a TOML/JSON file).
4. Under each protocol (LOSO, person-specific) and on the very same test rows, four conditions:
   ``baum_only`` (the paper's baseline), ``fer_zero_shot``, ``fer_plus_baum`` (FER + all target
   training frames) and ``fer_plus_pruned_baum`` (FER + the kept target training frames). Only a
   fold's training rows are ever pruned; test rows are scored whole, as for the baseline.

``run_transfer`` returns everything and writes ``metrics.json``, ``transfer.md`` and
``manifest.json`` into the output folder.
"""

from __future__ import annotations

import json
import logging
import sys
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from joblib import delayed
from sklearn.dummy import DummyClassifier
from tqdm import tqdm

from trainer.datasets.common import normalise_label
from trainer.datasets.table import FeatureTable
from trainer.errors import DatasetError, UsageError
from trainer.evaluate import (
    LabelledFeatures,
    ParallelWithBar,
    ProtocolRun,
    protocol_splits,
    split_scores,
)
from trainer.metrics import format_mean_std, majority_class
from trainer.protocols import Protocol
from trainer.report import SMILE, bootstrap_units, table_protocols, versions
from trainer.significance import (
    DEFAULT_BOOTSTRAP,
    compare_runs,
    compare_to_majority,
    format_interval,
)
from trainer.train import build_model

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FoldOutput = tuple[dict[str, Any], IntArray, int]  # one fit's scores, predictions, majority
BASELINE = "baum_only"
ZERO_SHOT = "fer_zero_shot"
COMBINED = "fer_plus_baum"
PRUNED = "fer_plus_pruned_baum"
CONDITIONS = (BASELINE, ZERO_SHOT, COMBINED, PRUNED)
DEFAULT_PROTOCOLS = ("loso", "person_specific")
DEFAULT_THRESHOLD = 0.5
# FER2013 names → the names BAUM-1 uses; applied to both sides (and to rule labels).
DEFAULT_ALIASES: dict[str, str] = {
    "angry": "anger",
    "happy": "happiness",
    "sad": "sadness",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
}
# The expert rule of the paper's Figure 2: a happy frame smiles.
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"label": "happiness", "features": list(SMILE), "min": 0.3},
)


# --- expert rules as data -----------------------------------------------------------------


@dataclass(frozen=True)
class FeatureRule:
    """Frames labelled ``label`` need the mean of ``features`` within [``min``, ``max``]."""

    label: str
    features: tuple[str, ...]
    min: float | None = None
    max: float | None = None

    def holds(self, values: npt.NDArray[Any], names: Sequence[str]) -> BoolArray:
        """Per row: does the rule hold (NaN features never do)."""
        missing = [name for name in self.features if name not in names]
        if missing:
            raise UsageError(f"rule for {self.label!r} uses unknown feature {missing[0]!r}")
        columns = [list(names).index(name) for name in self.features]
        mean = values[:, columns].astype(np.float64).mean(axis=1)
        ok: BoolArray = np.isfinite(mean)
        if self.min is not None:
            ok &= mean >= self.min
        if self.max is not None:
            ok &= mean <= self.max
        return ok

    def describe(self) -> str:
        names = ", ".join(name.removeprefix("blendshape.") for name in self.features)
        bounds = [f">= {self.min}" if self.min is not None else ""]
        bounds.append(f"<= {self.max}" if self.max is not None else "")
        return f"{self.label}: mean({names}) {' and '.join(b for b in bounds if b)}"


def rules_from_data(
    items: Sequence[Mapping[str, Any]], source: str = "rules"
) -> tuple[FeatureRule, ...]:
    """Validate ``[{label, features, min?, max?}, …]`` into rules."""
    rules = []
    for number, item in enumerate(items, start=1):
        where = f"{source}, rule {number}"
        unknown = sorted(set(item) - {"label", "features", "min", "max"})
        if unknown:
            raise UsageError(f"{where}: unknown keys {unknown}; expected label, features, min, max")
        features = item.get("features")
        if not item.get("label") or not isinstance(features, list) or not features:
            raise UsageError(f"{where}: needs a label and a non-empty list of features")
        if item.get("min") is None and item.get("max") is None:
            raise UsageError(f"{where}: needs a min or a max")
        rules.append(
            FeatureRule(
                label=normalise_label(item["label"]),
                features=tuple(str(name) for name in features),
                min=_number(item.get("min"), where),
                max=_number(item.get("max"), where),
            )
        )
    return tuple(rules)


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{where}: min and max must be numbers, not {value!r}")
    return float(value)


def load_rules(spec: str | Path | None) -> tuple[FeatureRule, ...]:
    """``None``/``default``: the smile rule; ``none``: no rules; else a .toml/.json file."""
    if spec is None or str(spec) == "default":
        return rules_from_data(DEFAULT_RULES, "default rules")
    if str(spec) == "none":
        return ()
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UsageError(f"rules file {path} does not exist (or give 'default' or 'none')")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"rules file {path} cannot be parsed: {exc}") from None
    items = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UsageError(f"rules file {path} needs a list 'rules' ([[rules]] in TOML)")
    return rules_from_data(items, str(path))


# --- both sources on shared classes and columns -------------------------------------------


@dataclass(frozen=True)
class TransferSettings:
    model: str = "hist_gradient_boosting"
    threshold: float = DEFAULT_THRESHOLD
    rules: tuple[FeatureRule, ...] = field(default_factory=lambda: load_rules(None))
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    conditions: tuple[str, ...] = CONDITIONS
    target_weight: float = 1.0  # per-row sample weight of target frames (FER rows weigh 1)
    seed: int = 0
    n_boot: int = DEFAULT_BOOTSTRAP
    aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    model_params: dict[str, Any] = field(default_factory=dict)
    progress: bool = True


@dataclass(frozen=True)
class Domains:
    """FER rows and target frames of the shared classes, on the shared feature columns."""

    fer: LabelledFeatures
    target: LabelledFeatures  # ``subjects`` set; labels index into ``classes``
    clips: npt.NDArray[np.str_]
    times: npt.NDArray[np.float64]
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    left_out: dict[str, dict[str, int]]  # labels of either source outside the shared classes


def canonical(labels: Sequence[str], aliases: Mapping[str, str]) -> list[str]:
    keys = {normalise_label(k): normalise_label(v) for k, v in aliases.items()}
    return [keys.get(normalise_label(label), normalise_label(label)) for label in labels]


def align(
    fer: LabelledFeatures,
    fer_names: Sequence[str],
    table: FeatureTable,
    aliases: Mapping[str, str] = DEFAULT_ALIASES,
) -> Domains:
    """Restrict both sources to their shared classes and feature columns (in FER's order)."""
    shared = [name for name in fer_names if name in table.feature_names]
    if not shared:
        raise DatasetError("FER2013 features and the target table share no feature column")
    fer_labels = np.array(canonical([fer.class_names[k] for k in fer.labels], aliases))
    target_labels = np.array(canonical(table.labels.tolist(), aliases))
    classes = tuple(sorted(set(fer_labels.tolist()) & set(target_labels.tolist())))
    if len(classes) < 2:
        raise DatasetError(
            f"FER2013 and the target share {len(classes)} class(es) {list(classes)}; "
            "a transfer needs 2 (check the merge map and the label aliases)"
        )
    fer_rows = np.isin(fer_labels, classes)
    rows = np.isin(target_labels, classes)
    lookup = {name: k for k, name in enumerate(classes)}
    fer_cols = [list(fer_names).index(name) for name in shared]
    table_cols = [list(table.feature_names).index(name) for name in shared]
    fer_part = LabelledFeatures(
        values=fer.values[fer_rows][:, fer_cols],
        face_found=fer.face_found[fer_rows],
        labels=np.array([lookup[x] for x in fer_labels[fer_rows]], dtype=np.int64),
        usage=fer.usage[fer_rows],
        class_names=classes,
    )
    target = LabelledFeatures(
        values=table.values[rows][:, table_cols],
        face_found=table.face_found[rows],
        labels=np.array([lookup[x] for x in target_labels[rows]], dtype=np.int64),
        usage=np.full(int(rows.sum()), "", dtype=np.str_),
        class_names=classes,
        subjects=table.subjects[rows],
    )
    left_out = {
        "fer": dict(Counter(fer_labels[~fer_rows].tolist())),
        "target": dict(Counter(target_labels[~rows].tolist())),
    }
    return Domains(
        fer_part, target, table.clips[rows], table.times[rows], tuple(shared), classes, left_out
    )


# --- the FER model, its confidence, and pruning -----------------------------------------------


def fit_rows(
    model_name: str,
    x: npt.NDArray[Any],
    y: IntArray,
    seed: int,
    *,
    params: Mapping[str, Any] | None = None,
    weights: npt.NDArray[np.float64] | None = None,
) -> Any:
    """Fit on these rows; a single class gives a constant model (DummyClassifier)."""
    if len(y) == 0:
        raise DatasetError("no training row with a face: nothing to fit")
    if len(np.unique(y)) < 2:
        return DummyClassifier(strategy="most_frequent").fit(x, y)
    model = build_model(model_name, seed, **dict(params or {}))
    fit_params = {} if weights is None else {"model__sample_weight": weights}
    return model.fit(x, y, **fit_params)


def fit_fer(domains: Domains, settings: TransferSettings) -> Any:
    fer = domains.fer
    found = fer.face_found
    logger.info("fitting %s on %d FER2013 faces", settings.model, int(found.sum()))
    x, y = fer.values[found], fer.labels[found]
    return fit_rows(settings.model, x, y, settings.seed, params=settings.model_params)


def label_confidence(
    model: Any, values: npt.NDArray[Any], labels: IntArray, face_found: BoolArray
) -> npt.NDArray[np.float64]:
    """The model's probability of each row's own label (NaN for rows without a face)."""
    confidence = np.full(len(labels), np.nan)
    if not face_found.any():
        return confidence
    proba = model.predict_proba(values[face_found])
    column = {int(c): j for j, c in enumerate(model.classes_)}
    mine = [column.get(int(label), -1) for label in labels[face_found]]
    picked = np.array([p[j] if j >= 0 else 0.0 for p, j in zip(proba, mine, strict=True)])
    confidence[face_found] = picked
    return confidence


@dataclass(frozen=True)
class Pruning:
    """Which target frames the FER model and the rules keep (only frames with a face)."""

    threshold: float
    confidence: npt.NDArray[np.float64]  # NaN where no face
    confident: BoolArray
    rules_hold: BoolArray
    kept: BoolArray

    def summary(self, data: LabelledFeatures, rules: Sequence[FeatureRule]) -> dict[str, Any]:
        found = data.face_found
        per_class = {}
        for k, name in enumerate(data.class_names):
            mine = found & (data.labels == k)
            per_class[name] = _counts(mine, self)
        return {
            "threshold": self.threshold,
            "rules": [r.describe() for r in rules],
            **_counts(found, self),
            "per_class": per_class,
        }


def _counts(rows: BoolArray, pruning: Pruning) -> dict[str, int]:
    return {
        "frames_with_face": int(rows.sum()),
        "kept": int((rows & pruning.kept).sum()),
        "pruned": int((rows & ~pruning.kept).sum()),
        "below_threshold": int((rows & ~pruning.confident).sum()),
        "failing_rules": int((rows & ~pruning.rules_hold).sum()),
    }


def prune(
    domains: Domains,
    fer_model: Any,
    threshold: float,
    rules: Sequence[FeatureRule],
    aliases: Mapping[str, str] = DEFAULT_ALIASES,
) -> Pruning:
    """Keep a frame with a face when the FER model's confidence in its label ≥ ``threshold``
    and every rule for its label holds."""
    target = domains.target
    confidence = label_confidence(fer_model, target.values, target.labels, target.face_found)
    confident = target.face_found & (np.nan_to_num(confidence, nan=-1.0) >= threshold)
    rules_hold = np.ones(len(target.labels), dtype=bool)
    names = canonical([r.label for r in rules], aliases)
    for rule, label in zip(rules, names, strict=True):
        if label not in target.class_names:
            continue
        mine = target.labels == target.class_names.index(label)
        rules_hold &= ~mine | rule.holds(target.values, domains.feature_names)
    kept = target.face_found & confident & rules_hold
    return Pruning(threshold, confidence, confident, rules_hold, kept)


# --- folds: every condition on the same test rows ---------------------------------------------


@dataclass
class FoldPlan:
    """What one condition trains on in one fold (target row indices into ``domains.target``)."""

    condition: str
    target_rows: IntArray
    uses_fer: bool


def plan(condition: str, train: IntArray, target: LabelledFeatures, kept: BoolArray) -> FoldPlan:
    """The training rows of ``condition`` in a fold whose target training rows are ``train``."""
    with_face = train[target.face_found[train]]
    if condition == BASELINE:
        return FoldPlan(condition, with_face, uses_fer=False)
    if condition == ZERO_SHOT:
        return FoldPlan(condition, np.zeros(0, dtype=np.int64), uses_fer=True)
    if condition == COMBINED:
        return FoldPlan(condition, with_face, uses_fer=True)
    if condition == PRUNED:
        return FoldPlan(condition, with_face[kept[with_face]], uses_fer=True)
    raise UsageError(f"unknown condition {condition!r}; choose from {', '.join(CONDITIONS)}")


@dataclass
class Context:
    domains: Domains
    settings: TransferSettings
    fer_model: Any
    pruning: Pruning
    zero_shot: IntArray  # the FER model's prediction for every target row with a face


def fit_plan(context: Context, fold: FoldPlan) -> Any:
    domains, settings = context.domains, context.settings
    if fold.condition == ZERO_SHOT:
        return context.fer_model
    target = domains.target
    x, y = target.values[fold.target_rows], target.labels[fold.target_rows]
    if not fold.uses_fer:
        return fit_rows(settings.model, x, y, settings.seed, params=settings.model_params)
    fer = domains.fer
    x = np.concatenate([fer.values[fer.face_found], x])
    weights = np.ones(len(x))
    weights[len(x) - len(y) :] = settings.target_weight
    y = np.concatenate([fer.labels[fer.face_found], y])
    use = None if settings.target_weight == 1.0 else weights
    return fit_rows(settings.model, x, y, settings.seed, params=settings.model_params, weights=use)


def score_plan(context: Context, fold: FoldPlan, train: IntArray, test: IntArray) -> FoldOutput:
    """Scores of one condition in one fold, its predictions for every test row, the majority."""
    target = context.domains.target
    majority = majority_class(target.labels[train])
    predicted = np.full(len(test), majority, dtype=np.int64)
    found = target.face_found[test]
    if fold.condition == ZERO_SHOT:
        predicted[found] = context.zero_shot[test][found]
    elif found.any():
        predicted[found] = fit_plan(context, fold).predict(target.values[test][found])
    scores = split_scores(target, train, test, predicted, majority)
    n_fer = int(context.domains.fer.face_found.sum()) if fold.uses_fer else 0
    subjects = np.asarray(target.subjects)[fold.target_rows]
    scores.update(
        condition=fold.condition,
        n_train_fer=n_fer,
        n_train_target=len(fold.target_rows),
        n_target_pruned=int(target.face_found[train].sum()) - len(fold.target_rows)
        if fold.condition == PRUNED
        else 0,
        target_train_subjects=sorted(set(subjects.tolist())),
    )
    return scores, predicted, majority


@dataclass
class ProtocolResult:
    protocol: str
    runs: dict[str, ProtocolRun]  # condition -> run over the same folds
    plans: dict[str, list[FoldPlan]]  # condition -> what each fold trained on
    tests: dict[str, Any]


def run_conditions(context: Context, name: str, protocol: Protocol) -> ProtocolResult:
    """Every condition on every split of ``protocol``; the fits go through ``score_plans``."""
    target, settings = context.domains.target, context.settings
    splits = protocol_splits(protocol, target)
    tasks = [
        (plan(condition, train, target, context.pruning.kept), train, test)
        for train, test in splits
        for condition in settings.conditions
    ]
    outputs = score_plans(context, tasks, f"transfer {name}")
    plans: dict[str, list[FoldPlan]] = {c: [] for c in settings.conditions}
    folds: dict[str, list[FoldOutput]] = {c: [] for c in settings.conditions}
    for (fold, _, _), output in zip(tasks, outputs, strict=True):
        plans[fold.condition].append(fold)
        folds[fold.condition].append(output)
    fold_names = protocol.fold_names()
    runs = {
        c: _run(name, c, settings.seed, fold_names, splits=splits, outputs=out)
        for c, out in folds.items()
    }
    return ProtocolResult(name, runs, plans, {})


def score_plans(
    context: Context, tasks: Sequence[tuple[FoldPlan, IntArray, IntArray]], desc: str
) -> list[FoldOutput]:
    """``score_plan`` of each (plan, train, test) through ``joblib.Parallel``, in task order.

    No backend is named: the caller's ``trainer.evaluate.parallel_backend`` (or joblib's
    ``parallel_config``) decides where and how many at once; without one they run in turn. Every
    fit uses the settings' seed, so the results do not depend on the backend or the job count.
    """
    light = replace(context, fer_model=None)  # jobs use ``zero_shot``, never the FER model itself
    jobs = (delayed(score_plan)(light, fold, train, test) for fold, train, test in tasks)
    progress = context.settings.progress
    with tqdm(total=len(tasks), desc=desc, unit="fit", disable=not progress) as bar:
        return list(ParallelWithBar(bar)(jobs))


def _run(
    protocol: str,
    condition: str,
    seed: int,
    fold_names: list[str],
    *,
    splits: list[tuple[IntArray, IntArray]],
    outputs: list[FoldOutput],
) -> ProtocolRun:
    sizes = [len(test) for _, test in splits]
    return ProtocolRun(
        protocol=protocol,
        model=condition,
        seed=seed,
        fold_names=fold_names,
        folds=[scores for scores, _, _ in outputs],
        test_rows=np.concatenate([test for _, test in splits]).astype(np.int64),
        fold_index=np.repeat(np.arange(len(splits)), sizes).astype(np.int64),
        predicted=np.concatenate([p for _, p, _ in outputs]).astype(np.int64),
        baseline=np.repeat([m for _, _, m in outputs], sizes).astype(np.int64),
    )


def significance(
    result: ProtocolResult, protocol: Protocol, data: LabelledFeatures, settings: TransferSettings
) -> dict[str, Any]:
    """Each condition against the majority class, and against ``baum_only`` when it ran."""
    boot: dict[str, Any] = {"n_boot": settings.n_boot, "seed": settings.seed}
    boot["groups"] = bootstrap_units(protocol)
    runs = result.runs
    tests: dict[str, Any] = {
        "vs_majority": {c: compare_to_majority(run, data, **boot) for c, run in runs.items()}
    }
    if BASELINE in runs:
        tests["vs_baum_only"] = {
            c: compare_runs(run, runs[BASELINE], data, **boot)
            for c, run in runs.items()
            if c != BASELINE
        }
    return tests


# --- the whole experiment -----------------------------------------------------------------


@dataclass
class TransferResult:
    domains: Domains
    pruning: Pruning
    protocols: dict[str, ProtocolResult]
    results: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def check_settings(settings: TransferSettings) -> None:
    if not 0.0 <= settings.threshold <= 1.0:
        raise UsageError(f"the confidence threshold {settings.threshold} must lie in 0..1")
    unknown = [c for c in settings.conditions if c not in CONDITIONS]
    if unknown or not settings.conditions:
        raise UsageError(f"conditions must be some of {', '.join(CONDITIONS)}")
    if settings.target_weight <= 0:
        raise UsageError("the target weight must be above 0")
    if not settings.protocols:
        raise UsageError("a transfer needs at least one protocol")


def run_transfer(
    fer: LabelledFeatures,
    fer_names: Sequence[str],
    table: FeatureTable,
    settings: TransferSettings,
    out_dir: Path | None = None,
    *,
    command: Sequence[str] = (),
    inputs: Mapping[str, Any] | None = None,
) -> TransferResult:
    """Zero-shot, pruning and retraining under every protocol; files when ``out_dir`` is given."""
    check_settings(settings)
    domains = align(fer, fer_names, table, settings.aliases)
    protocols = table_protocols(
        domains.target.subjects, domains.clips, domains.times, settings.protocols, settings.seed
    )
    fer_model = fit_fer(domains, settings)
    pruning = prune(domains, fer_model, settings.threshold, settings.rules, settings.aliases)
    context = Context(domains, settings, fer_model, pruning, _zero_shot(fer_model, domains))
    done = {}
    for name, protocol in protocols.items():
        result = run_conditions(context, name, protocol)
        result.tests = significance(result, protocol, domains.target, settings)
        done[name] = result
    results = results_dict(domains, pruning, done, settings)
    outcome = TransferResult(domains, pruning, done, results)
    if out_dir is not None:
        outcome.files = write_outputs(outcome, out_dir, settings, command, inputs or {})
    return outcome


def _zero_shot(model: Any, domains: Domains) -> IntArray:
    target = domains.target
    predicted = np.full(len(target.labels), -1, dtype=np.int64)
    if target.face_found.any():
        predicted[target.face_found] = model.predict(target.values[target.face_found])
    return predicted


def results_dict(
    domains: Domains,
    pruning: Pruning,
    done: Mapping[str, ProtocolResult],
    settings: TransferSettings,
) -> dict[str, Any]:
    target, fer = domains.target, domains.fer
    protocols = {
        name: {
            "conditions": {c: run.to_dict() for c, run in result.runs.items()},
            "significance": result.tests,
        }
        for name, result in done.items()
    }
    return {
        "classes": list(domains.classes),
        "feature_columns": len(domains.feature_names),
        "fer": {"rows": len(fer.labels), "rows_with_face": int(fer.face_found.sum())},
        "target": {
            "frames": len(target.labels),
            "frames_with_face": int(target.face_found.sum()),
            "subjects": sorted(set(np.asarray(target.subjects).tolist())),
        },
        "left_out_labels": domains.left_out,
        "zero_shot_agreement_with_label": _agreement(pruning),
        "pruning": pruning.summary(target, settings.rules),
        "model": settings.model,
        "seed": settings.seed,
        "protocols": protocols,
    }


def _agreement(pruning: Pruning) -> dict[str, float]:
    found = np.isfinite(pruning.confidence)
    values = pruning.confidence[found]
    if not len(values):
        return {}
    return {"mean_confidence": float(values.mean()), "median_confidence": float(np.median(values))}


# --- files --------------------------------------------------------------------------------


def write_outputs(
    outcome: TransferResult,
    out_dir: Path,
    settings: TransferSettings,
    command: Sequence[str],
    inputs: Mapping[str, Any],
) -> dict[str, Path]:
    from trainer.evaluate import write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = out_dir / "metrics.json"
    write_json(outcome.results, metrics)
    markdown = out_dir / "transfer.md"
    markdown.write_text("\n".join(markdown_lines(outcome.results)) + "\n", encoding="utf-8")
    manifest = out_dir / "manifest.json"
    write_json(manifest_dict(out_dir, settings, command, inputs), manifest)
    return {"metrics": metrics, "markdown": markdown, "manifest": manifest}


def manifest_dict(
    out_dir: Path, settings: TransferSettings, command: Sequence[str], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    from trainer.export import git_sha

    plain = asdict(settings)
    plain["rules"] = [asdict(rule) for rule in settings.rules]
    plain["aliases"] = dict(settings.aliases)
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": list(command or sys.argv),
        "experiment": "FER2013 -> target transfer with confidence and rule pruning",
        "settings": plain,
        "inputs": dict(inputs),
        "software": {**versions(), "emotion_edge_git_sha": git_sha(Path(__file__).parents[1])},
        "files": ["metrics.json", "transfer.md", "manifest.json"],
    }


def markdown_lines(results: Mapping[str, Any]) -> list[str]:
    """``transfer.md``: the pruning counts, then one table per protocol."""
    target, pruning = results["target"], results["pruning"]
    lines = [
        "# FER2013 → target transfer",
        "",
        f"Shared classes: {', '.join(results['classes'])}; {results['feature_columns']} feature "
        f"columns; model {results['model']}, seed {results['seed']}. FER2013: "
        f"{results['fer']['rows_with_face']:,} faces. Target: {target['frames']:,} frames "
        f"({target['frames_with_face']:,} with a face) of {len(target['subjects'])} subjects; "
        f"left out (no shared class): {_counts_text(results['left_out_labels']['target'])}.",
        "",
        *pruning_lines(pruning),
    ]
    for name, block in results["protocols"].items():
        lines += protocol_lines(name, block)
    lines += [
        "Scores on target test frames with a face, mean ± std over folds; every condition is "
        "scored on the same test frames. *Target frames* is the mean number of target frames a "
        "fold trains on. Δ vs baum_only: pooled accuracy difference with a bootstrap 95% CI "
        "(whole subjects under LOSO, whole clips under person-specific CV).",
    ]
    return lines


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def pruning_lines(pruning: Mapping[str, Any]) -> list[str]:
    rules = "; ".join(pruning["rules"]) or "none"
    lines = [
        "## Pruning",
        "",
        f"A frame is kept when the FER model's probability of its clip label is ≥ "
        f"{pruning['threshold']} and every rule holds (rules: {rules}). Kept "
        f"{pruning['kept']:,} of {pruning['frames_with_face']:,} frames with a face; pruned "
        f"{pruning['pruned']:,}.",
        "",
        "| class | frames with a face | kept | pruned | below threshold | failing rules |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in pruning["per_class"].items():
        lines.append(
            f"| {name} | {c['frames_with_face']} | {c['kept']} | {c['pruned']} "
            f"| {c['below_threshold']} | {c['failing_rules']} |"
        )
    return [*lines, ""]


def protocol_lines(name: str, block: Mapping[str, Any]) -> list[str]:
    lines = [
        f"## {name}",
        "",
        "| condition | accuracy | macro-F1 | balanced acc. | all-rows acc. | target frames "
        "| Δ acc. vs baum_only [95% CI] | p boot. | p McNemar |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    versus = block["significance"].get("vs_baum_only", {})
    for condition, run in block["conditions"].items():
        cells = [format_mean_std(run["face_found"][k]) for k in ("accuracy", "macro_f1")]
        cells.append(format_mean_std(run["face_found"]["balanced_accuracy"]))
        cells.append(format_mean_std(run["all_rows"]["accuracy"]))
        frames = np.mean([fold["n_train_target"] for fold in run["folds"]])
        tests = _versus(versus.get(condition))
        lines.append(f"| {condition} | {' | '.join(cells)} | {frames:.0f} | {tests} |")
    first = next(iter(block["conditions"].values()))
    majority = format_mean_std(first["majority_face_found"]["accuracy"])
    lines.append(f"| majority class | {majority} | | | | | | | |")
    return [*lines, ""]


def _versus(test: Mapping[str, Any] | None) -> str:
    if test is None:
        return " | | "
    boot = test["bootstrap"]
    delta = format_interval(boot)
    return f"{delta} | {_p(boot['p_value'])} | {_p(test['mcnemar']['p_value'])}"


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def summary_text(results: Mapping[str, Any]) -> str:
    """A few lines for the terminal: pruning counts and accuracy per protocol and condition."""
    pruning = results["pruning"]
    lines = [
        f"classes {', '.join(results['classes'])}; pruning kept {pruning['kept']} of "
        f"{pruning['frames_with_face']} target frames with a face ({pruning['pruned']} pruned: "
        f"{pruning['below_threshold']} below {pruning['threshold']}, "
        f"{pruning['failing_rules']} failing rules)"
    ]
    for name, block in results["protocols"].items():
        for condition, run in block["conditions"].items():
            acc = format_mean_std(run["face_found"]["accuracy"])
            f1 = format_mean_std(run["face_found"]["macro_f1"])
            lines.append(f"{name} {condition}: accuracy {acc}, macro-F1 {f1}")
    return "\n".join(lines)
