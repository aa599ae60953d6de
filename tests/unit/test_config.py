"""Config: fails fast with key paths; secrets stay secret; the example covers every key."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from device.config import (
    PASSWORD_ENV,
    ConfigError,
    DeviceConfig,
    ThermalConfig,
    load_config,
    parse_config,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "device.toml"
MINIMAL = {"device_id": "pi-01", "rgb": {"type": "synthetic"}}


def test_minimal_config_gets_documented_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.loop.rate_hz == 10.0
    assert config.mqtt.topic_prefix == "emotion-edge"
    assert config.features.running_mode == "image"


def test_every_error_is_reported_with_its_key_path() -> None:
    bad = {"device_id": "a b", "rgb": {"type": "opencv"}, "mqtt": {"port": 0, "colour": "red"}}
    with pytest.raises(ConfigError) as info:
        parse_config(bad)
    text = str(info.value)
    for path in ("device_id:", "rgb.opencv:", "mqtt.port:", "mqtt.colour: Extra inputs"):
        assert path in text


def test_unknown_source_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="rgb"):
        parse_config({"device_id": "x", "rgb": {"type": "webcam9000"}})


def test_password_is_secret_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {**MINIMAL, "mqtt": {"host": "h", "password": "in-file"}}
    config = parse_config(data)
    assert "in-file" not in repr(config)
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    config = parse_config(data)
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "from-env"


def test_systemd_credential_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "mqtt_password").write_text("from-credential\n")
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = parse_config({**MINIMAL, "mqtt": {"host": "h"}})
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "from-credential"


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "device.toml"
    path.write_text('device_id = "x"\n[rgb\n')
    with pytest.raises(ConfigError, match=r"device\.toml is not valid TOML"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_example_config_is_valid() -> None:
    assert load_config(EXAMPLE).device_id == "pi-01"


def _documented_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if annotation == ThermalConfig | None:
            annotation = ThermalConfig
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _documented_keys(annotation, f"{prefix}{name}.")
        elif name not in ("rgb", "source"):
            keys.add(prefix + name)
    return keys


def test_example_config_mentions_every_key() -> None:
    text = EXAMPLE.read_text()
    missing = [k for k in _documented_keys(DeviceConfig) if k.split(".")[-1] not in text]
    assert missing == []
    from device.config import (
        LeptonSourceConfig,
        OpencvConfig,
        PicameraConfig,
        PureThermalSourceConfig,
        ReplayConfig,
        SyntheticConfig,
        ThermalReplayConfig,
        ThermalSyntheticConfig,
    )

    sources = (PicameraConfig, OpencvConfig, ReplayConfig, SyntheticConfig)
    thermal = (LeptonSourceConfig, PureThermalSourceConfig, ThermalReplayConfig)
    for source in (*sources, *thermal, ThermalSyntheticConfig):
        assert all(f"{name} =" in text for name in source.model_fields), source.__name__
    assert tomllib.loads(text)["device_id"] == "pi-01"


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('device_id = "pi 1"\n[rgb]\ntype = "synthetic"\nfps_hz = -1\n')
    run = [sys.executable, "-m", "device.cli", "check-config"]
    ok = subprocess.run([*run, str(EXAMPLE)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    res = subprocess.run([*run, str(bad)], capture_output=True, text=True, check=False)
    assert res.returncode == 78
    assert "Traceback" not in res.stderr
    assert "device_id:" in res.stderr
    assert "rgb.synthetic.fps_hz:" in res.stderr


def test_thermal_section_is_optional_and_checked() -> None:
    assert parse_config(MINIMAL).thermal is None
    lepton = {"source": {"type": "lepton", "spi_speed_hz": 18_000_000, "i2c_bus": 1}}
    config = parse_config({**MINIMAL, "thermal": lepton})
    assert config.thermal is not None and config.thermal.detector == "dlib_hog"
    too_fast = {"source": {"type": "lepton", "spi_speed_hz": 30_000_000}}
    with pytest.raises(ConfigError, match=r"thermal\.source\.lepton\.spi_speed_hz"):
        parse_config({**MINIMAL, "thermal": too_fast})
