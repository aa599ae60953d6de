"""Which model to train and its hyper-parameters, from a TOML file or a one-line spec.

A model config file::

    [model]
    name = "hist_gradient_boosting"      # one of trainer.train.MODEL_NAMES

    [model.params]                        # keyword arguments of the scikit-learn estimator
    max_iter = 150
    max_leaf_nodes = 31

A spec on the command line says the same in one line: ``hist_gradient_boosting:max_iter=150``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.errors import UsageError
from trainer.train import DEFAULT_SEED, MODEL_NAMES, build_model


@dataclass(frozen=True)
class ModelChoice:
    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def check(self) -> ModelChoice:
        """Build the estimator once so a bad name or parameter fails before a long run."""
        build_model(self.name, DEFAULT_SEED, **self.params)
        return self


def load_model_config(path: Path) -> ModelChoice:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"model config {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"model config {path} is not valid TOML: {exc}") from None
    model = data.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise UsageError(f"model config {path} needs a [model] table with name = one of {_names()}")
    unknown = set(model) - {"name", "params"}
    if unknown:
        raise UsageError(f"model config {path}: unknown keys {sorted(unknown)} in [model]")
    params = model.get("params", {})
    if not isinstance(params, dict):
        raise UsageError(f"model config {path}: [model.params] must be a table")
    return ModelChoice(model["name"], {k: _plain(v) for k, v in params.items()}).check()


def parse_spec(spec: str) -> ModelChoice:
    """``name:key=value,key=value`` → a checked ModelChoice (numbers become int or float)."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"model spec {spec!r}: {item!r} is not key=value")
        params[key] = _number(value)
    return ModelChoice(name, params).check()


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _plain(value: Any) -> Any:
    """TOML arrays become tuples (scikit-learn expects e.g. hidden_layer_sizes as a tuple)."""
    return tuple(value) if isinstance(value, list) else value


def _names() -> str:
    return ", ".join(MODEL_NAMES)
