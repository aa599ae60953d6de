"""The small exception hierarchy. Each error carries one sentence a person can act on."""

from __future__ import annotations

EX_CONFIG = 78  # sysexits.h: configuration error
EX_UNAVAILABLE = 69  # a service the device needs (broker, camera) is not there
EX_NOPERM = 77  # the broker refused our credentials
EX_PROTOCOL = 76  # sysexits.h: TLS failed: a certificate the broker or this unit does not accept


class EmotionEdgeError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(EmotionEdgeError):
    exit_code = EX_CONFIG


class AssetError(EmotionEdgeError):
    """A third-party file is missing, corrupt, or could not be downloaded."""

    exit_code = EX_CONFIG


class SourceUnavailable(EmotionEdgeError):
    """A camera, video file or recording cannot be opened or stopped delivering frames."""

    exit_code = EX_UNAVAILABLE


class ModelMismatch(EmotionEdgeError):
    """A model file is corrupt, or its manifest does not match this device's feature schema."""

    exit_code = EX_CONFIG


class BrokerAuthError(EmotionEdgeError):
    """The MQTT broker refused the credentials: fatal, retrying will not help."""

    exit_code = EX_NOPERM


class BrokerUnavailable(EmotionEdgeError):
    exit_code = EX_UNAVAILABLE


class BrokerTLSError(EmotionEdgeError):
    """TLS with the broker cannot work as configured (its certificate or ours); not retried."""

    exit_code = EX_PROTOCOL
