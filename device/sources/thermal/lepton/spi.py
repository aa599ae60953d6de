"""Lepton VoSPI over ``/dev/spidevB.C``: the only module that imports ``spidev`` (lazily).

Mode 3, at most 20 MHz, reads of whole packets sized to the kernel's spidev buffer
(``/sys/module/spidev/parameters/bufsiz``; an ioctl transfer reserves ``ALIGN(len, 128)`` bytes
on arm64, so sizes are kept within that too). One read is one ``read()`` of the device fd (or one
``xfer3`` ioctl); /CS is held during it and released between reads. Re-sync = no transfer
(/CS high, SCK idle) for more than 185 ms (docs/platform.md §1.4, §1.7).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from device.errors import ConfigError, SourceUnavailable
from device.sources.thermal.lepton.transport import Chunk
from device.sources.thermal.lepton.vospi import DMA_ALIGN_BYTES, PACKET_BYTES, Layout

logger = logging.getLogger(__name__)

BUFSIZ_PATH = Path("/sys/module/spidev/parameters/bufsiz")
MAX_SPEED_HZ = 20_000_000
RESYNC_IDLE_S = 0.2  # datasheet: > 185 ms (5 frame periods) with /CS deasserted
MAX_READ_BYTES = 65_535  # py-spidev's xfer3 splits larger blocks
CMDLINE_HINT = (
    "add spidev.bufsiz=65536 to /boot/firmware/cmdline.txt (one line) and reboot; "
    "check with `cat /sys/module/spidev/parameters/bufsiz`"
)
LARGEST_SEGMENT = Layout(3, "footer")  # 61 packets: reads fit any model when it is unknown
INSTALL_HINT = "spidev is not importable: `pip install spidev` or `sudo apt install python3-spidev`"


@dataclass(frozen=True)
class SpiOptions:
    device: Path = Path("/dev/spidev0.0")
    speed_hz: int = 18_000_000
    layout: Layout | None = field(default_factory=Layout)  # None = unknown: the source detects it
    bufsiz_path: Path = BUFSIZ_PATH

    def __post_init__(self) -> None:
        if not 1_000_000 <= self.speed_hz <= MAX_SPEED_HZ:
            raise ConfigError(
                f"lepton SPI speed {self.speed_hz} Hz is outside 1-20 MHz (the Lepton's limit)"
            )

    @property
    def bus_and_chip(self) -> tuple[int, int]:
        name = self.device.name  # spidev0.0
        try:
            bus, chip = name.removeprefix("spidev").split(".")
            return int(bus), int(chip)
        except ValueError as exc:
            raise ConfigError(f"{self.device} is not a spidev node like /dev/spidev0.0") from exc


def read_bufsiz(path: Path = BUFSIZ_PATH) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise SourceUnavailable(
            f"cannot read the spidev buffer size from {path}: SPI is not enabled "
            "(dtparam=spi=on in /boot/firmware/config.txt) or the spidev module is not loaded"
        ) from exc


def packets_per_read(bufsiz: int, layout: Layout) -> int:
    """Whole packets per read that fit spidev's buffer; at least one segment or it refuses."""
    count = min(bufsiz, MAX_READ_BYTES) // PACKET_BYTES
    while count > 0 and _aligned(count * PACKET_BYTES) > bufsiz:
        count -= 1
    needed = layout.packets_per_segment
    if count < needed:
        need_bytes = _aligned(needed * PACKET_BYTES)
        raise SourceUnavailable(
            f"the spidev buffer is {bufsiz} bytes but one Lepton segment needs {need_bytes}; "
            + CMDLINE_HINT
        )
    return count


def _aligned(length: int) -> int:
    return -(-length // DMA_ALIGN_BYTES) * DMA_ALIGN_BYTES


class SpiTransport:
    """Raw VoSPI bytes from the SPI port. ``spidev_module``/``sleep``/``clock`` are for tests."""

    live = True

    def __init__(
        self,
        options: SpiOptions | None = None,
        spidev_module: ModuleType | Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options or SpiOptions()
        self.layout: Layout | None = self.options.layout
        self._module = spidev_module
        self._sleep, self._clock = sleep, clock
        self._spi: Any = None
        self._zeros: list[int] = []
        self.resyncs = 0

    def open(self) -> None:
        self.close()
        opts = self.options
        if not opts.device.exists():
            raise SourceUnavailable(
                f"no SPI device {opts.device}: enable SPI (dtparam=spi=on in "
                "/boot/firmware/config.txt), reboot, and check the Lepton is on that bus/CS"
            )
        count = packets_per_read(read_bufsiz(opts.bufsiz_path), opts.layout or LARGEST_SEGMENT)
        self._zeros = [0] * (count * PACKET_BYTES)
        self._spi = self._open_device()
        logger.info("Lepton on %s: %d packets per read", opts.device, count)
        self.resync()

    def _open_device(self) -> Any:
        module = self._module or _import_spidev()
        spi = module.SpiDev()
        try:
            spi.open(*self.options.bus_and_chip)
            spi.mode = 0b11
            spi.bits_per_word = 8
            spi.max_speed_hz = self.options.speed_hz
        except OSError as exc:
            spi.close()
            raise SourceUnavailable(f"cannot open {self.options.device}: {exc}") from exc
        return spi

    def read(self) -> Chunk | None:
        if self._spi is None:
            return None
        try:
            data = self._transfer(len(self._zeros))
        except OSError as exc:
            raise SourceUnavailable(_read_error(exc, len(self._zeros))) from exc
        return Chunk(data=data, ts_s=self._clock())

    def _transfer(self, length: int) -> bytes:
        """One transfer with /CS held: read() on the spidev fd (no Python lists, GIL released),
        or py-spidev's xfer3 where there is no fd."""
        fileno = getattr(self._spi, "fileno", None)
        if fileno is None:
            return bytes(self._spi.xfer3(self._zeros))
        data = os.read(fileno(), length)
        if len(data) != length:
            raise OSError(errno.EIO, f"short read: {len(data)} of {length} bytes")
        return data

    def resync(self) -> None:
        """Idle /CS and SCK for > 185 ms so the Lepton restarts its VoSPI stream."""
        self.resyncs += 1
        self._sleep(RESYNC_IDLE_S)

    def close(self) -> None:
        spi, self._spi = self._spi, None
        if spi is not None:
            spi.close()


def _import_spidev() -> Any:
    try:
        import spidev
    except ImportError as exc:
        raise SourceUnavailable(INSTALL_HINT) from exc
    return spidev


def _read_error(exc: OSError, length: int) -> str:
    if exc.errno == errno.EMSGSIZE:
        return f"spidev refused a {length}-byte read (Message too long); " + CMDLINE_HINT
    return f"reading the Lepton over SPI failed: {exc}"
