"""The fused bundle's stacker: C is chosen by cross-validated log-loss on its own rows."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_score

from trainer.fused import STACKER_CS, fit_stacker, stack_inputs, stacker_model


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
