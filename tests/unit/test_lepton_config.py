"""Lepton config keys (model, telemetry) wired through the factory to the VoSPI parser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.config import ConfigError, LeptonSourceConfig, parse_config
from device.errors import SourceUnavailable
from device.sources.thermal.factory import create_thermal_source
from device.sources.thermal.lepton import LeptonOptions, LeptonSource
from device.sources.thermal.lepton.spi import SpiOptions
from device.sources.thermal.lepton.stream import (
    StreamSpec,
    centikelvin_frames,
    lepton2_frames,
    vospi_stream,
)
from device.sources.thermal.lepton.vospi import Layout

from .test_lepton_transport import (
    FRAMES_NPY,
    FakeLepton,
    FakeLeptonI2c,
    make_cci,
    make_transport,
)

MINIMAL = {"device_id": "pi-01", "rgb": {"type": "synthetic"}}


@pytest.fixture(scope="module")
def frames3() -> np.ndarray:
    return np.load(FRAMES_NPY)


@pytest.fixture
def spi_node(tmp_path: Path) -> SpiOptions:
    """A device node and a bufsiz parameter file as on a Pi with spidev.bufsiz=65536."""
    (tmp_path / "spidev0.0").touch()
    (tmp_path / "bufsiz").write_text("65536\n")
    return SpiOptions(device=tmp_path / "spidev0.0", bufsiz_path=tmp_path / "bufsiz")


def lepton(**keys: object) -> LeptonSourceConfig:
    config = parse_config({**MINIMAL, "thermal": {"source": {"type": "lepton", **keys}}})
    assert config.thermal is not None and isinstance(config.thermal.source, LeptonSourceConfig)
    return config.thermal.source


def test_model_and_telemetry_default_to_auto() -> None:
    config = lepton()
    assert (config.model, config.telemetry) == ("auto", "auto")
    source = create_thermal_source(config.model_copy(update={"i2c_bus": None}))
    assert isinstance(source, LeptonSource)
    assert source.options.model is None and source.options.telemetry is None


@pytest.mark.parametrize(
    ("model", "telemetry", "layout"),
    [(2, "footer", Layout(2, "footer")), (3, "header", Layout(3, "header")), (3, "off", Layout(3))],
)
def test_explicit_model_and_telemetry_reach_the_parser(
    model: int, telemetry: str, layout: Layout
) -> None:
    source = create_thermal_source(lepton(model=model, telemetry=telemetry, i2c_bus=None))
    assert isinstance(source, LeptonSource)
    assert source.parser.layout == layout
    assert source.options.model == model and source.options.telemetry == telemetry


@pytest.mark.parametrize(
    ("keys", "path"),
    [({"model": 4}, "model"), ({"model": "3.5"}, "model"), ({"telemetry": "side"}, "telemetry")],
)
def test_bad_lepton_keys_name_their_path(keys: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError, match=rf"thermal\.source\.lepton\.{path}"):
        lepton(**keys)


def test_auto_detects_a_lepton2_with_telemetry_over_spi(
    spi_node: SpiOptions, frames3: np.ndarray
) -> None:
    kelvin = centikelvin_frames(lepton2_frames(frames3[:6]))
    spec = StreamSpec(Layout(2, "footer"), tlinear=True, resolution_k=0.01)
    options = SpiOptions(spi_node.device, layout=None, bufsiz_path=spi_node.bufsiz_path)
    transport, _, _ = make_transport(options, FakeLepton(vospi_stream(kelvin, spec)))
    source = LeptonSource(transport, LeptonOptions(detect_bytes=64 * 1024))
    source.open()
    frames = [source.read() for _ in range(4)]
    source.close()
    assert source.parser.layout == Layout(2, "footer")
    for frame in frames:
        assert frame is not None and frame.radiometric and frame.celsius.shape == (60, 80)
        assert any(np.allclose(frame.celsius, k / 100 - 273.15, atol=1e-3) for k in kelvin)
    assert frames[0] is not None and frames[0].index == 0


def test_configured_telemetry_is_commanded_over_cci(
    spi_node: SpiOptions, frames3: np.ndarray
) -> None:
    bus = FakeLeptonI2c()
    cci, _ = make_cci(bus)
    spec = StreamSpec(Layout(3, "header"))
    transport, _, _ = make_transport(spi_node, FakeLepton(vospi_stream(frames3[:3], spec)))
    options = LeptonOptions(model=3, telemetry="header")
    source = LeptonSource(transport, options, cci=cci, layout=Layout(3, "header"))
    source.open()
    frame = source.read()
    source.close()
    assert bus.attrs[0x0218] == [1, 0] and bus.attrs[0x021C] == [0, 0]  # on, header
    assert frame is not None and np.array_equal(frame.celsius, frames3[0].astype(np.float32))


def test_undetectable_stream_is_one_sentence(spi_node: SpiOptions) -> None:
    options = SpiOptions(spi_node.device, layout=None, bufsiz_path=spi_node.bufsiz_path)
    transport, _, _ = make_transport(options, FakeLepton(b"\0" * 164, synced=False))
    source = LeptonSource(transport, LeptonOptions(max_resyncs=1, detect_bytes=70_000))
    with pytest.raises(SourceUnavailable, match=r"set thermal\.source\.model"):
        source.open()
