"""One typed configuration, read from TOML, validated by pydantic, failing fast and clearly."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from device.errors import ConfigError

PASSWORD_ENV = "EMOTION_EDGE_MQTT_PASSWORD"
PASSWORD_CREDENTIAL = "mqtt_password"  # systemd LoadCredential= name
DEFAULT_CONFIG_PATH = Path("/etc/emotion-edge/device.toml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PicameraConfig(Section):
    """Raspberry Pi camera through picamera2 (libcamera)."""

    type: Literal["picamera"]
    width_px: int = Field(640, gt=0, description="capture width")
    height_px: int = Field(480, gt=0, description="capture height")
    fps_hz: float = Field(15.0, gt=0, le=120, description="sensor frame rate")


class OpencvConfig(Section):
    """A webcam (V4L2 index) or a video file, read through OpenCV."""

    type: Literal["opencv"]
    camera_index: int | None = Field(None, ge=0, description="/dev/videoN index")
    video_path: Path | None = Field(None, description="a video file instead of a camera")
    width_px: int | None = Field(None, gt=0, description="requested width (camera only)")
    height_px: int | None = Field(None, gt=0, description="requested height (camera only)")

    @model_validator(mode="after")
    def _one_input(self) -> OpencvConfig:
        if (self.camera_index is None) == (self.video_path is None):
            raise ValueError("set exactly one of camera_index or video_path")
        return self


class ReplayConfig(Section):
    """A recorded session (.npz from `emotion-device record`) or a video, at its own timing."""

    type: Literal["replay"]
    path: Path = Field(description="recording (.npz) or video file")
    loop: bool = Field(False, description="start again at the end instead of stopping")
    speed: float = Field(1.0, gt=0, le=100, description="1.0 = real time")


class SyntheticConfig(Section):
    """Generated frames, for tests and for trying the device without a camera."""

    type: Literal["synthetic"]
    width_px: int = Field(320, gt=0)
    height_px: int = Field(240, gt=0)
    fps_hz: float = Field(30.0, gt=0, le=1000)
    frame_count: int | None = Field(None, gt=0, description="stop after this many frames")
    seed: int = 0


RgbConfig = Annotated[
    PicameraConfig | OpencvConfig | ReplayConfig | SyntheticConfig, Field(discriminator="type")
]


class SummariesConfig(Section):
    enabled: bool = Field(True, description="well-being summaries on <prefix>/<id>/summary")
    period_s: float = Field(900.0, ge=1, description="one summary per source every period")
    max_spooled: int = Field(10_000, ge=1, description="undelivered summaries kept on disk")


class LoopConfig(Section):
    rate_hz: float = Field(10.0, gt=0, le=60, description="main loop rate (paper: every 100 ms)")


class FeaturesConfig(Section):
    running_mode: Literal["image", "video"] = Field(
        "image",
        description="MediaPipe running mode; image = what the trainer sees (docs/measurements.md)",
    )
    landmarker_path: Path | None = Field(None, description="explicit face_landmarker.task")
    min_face_confidence: float = Field(0.5, ge=0, le=1)


class ModelConfig(Section):
    path: Path | None = Field(
        None, description=".onnx with its .json manifest, or a bundle .json; none = built-in"
    )
    builtin: Literal["fused", "blendshapes"] = Field(
        "fused", description="built-in model when no path: CNN + blendshapes, or blendshapes only"
    )


class SmoothingConfig(Section):
    window_s: float = Field(2.0, gt=0, le=60, description="probabilities averaged over this")
    min_confidence: float = Field(0.35, ge=0, le=1, description="below this: keep old label")
    switch_margin: float = Field(0.1, ge=0, le=1, description="hysteresis to change label")
    no_face_label: str = Field("no_face", min_length=1)
    heartbeat_s: float = Field(5.0, gt=0, description="re-publish an unchanged label this often")


class MqttConfig(Section):
    host: str | None = Field(None, description="broker host; none = no broker (demo: embedded)")
    port: int = Field(1883, gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = Field(None, description=f"or env {PASSWORD_ENV}")
    client_id: str | None = Field(None, description="default: emotion-edge-<device_id>")
    topic_prefix: str = Field("emotion-edge", pattern=r"^[A-Za-z0-9_\-/]+[A-Za-z0-9_\-]$")
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    tls_ca_file: Path | None = Field(None, description="the CA that signed the broker's cert")
    tls_cert_file: Path | None = Field(None, description="this unit's client certificate")
    tls_key_file: Path | None = Field(None, description="... and its private key")
    qos: Literal[0, 1] = 0

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    @model_validator(mode="after")
    def _client_certificate(self) -> MqttConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        if self.tls_cert_file is not None and self.tls_ca_file is None:
            raise ValueError("a client certificate needs TLS: set tls_ca_file too")
        return self


class LeptonSourceConfig(Section):
    """A FLIR Lepton on the Pi's SPI bus (VoSPI), with its I²C command interface."""

    type: Literal["lepton"]
    spi_device: Path = Field(Path("/dev/spidev0.0"), description="spidev node (CS0)")
    spi_speed_hz: int = Field(18_000_000, ge=1_000_000, le=20_000_000, description="SPI clock")
    i2c_bus: int | None = Field(1, ge=0, description="/dev/i2c-N for CCI; none = no CCI")
    model: Literal[2, 3, "auto"] = Field(
        "auto", description="2 = Lepton 2.x 80x60, 3 = Lepton 3.x 160x120, auto = from packets"
    )
    telemetry: Literal["off", "header", "footer", "auto"] = Field(
        "auto",
        description="telemetry rows: off/header/footer (set over CCI when i2c_bus is set); "
        "auto = as the camera sends it (location asked over CCI, else footer)",
    )


class PureThermalSourceConfig(Section):
    """A Lepton on a PureThermal USB board (UVC Y16)."""

    type: Literal["purethermal"]
    camera_index: int = Field(ge=0, description="/dev/videoN index of the board")
    radiometric: bool = Field(True, description="false for a Lepton 2.0/3.0 (raw counts)")


class ThermalReplayConfig(Section):
    """A thermal recording (docs/thermal-recording.md) at its own timing."""

    type: Literal["replay"]
    path: Path
    loop: bool = False
    speed: float = Field(1.0, gt=0, le=100)


class ThermalSyntheticConfig(Section):
    """Synthetic radiometric faces with known ROI temperatures (tests, trying the device)."""

    type: Literal["synthetic"]
    width_px: Literal[160, 80] = 160
    fps_hz: float = Field(8.7, gt=0, le=100)
    frame_count: int | None = Field(None, gt=0)
    seed: int = 0


ThermalSourceConfig = Annotated[
    LeptonSourceConfig | PureThermalSourceConfig | ThermalReplayConfig | ThermalSyntheticConfig,
    Field(discriminator="type"),
]


class ThermalConfig(Section):
    """The thermal channel; without ``model_path`` the device publishes RGB labels only."""

    source: ThermalSourceConfig
    detector: Literal["dlib_hog", "skin_box"] = Field(
        "dlib_hog", description="IS2AI HOG detector, or the warm-skin box (radiometric only)"
    )
    detector_path: Path | None = Field(None, description="explicit .svm; none = asset")
    landmarks_path: Path | None = Field(None, description="54-point dlib predictor (.dat)")
    model_path: Path | None = Field(None, description="thermal .onnx + manifest; none = no label")
    baseline_mode: Literal["rolling", "calibration"] = "rolling"
    baseline_window_s: float = Field(300.0, gt=0, description="rolling baseline length")
    calibration_s: float = Field(60.0, gt=0, description="calm period (calibration mode)")
    registration: bool = Field(
        True, description="without landmarks_path: map RGB landmarks into the thermal image"
    )
    registration_path: Path | None = Field(
        None, description="transform JSON; none = $STATE_DIRECTORY or /var/lib/emotion-edge"
    )
    registration_model: Literal["similarity", "affine"] = "similarity"
    registration_drift: float = Field(
        0.12, gt=0, le=1, description="residual (fraction of face width) that means drift"
    )


class AssetsConfig(Section):
    mirror_dir: Path | None = Field(None, description="folder of pinned files (air-gapped)")
    cache_dir: Path | None = Field(None, description="downloads go here; none = user cache")
    allow_download: bool = True


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DeviceConfig(Section):
    device_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="unique per unit")
    state_dir: Path | None = Field(
        None,
        description="where the pause switch and the summary spool live; none = "
        "$STATE_DIRECTORY (systemd), /var/lib/emotion-edge if it exists, ~/.local/state/...",
    )
    rgb: RgbConfig
    thermal: ThermalConfig | None = None
    loop: LoopConfig = LoopConfig()
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    smoothing: SmoothingConfig = SmoothingConfig()
    mqtt: MqttConfig = MqttConfig()
    summaries: SummariesConfig = SummariesConfig()
    assets: AssetsConfig = AssetsConfig()
    logging: LoggingConfig = LoggingConfig()


def format_errors(exc: ValidationError) -> list[str]:
    """One line per problem: ``key.path: message``."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"]) or "(top level)"
        lines.append(f"{path}: {err['msg']}")
    return lines


def password_override() -> SecretStr | None:
    """The MQTT password from the environment or a systemd credential, if either is set."""
    value = os.environ.get(PASSWORD_ENV)
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if value is None and cred_dir:
        cred = Path(cred_dir) / PASSWORD_CREDENTIAL
        if cred.is_file():
            value = cred.read_text().strip()
    return SecretStr(value) if value else None


def parse_config(data: dict[str, Any], origin: str = "config") -> DeviceConfig:
    try:
        config = DeviceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin} is invalid:\n  " + "\n  ".join(format_errors(exc))) from exc
    password = password_override()
    if password is not None:
        mqtt = config.mqtt.model_copy(update={"password": password})
        config = config.model_copy(update={"mqtt": mqtt})
    return config


def load_config(path: Path) -> DeviceConfig:
    """Read and validate a TOML file; every problem becomes a ConfigError."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_config(data, origin=str(path))
