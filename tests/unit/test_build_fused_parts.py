"""build-fused pieces: the stacker's C by cross-validated log-loss; the CNN work dir's claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score

from trainer.errors import UsageError
from trainer.fused import (
    RUN_FILE,
    STACKER_CS,
    claim_work_dir,
    fit_stacker,
    run_facts,
    stack_inputs,
    stacker_model,
)


def noisy_model(labels: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities of a model that knows the label, blurred by ``noise``."""
    logits = rng.normal(0.0, noise, (len(labels), 7))
    logits[np.arange(len(labels)), labels] += 1.0
    probs = np.exp(logits)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def test_stacker_takes_the_c_of_lowest_cv_log_loss() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(7, size=600, p=[0.14, 0.02, 0.14, 0.25, 0.17, 0.11, 0.17])
    x = stack_inputs(noisy_model(labels, 1.2, rng), noisy_model(labels, 0.8, rng))
    stacker, losses = fit_stacker(x, labels, seed=0)
    assert set(losses) == {str(c) for c in STACKER_CS}
    assert str(stacker.C) == min(losses, key=lambda c: losses[c])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    direct = cross_val_score(stacker_model(0.1), x, labels, cv=folds, scoring="neg_log_loss")
    assert losses["0.1"] == round(-float(direct.mean()), 4)
    assert 0.0 < min(losses.values()) < np.log(7)  # better than knowing nothing


def test_work_dir_resumes_only_its_own_run(tmp_path: Path) -> None:
    facts = {"epochs": 45, "crop": {"version": 3}, "data_sha256": "ab"}
    claim_work_dir(tmp_path, facts)
    claim_work_dir(tmp_path, facts)  # the same run again: fine
    with pytest.raises(UsageError, match="other crop, epochs; give another --work-dir"):
        claim_work_dir(tmp_path, {**facts, "epochs": 30, "crop": {"version": 2}})
    (tmp_path / RUN_FILE).write_text("{broken")
    with pytest.raises(UsageError, match="not readable run facts") as error:
        claim_work_dir(tmp_path, facts)
    assert "\n" not in str(error.value)


def test_settings_added_later_leave_the_facts_of_older_runs_alone(tmp_path: Path) -> None:
    from trainer.cnn import CnnConfig

    plain = run_facts(CnnConfig(self_distil=0.0), "ab")
    assert not {"ema", "ferplus_share", "self_distil"} & plain.keys()  # as older run.json files
    assert run_facts(CnnConfig(), "ab")["self_distil"] == 0.6  # the default since 2026-11-26
    assert run_facts(CnnConfig(ema=0.998), "ab")["ema"] == 0.998
    assert run_facts(CnnConfig(ferplus_share=0.5), "ab")["ferplus_share"] == 0.5
    assert run_facts(CnnConfig(self_distil=0.6), "ab")["self_distil"] == 0.6
    claim_work_dir(tmp_path, plain)
    with pytest.raises(UsageError, match="other ema"):
        claim_work_dir(tmp_path, run_facts(CnnConfig(ema=0.998), "ab"))


def test_stacker_folds_shrink_to_the_rarest_class_without_warnings() -> None:
    import warnings

    from trainer.fused import fit_stacker, stacker_folds

    rng = np.random.default_rng(0)
    y = np.array([0] * 40 + [1] * 30 + [2] * 3)
    assert stacker_folds(y).get_n_splits() == 3
    assert stacker_folds(np.repeat(np.arange(7), 50)).get_n_splits() == 5
    assert stacker_folds(np.array([0, 0, 0, 1])).get_n_splits() == 2
    x = (rng.normal(size=(len(y), 6)) + y[:, None]).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn warns when a class has fewer rows than folds
        stacker, losses = fit_stacker(x, y, seed=0)
    assert stacker.predict(x).shape == y.shape and len(losses) > 1
