"""Frame sources behind one small interface, chosen by the validated ``rgb.type`` config key."""

from __future__ import annotations

from collections.abc import Callable

from device.config import (
    OpencvConfig,
    PicameraConfig,
    ReplayConfig,
    RgbConfig,
    SyntheticConfig,
)
from device.errors import ConfigError
from device.sources.base import RgbSource

__all__ = ["RGB_SOURCES", "RgbSource", "create_rgb_source"]


# Each factory imports its module only when called, so importing device.sources never pulls in
# cv2 or picamera2 (and the picamera module imports picamera2 only in open()).
def _picamera(config: RgbConfig) -> RgbSource:
    from device.sources.picamera import PicameraSource

    assert isinstance(config, PicameraConfig)
    return PicameraSource(config)


def _opencv(config: RgbConfig) -> RgbSource:
    from device.sources.opencv import OpencvSource

    assert isinstance(config, OpencvConfig)
    return OpencvSource(config)


def _replay(config: RgbConfig) -> RgbSource:
    from device.sources.replay import ReplaySource

    assert isinstance(config, ReplayConfig)
    return ReplaySource(config)


def _synthetic(config: RgbConfig) -> RgbSource:
    from device.sources.synthetic import SyntheticSource

    assert isinstance(config, SyntheticConfig)
    return SyntheticSource(config)


RGB_SOURCES: dict[str, Callable[[RgbConfig], RgbSource]] = {
    "picamera": _picamera,
    "opencv": _opencv,
    "replay": _replay,
    "synthetic": _synthetic,
}


def create_rgb_source(config: RgbConfig) -> RgbSource:
    """A new, unopened source for ``config``; the caller opens and closes it."""
    factory = RGB_SOURCES.get(config.type)
    if factory is None:
        raise ConfigError(f"rgb.type {config.type!r} is not one of {sorted(RGB_SOURCES)}")
    return factory(config)
