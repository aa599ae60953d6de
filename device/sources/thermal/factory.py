"""Thermal sources chosen by the validated ``thermal.source.type`` config key.

Each factory imports its module only when called, so a device without a thermal camera never
loads the Lepton driver, OpenCV's UVC path or the synthetic generator.
"""

from __future__ import annotations

from device.config import (
    LeptonSourceConfig,
    PureThermalSourceConfig,
    ThermalReplayConfig,
    ThermalSourceConfig,
    ThermalSyntheticConfig,
)
from device.sources.thermal import ThermalSource


def _lepton(config: LeptonSourceConfig) -> ThermalSource:
    from device.sources.thermal.lepton.cci import LeptonCci, Smbus2Bus
    from device.sources.thermal.lepton.source import LeptonOptions, LeptonSource
    from device.sources.thermal.lepton.spi import SpiOptions, SpiTransport
    from device.sources.thermal.lepton.vospi import Layout

    model = None if config.model == "auto" else config.model
    telemetry = None if config.telemetry == "auto" else config.telemetry
    layout = Layout(model, telemetry) if model is not None and telemetry is not None else None
    transport = SpiTransport(
        SpiOptions(device=config.spi_device, speed_hz=config.spi_speed_hz, layout=layout)
    )
    cci = LeptonCci(Smbus2Bus(config.i2c_bus)) if config.i2c_bus is not None else None
    options = LeptonOptions(model=model, telemetry=telemetry)
    return LeptonSource(transport, options, cci=cci, layout=layout)


def _purethermal(config: PureThermalSourceConfig) -> ThermalSource:
    from device.sources.thermal.lepton.vospi import Radiometry
    from device.sources.thermal.purethermal import PureThermalSource

    return PureThermalSource(config.camera_index, Radiometry(tlinear=config.radiometric))


def _replay(config: ThermalReplayConfig) -> ThermalSource:
    from device.sources.thermal.recording import ThermalReplaySource

    return ThermalReplaySource(config.path, speed=config.speed, loop=config.loop)


def _synthetic(config: ThermalSyntheticConfig) -> ThermalSource:
    from device.sources.thermal.synthetic import (
        SyntheticThermalFace,
        SyntheticThermalSource,
        ThermalFaceSpec,
    )

    height = 120 if config.width_px == 160 else 60
    face = SyntheticThermalFace(
        ThermalFaceSpec(width_px=config.width_px, height_px=height), config.seed
    )
    return SyntheticThermalSource(face, fps_hz=config.fps_hz, frame_count=config.frame_count)


def create_thermal_source(config: ThermalSourceConfig) -> ThermalSource:
    """A new, unopened thermal source for ``config``; the caller opens and closes it."""
    if isinstance(config, LeptonSourceConfig):
        return _lepton(config)
    if isinstance(config, PureThermalSourceConfig):
        return _purethermal(config)
    if isinstance(config, ThermalReplayConfig):
        return _replay(config)
    return _synthetic(config)
