"""What a Lepton byte transport hands the parser: timed chunks of raw SPI bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from device.sources.thermal.lepton.vospi import Layout


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes from one SPI read, or (``resync``) the mark that /CS was idled before this point."""

    data: bytes
    ts_s: float  # time the read returned (monotonic for live reads; capture timeline in replay)
    resync: bool = False


class LeptonTransport(Protocol):
    """Raw VoSPI bytes: SPI on a Pi (``spi.SpiTransport``) or a capture file (``ReplayTransport``).

    ``live`` transports can be re-synced (idle /CS > 185 ms); replays just play what happened.
    ``read()`` returns None at the end of a replay, never for a live device.
    """

    live: bool
    layout: Layout | None  # known from the capture header, or None

    def open(self) -> None: ...

    def read(self) -> Chunk | None: ...

    def resync(self) -> None: ...

    def close(self) -> None: ...
