"""FLIR Lepton 2.x/3.x over SPI (VoSPI) with CCI over I²C: the project's own driver.

``vospi`` (pure parser) · ``spi`` (spidev transport, the only spidev import) · ``cci`` (I²C
commands) · ``capture`` (raw capture files and their replay) · ``stream`` (synthetic VoSPI) ·
``source`` (``LeptonSource``). See docs/thermal.md.
"""

from __future__ import annotations

from device.sources.thermal.lepton.source import LeptonOptions, LeptonSource
from device.sources.thermal.lepton.transport import Chunk, LeptonTransport
from device.sources.thermal.lepton.vospi import Layout, Radiometry, VospiFrame, VospiParser

__all__ = [
    "Chunk",
    "Layout",
    "LeptonOptions",
    "LeptonSource",
    "LeptonTransport",
    "Radiometry",
    "VospiFrame",
    "VospiParser",
]
