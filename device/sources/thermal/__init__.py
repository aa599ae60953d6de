"""Thermal sources: one interface, like the RGB sources in ``device/sources/base.py``.

Only the Lepton-over-SPI driver lives here so far (``lepton/``). It is not wired into
``device/config.py`` / ``device/service.py`` yet: that is for the owner of those files — see
docs/thermal.md, "Wiring into the service".
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
