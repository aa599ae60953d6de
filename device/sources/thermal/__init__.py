"""Thermal sources: one interface, like the RGB sources in ``device/sources/base.py``.

Implementations: ``lepton/`` (the project's own VoSPI driver over SPI, docs/thermal.md),
``purethermal``, ``recording`` (replay), ``synthetic``; ``factory`` picks one from the config.
"""

from __future__ import annotations

from typing import Protocol

from device.frames import ThermalFrame


class ThermalSource(Protocol):
    """open() → read() until None → close(); same contract as ``RgbSource``.

    ``ThermalFrame.celsius`` holds °C when ``radiometric`` is True, raw sensor counts otherwise.
    """

    def open(self) -> None: ...

    def read(self) -> ThermalFrame | None: ...

    def close(self) -> None: ...
