"""Models by name with hyper-parameters from a TOML file or a one-line spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from trainer.errors import UsageError
from trainer.model_config import ModelChoice, load_model_config, parse_spec
from trainer.train import MODEL_NAMES, build_model


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.toml"
    path.write_text(text)
    return path


def test_every_model_builds_a_pipeline_ending_in_model() -> None:
    for name in MODEL_NAMES:
        assert build_model(name).steps[-1][0] == "model"


def test_scaled_models_standardise_first() -> None:
    pipeline = build_model("mlp")
    assert isinstance(pipeline[0], StandardScaler) and isinstance(pipeline[-1], MLPClassifier)


def test_toml_config_sets_parameters(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[model]\nname = "mlp"\n[model.params]\nhidden_layer_sizes = [32, 16]\nalpha = 0.01\n',
    )
    choice = load_model_config(path)
    assert choice == ModelChoice("mlp", {"hidden_layer_sizes": (32, 16), "alpha": 0.01})
    model = build_model(choice.name, **choice.params)[-1]
    assert model.hidden_layer_sizes == (32, 16) and model.alpha == 0.01


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\nname = 'svm'\n", "unknown model 'svm'"),
        ("[model]\nname = 'mlp'\n[model.params]\nlayers = 3\n", "does not take these parameters"),
        ("[model]\nname = 'mlp'\ncolour = 1\n", "unknown keys"),
        ("[other]\n", "needs a \\[model\\] table"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_sentence(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_model_config(write(tmp_path, text))


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_model_config(tmp_path / "nope.toml")


def test_spec() -> None:
    assert parse_spec("hist_gradient_boosting:max_iter=20,learning_rate=0.2") == ModelChoice(
        "hist_gradient_boosting", {"max_iter": 20, "learning_rate": 0.2}
    )
    assert parse_spec("random_forest") == ModelChoice("random_forest", {})
    with pytest.raises(UsageError, match="not key=value"):
        parse_spec("random_forest:max_depth")
