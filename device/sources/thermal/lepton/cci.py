"""Lepton CCI (command and control over I²C, address 0x2A): the commands a user needs.

16-bit registers, big-endian, 16-bit transfers only (docs/platform.md §1.6). A command is:
wait until not BUSY → write DATA0.. (SET) → write DATA LENGTH → write COMMAND → wait until not
BUSY → check the error code in STATUS bits 15..8 → read DATA0.. (GET). 32-bit enum values are
two words, least significant word first. The bus is ``smbus2`` on ``/dev/i2c-N``, imported lazily;
anything with ``write``/``write_read`` works (tests use a fake Lepton register file).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from device.errors import SourceUnavailable
from device.sources.thermal.lepton.vospi import Radiometry

ADDRESS = 0x2A
REG_STATUS, REG_COMMAND, REG_LENGTH, REG_DATA0 = 0x0002, 0x0004, 0x0006, 0x0008
BUSY, BOOTED = 0x0001, 0x0004
GET, SET, RUN = 0, 1, 2
# Command IDs (module base + ID); OEM and RAD carry the 0x4000 protection bit.
AGC_ENABLE = 0x0100
SYS_TELEMETRY_ENABLE = 0x0218
SYS_TELEMETRY_LOCATION = 0x021C
SYS_RUN_FFC = 0x0240  # + RUN = 0x0242
SYS_FFC_STATUS = 0x0244
RAD_ENABLE = 0x4E10
RAD_TLINEAR_ENABLE = 0x4EC0
RAD_TLINEAR_RESOLUTION = 0x4EC4
FFC_STATUS_BUSY = 1
TelemetryLocation = Literal["header", "footer"]


class I2cBus(Protocol):
    def write(self, address: int, data: bytes) -> None: ...

    def write_read(self, address: int, data: bytes, length: int) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CciStatus:
    busy: bool
    booted: bool
    error_code: int  # LEP_RESULT: 0 = OK, negative = error


class Smbus2Bus:
    """``/dev/i2c-N`` through smbus2's combined transfers (repeated start for reads)."""

    def __init__(self, bus_number: int = 1) -> None:
        node = Path(f"/dev/i2c-{bus_number}")
        if not node.exists():
            raise SourceUnavailable(
                f"no I2C bus {node}: enable it (dtparam=i2c_arm=on in /boot/firmware/config.txt)"
            )
        try:
            import smbus2
        except ImportError as exc:
            raise SourceUnavailable("smbus2 is not importable: `pip install smbus2`") from exc
        self._smbus2: Any = smbus2
        self._bus = smbus2.SMBus(bus_number)

    def write(self, address: int, data: bytes) -> None:
        self._bus.i2c_rdwr(self._smbus2.i2c_msg.write(address, data))

    def write_read(self, address: int, data: bytes, length: int) -> bytes:
        read = self._smbus2.i2c_msg.read(address, length)
        self._bus.i2c_rdwr(self._smbus2.i2c_msg.write(address, data), read)
        return bytes(read)

    def close(self) -> None:
        self._bus.close()


class LeptonCci:
    """Typed Lepton commands over an ``I2cBus``. Errors raise ``SourceUnavailable``."""

    def __init__(
        self,
        bus: I2cBus,
        address: int = ADDRESS,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus, self._address, self._timeout_s = bus, address, timeout_s
        self._sleep, self._clock = sleep, clock

    # ----------------------------------------------------------------------- registers
    def _read_reg(self, register: int, words: int = 1) -> list[int]:
        raw = self._io(lambda: self._bus.write_read(self._address, _word(register), 2 * words))
        return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 2 * words, 2)]

    def _write_reg(self, register: int, values: list[int]) -> None:
        data = _word(register) + b"".join(_word(v) for v in values)
        self._io(lambda: self._bus.write(self._address, data))

    def _io(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except OSError as exc:
            raise SourceUnavailable(f"the Lepton does not answer on I2C ({exc})") from exc

    def status(self) -> CciStatus:
        (value,) = self._read_reg(REG_STATUS)
        code = (value >> 8) & 0xFF
        signed = code - 256 if code > 127 else code
        return CciStatus(bool(value & BUSY), bool(value & BOOTED), signed)

    def _wait_ready(self) -> CciStatus:
        deadline = self._clock() + self._timeout_s
        while (state := self.status()).busy:
            if self._clock() > deadline:
                raise SourceUnavailable(f"the Lepton stayed busy for {self._timeout_s:g} s")
            self._sleep(0.005)
        return state

    # ------------------------------------------------------------------------ commands
    def command(self, command_id: int, kind: int, data: list[int] | None = None) -> list[int]:
        """Run one command; returns the DATA words for GET (two words unless ``data`` sizes it)."""
        self._wait_ready()
        words = data if data is not None else [0, 0]
        if kind == SET:
            self._write_reg(REG_DATA0, words)
        self._write_reg(REG_LENGTH, [len(words) if kind != RUN else 0])
        self._write_reg(REG_COMMAND, [command_id | kind])
        state = self._wait_ready()
        if state.error_code != 0:
            raise SourceUnavailable(
                f"Lepton command 0x{command_id | kind:04X} failed with error {state.error_code}"
            )
        return self._read_reg(REG_DATA0, len(words)) if kind == GET else []

    def get_u32(self, command_id: int) -> int:
        low, high = self.command(command_id, GET)
        return low | (high << 16)

    def set_u32(self, command_id: int, value: int) -> None:
        self.command(command_id, SET, [value & 0xFFFF, (value >> 16) & 0xFFFF])

    def run_ffc(self) -> None:
        """Start a flat-field correction (shutter closes; frames freeze for a moment)."""
        self.command(SYS_RUN_FFC, RUN)

    def ffc_busy(self) -> bool:
        return self.get_u32(SYS_FFC_STATUS) == FFC_STATUS_BUSY

    def set_radiometry(self, enabled: bool) -> None:
        self.set_u32(RAD_ENABLE, int(enabled))

    def set_tlinear(self, enabled: bool, resolution_k: float = 0.01) -> None:
        """TLinear on: pixels are Kelvin x 100 (0.01 K) or x 10 (0.1 K); AGC must be off."""
        if enabled:
            self.set_u32(AGC_ENABLE, 0)
            self.set_u32(RAD_TLINEAR_RESOLUTION, 1 if resolution_k == 0.01 else 0)
        self.set_u32(RAD_TLINEAR_ENABLE, int(enabled))

    def set_telemetry(self, enabled: bool, location: TelemetryLocation = "footer") -> None:
        self.set_u32(SYS_TELEMETRY_LOCATION, 0 if location == "header" else 1)
        self.set_u32(SYS_TELEMETRY_ENABLE, int(enabled))

    def telemetry(self) -> TelemetryLocation | None:
        """Where telemetry rows are sent, or None when telemetry is off."""
        if not self.get_u32(SYS_TELEMETRY_ENABLE):
            return None
        return "header" if self.get_u32(SYS_TELEMETRY_LOCATION) == 0 else "footer"

    def radiometry(self) -> Radiometry:
        """What the pixel words mean right now (TLinear needs radiometry on too)."""
        tlinear = bool(self.get_u32(RAD_ENABLE)) and bool(self.get_u32(RAD_TLINEAR_ENABLE))
        resolution = 0.01 if self.get_u32(RAD_TLINEAR_RESOLUTION) == 1 else 0.1
        return Radiometry(tlinear=tlinear, resolution_k=resolution)

    def close(self) -> None:
        self._bus.close()


def _word(value: int) -> bytes:
    return (value & 0xFFFF).to_bytes(2, "big")


def open_cci(bus_number: int = 1) -> LeptonCci:
    return LeptonCci(Smbus2Bus(bus_number))
