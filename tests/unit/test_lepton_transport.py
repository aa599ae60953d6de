"""SPI transport, CCI, capture/replay and LeptonSource, faked only at the hardware boundary:
a fake ``spidev`` module whose SpiDev clocks bytes out of a fake Lepton, and a fake Lepton CCI
register file behind the I2C bus interface. Time is a fake clock: no test sleeps."""

from __future__ import annotations

import errno
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from device.errors import ConfigError, SourceUnavailable
from device.sources.thermal.lepton import LeptonOptions, LeptonSource
from device.sources.thermal.lepton.capture import CaptureWriter, ReplayTransport, capture
from device.sources.thermal.lepton.cci import (
    ADDRESS,
    BOOTED,
    BUSY,
    REG_COMMAND,
    REG_DATA0,
    REG_LENGTH,
    REG_STATUS,
    LeptonCci,
    Smbus2Bus,
)
from device.sources.thermal.lepton.spi import (
    RESYNC_IDLE_S,
    SpiOptions,
    SpiTransport,
    packets_per_read,
    read_bufsiz,
)
from device.sources.thermal.lepton.stream import (
    StreamSpec,
    centikelvin_frames,
    lepton2_frames,
    timed_chunks,
    vospi_stream,
)
from device.sources.thermal.lepton.transport import Chunk
from device.sources.thermal.lepton.vospi import PACKET_BYTES, Layout, Radiometry

ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets"
FRAMES_NPY = ASSETS / "thermal_raw" / "cptv" / "v2_first20_frames_uint16.npy"
UNIQUE_BYTES = 12 * 64 * PACKET_BYTES  # one unique Lepton 3 frame incl. repeats and discards


@pytest.fixture(scope="module")
def frames3() -> np.ndarray:
    if not FRAMES_NPY.is_file():
        pytest.fail(f"real Lepton frames missing: {FRAMES_NPY} (check out ../shared)")
    return np.load(FRAMES_NPY)


# ------------------------------------------------------------------ fakes at the boundary
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeLepton:
    """The camera end of the wire: loops a VoSPI stream; after ``lose_sync_at`` bytes it sends
    noise until /CS has been idle > 185 ms, then restarts at a unique-frame boundary."""

    def __init__(self, stream: bytes, lose_sync_at: int | None = None, synced: bool = True):
        self.stream, self.pos, self.synced = stream, 0, synced
        self.lose_sync_at = lose_sync_at
        self.sent = 0
        self.noise = random.Random(0)
        self.always_noise = not synced

    def cs_idle(self, seconds: float) -> None:
        if seconds > 0.185 and not self.always_noise:
            self.synced = True
            self.pos = -(-self.pos // UNIQUE_BYTES) * UNIQUE_BYTES % len(self.stream)

    def clock_out(self, n: int) -> bytes:
        if self.lose_sync_at is not None and self.sent >= self.lose_sync_at:
            self.synced, self.lose_sync_at = False, None
        self.sent += n
        if not self.synced:
            return self.noise.randbytes(n)
        out = bytearray()
        while len(out) < n:
            take = self.stream[self.pos : self.pos + n - len(out)]
            out += take
            self.pos = (self.pos + len(take)) % len(self.stream)
        return bytes(out)


class FakeSpiDev:
    """Stands in for ``spidev.SpiDev`` (py-spidev's attribute names and xfer3)."""

    def __init__(self, lepton: FakeLepton, clock: FakeClock, fail: OSError | None = None):
        self.lepton, self.clock, self.fail = lepton, clock, fail
        self.mode, self.max_speed_hz, self.bits_per_word = 0, 500_000, 8
        self.opened: tuple[int, int] | None = None
        self.reads: list[int] = []
        self.closed = False
        self.last_end = clock.now

    def open(self, bus: int, device: int) -> None:
        self.opened = (bus, device)

    def xfer3(self, data: list[int]) -> list[int]:
        if self.fail is not None:
            raise self.fail
        self.lepton.cs_idle(self.clock.now - self.last_end)
        self.reads.append(len(data))
        out = self.lepton.clock_out(len(data))
        self.clock.now += len(data) * 8 / self.max_speed_hz
        self.last_end = self.clock.now
        return list(out)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def spi_node(tmp_path: Path) -> SpiOptions:
    """A device node and a bufsiz parameter file as on a Pi with spidev.bufsiz=65536."""
    (tmp_path / "spidev0.0").touch()
    (tmp_path / "bufsiz").write_text("65536\n")
    return SpiOptions(device=tmp_path / "spidev0.0", bufsiz_path=tmp_path / "bufsiz")


def make_transport(
    options: SpiOptions, lepton: FakeLepton, fail: OSError | None = None
) -> tuple[SpiTransport, FakeSpiDev, FakeClock]:
    clock = FakeClock()
    spi = FakeSpiDev(lepton, clock, fail)
    module = types.SimpleNamespace(SpiDev=lambda: spi)
    return SpiTransport(options, module, sleep=clock.sleep, clock=clock), spi, clock


# ------------------------------------------------------------------------------ SPI sizing
@pytest.mark.parametrize(
    ("bufsiz", "layout", "packets"),
    [(65536, Layout(3), 399), (9856, Layout(3), 60), (16384, Layout(2, "footer"), 99)],
)
def test_reads_are_whole_packets_within_the_aligned_buffer(
    bufsiz: int, layout: Layout, packets: int
) -> None:
    assert packets_per_read(bufsiz, layout) == packets
    assert -(-packets * PACKET_BYTES // 128) * 128 <= bufsiz


@pytest.mark.parametrize("bufsiz", [4096, 9850])
def test_too_small_spidev_buffer_is_a_clear_error(bufsiz: int) -> None:
    with pytest.raises(SourceUnavailable, match=r"spidev.bufsiz=65536") as info:
        packets_per_read(bufsiz, Layout(3))
    assert f"{bufsiz} bytes" in str(info.value)


def test_missing_bufsiz_parameter(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="SPI is not enabled"):
        read_bufsiz(tmp_path / "nope")


def test_missing_device_node(tmp_path: Path) -> None:
    options = SpiOptions(device=tmp_path / "spidev0.0", bufsiz_path=tmp_path / "bufsiz")
    with pytest.raises(SourceUnavailable, match=r"no SPI device .*dtparam=spi=on"):
        SpiTransport(options).open()


def test_speed_above_20_mhz_is_refused() -> None:
    with pytest.raises(ConfigError, match="1-20 MHz"):
        SpiOptions(speed_hz=25_000_000)


def test_open_sets_mode_3_speed_and_idles_cs(spi_node: SpiOptions, frames3: np.ndarray) -> None:
    transport, spi, clock = make_transport(spi_node, FakeLepton(vospi_stream(frames3[:2])))
    transport.open()
    chunk = transport.read()
    transport.close()
    assert spi.opened == (0, 0) and spi.mode == 3 and spi.max_speed_hz == 18_000_000
    assert clock.sleeps == [RESYNC_IDLE_S] and RESYNC_IDLE_S > 0.185
    assert chunk is not None and len(chunk.data) == spi.reads[0] == 399 * PACKET_BYTES
    assert spi.closed and transport.read() is None


class FdSpiDev(FakeSpiDev):
    """py-spidev's SpiDev has ``fileno()``: the driver then read()s the fd directly."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        super().__init__(FakeLepton(b""), clock)
        self.file = path.open("rb")

    def fileno(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()
        super().close()


def test_reads_use_the_device_fd_when_there_is_one(
    spi_node: SpiOptions, frames3: np.ndarray, tmp_path: Path
) -> None:
    (tmp_path / "wire.bin").write_bytes(vospi_stream(frames3[:2]))
    clock = FakeClock()
    spi = FdSpiDev(tmp_path / "wire.bin", clock)
    module = types.SimpleNamespace(SpiDev=lambda: spi)
    source = LeptonSource(SpiTransport(spi_node, module, sleep=clock.sleep, clock=clock))
    source.open()
    frames = [source.read(), source.read()]
    assert spi.reads == [] and spi.mode == 3  # no xfer3: one read() per chunk
    assert all(
        f is not None and np.array_equal(f.celsius, frames3[i]) for i, f in enumerate(frames)
    )
    with pytest.raises(SourceUnavailable, match="short read"):
        source.read()  # the "wire" ran dry: a short read is an error, not a partial chunk


def test_message_too_long_names_the_kernel_parameter(spi_node: SpiOptions) -> None:
    fail = OSError(errno.EMSGSIZE, "Message too long")
    transport, _, _ = make_transport(spi_node, FakeLepton(b"\0" * 164), fail)
    transport.open()
    with pytest.raises(SourceUnavailable, match=r"Message too long.*spidev.bufsiz"):
        transport.read()


def test_spidev_not_installed(spi_node: SpiOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spidev", None)
    with pytest.raises(SourceUnavailable, match="pip install spidev"):
        SpiTransport(spi_node).open()


# ------------------------------------------------------------------ LeptonSource over SPI
def test_source_reads_celsius_frames(spi_node: SpiOptions, frames3: np.ndarray) -> None:
    kelvin = centikelvin_frames(frames3[:4])
    transport, _, _ = make_transport(spi_node, FakeLepton(vospi_stream(kelvin)))
    source = LeptonSource(transport, LeptonOptions(radiometry=Radiometry(True, 0.01)))
    source.open()
    frames = [source.read() for _ in range(4)]
    source.close()
    assert source.read() is None
    for i, frame in enumerate(frames):
        assert frame is not None and frame.radiometric and frame.index == i
        assert frame.celsius.dtype == np.float32
        np.testing.assert_allclose(frame.celsius, kelvin[i] / 100 - 273.15, atol=1e-3)
    assert np.all(np.diff([f.ts_s for f in frames if f is not None]) > 0)


def test_source_resyncs_after_losing_sync(spi_node: SpiOptions, frames3: np.ndarray) -> None:
    lepton = FakeLepton(vospi_stream(frames3[:6]), lose_sync_at=2 * UNIQUE_BYTES)
    transport, _, clock = make_transport(spi_node, lepton)
    source = LeptonSource(transport, LeptonOptions(frame_timeout_s=0.5))
    source.open()
    frames = [source.read() for _ in range(5)]
    assert source.counters.resyncs >= 1 and clock.sleeps.count(RESYNC_IDLE_S) >= 2
    for frame in frames:
        assert frame is not None and not frame.radiometric  # no telemetry, no CCI: raw counts
        assert any(np.array_equal(frame.celsius, f) for f in frames3[:6].astype(np.float32))


def test_source_gives_up_after_bounded_resyncs(spi_node: SpiOptions) -> None:
    transport, _, clock = make_transport(spi_node, FakeLepton(b"\0" * 164, synced=False))
    source = LeptonSource(transport, LeptonOptions(max_resyncs=3, frame_timeout_s=0.3))
    source.open()
    with pytest.raises(SourceUnavailable, match=r"no valid frame after 3 re-syncs.*mode 3"):
        source.read()
    assert len(clock.sleeps) == 1 + 3  # the one at open, then three re-syncs


def test_capture_on_the_pi_then_decode_anywhere(
    spi_node: SpiOptions, frames3: np.ndarray, tmp_path: Path
) -> None:
    transport, _, clock = make_transport(spi_node, FakeLepton(vospi_stream(frames3[:3])))
    path = tmp_path / "lepton.cap"
    with CaptureWriter(path, spi_node.layout, {"device": "fake"}) as writer:
        written = capture(transport, writer, seconds=0.2, clock=clock)
    assert written > 0 and path.stat().st_size > written
    source = LeptonSource(ReplayTransport(path))
    source.open()
    first = source.read()
    assert first is not None and np.array_equal(first.celsius, frames3[0].astype(np.float32))


# --------------------------------------------------------------------------------- replay
def write_capture(path: Path, chunks: list[Chunk], layout: Layout) -> None:
    with CaptureWriter(path, layout) as writer:
        for chunk in chunks:
            writer.write(chunk)


def test_replay_with_a_resync_mark(frames3: np.ndarray, tmp_path: Path) -> None:
    data = vospi_stream(frames3[:4])
    chunks = [Chunk(data[: UNIQUE_BYTES + 100 * PACKET_BYTES], 0.1)]  # frame 0, part of 1
    chunks += [Chunk(b"", 0.2, resync=True), Chunk(data[2 * UNIQUE_BYTES :], 0.5)]
    write_capture(tmp_path / "c.cap", chunks, Layout(3))
    source = LeptonSource(ReplayTransport(tmp_path / "c.cap"))
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    expected = [frames3[0], frames3[2], frames3[3]]
    assert all(np.array_equal(f.celsius, e) for f, e in zip(frames, expected, strict=True))
    assert [f.ts_s for f in frames] == [0.0, 0.4, 0.4]  # seconds since the capture started
    assert source.parser.stats.crc_errors == 0


def test_truncated_capture_keeps_complete_records(frames3: np.ndarray, tmp_path: Path) -> None:
    data = vospi_stream(frames3[:3])
    chunks = [Chunk(c, ts) for ts, c in timed_chunks(data, 399, 6360.0)]
    write_capture(tmp_path / "c.cap", chunks, Layout(3))
    whole = (tmp_path / "c.cap").read_bytes()
    (tmp_path / "cut.cap").write_bytes(whole[: len(whole) - 5])  # power lost mid-record
    source = LeptonSource(ReplayTransport(tmp_path / "cut.cap"))
    source.open()
    assert source.read() is not None and source.read() is not None


def test_raw_dump_layout_is_detected(frames3: np.ndarray, tmp_path: Path) -> None:
    layout = Layout(2, "footer")
    kelvin = centikelvin_frames(lepton2_frames(frames3[:3]))
    spec = StreamSpec(layout, tlinear=True, resolution_k=0.01)
    (tmp_path / "raw.bin").write_bytes(vospi_stream(kelvin, spec))
    transport = ReplayTransport(tmp_path / "raw.bin")
    source = LeptonSource(transport)
    source.open()
    frame = source.read()
    assert transport.layout == layout
    assert frame is not None and frame.radiometric  # telemetry row C says TLinear 0.01 K
    np.testing.assert_allclose(frame.celsius, kelvin[0] / 100 - 273.15, atol=1e-3)


def test_replay_of_a_file_that_is_not_a_capture(tmp_path: Path) -> None:
    (tmp_path / "noise.bin").write_bytes(random.Random(0).randbytes(50_000))
    with pytest.raises(SourceUnavailable, match="not a Lepton capture"):
        ReplayTransport(tmp_path / "noise.bin").open()


# ------------------------------------------------------------------------------------ CCI
class FakeLeptonI2c:
    """A Lepton's CCI register file: DATA/LENGTH/COMMAND/STATUS and a few attributes."""

    def __init__(self, busy_reads: int = 0, ffc_polls: int = 2) -> None:
        self.regs = {REG_STATUS: BOOTED, REG_LENGTH: 0}
        self.attrs = {
            0x0100: [0, 0],  # AGC off
            0x0218: [0, 0],  # telemetry off
            0x021C: [1, 0],  # footer
            0x0244: [0, 0],  # FFC status ready
            0x4E10: [1, 0],  # radiometry on
            0x4EC0: [1, 0],  # TLinear on
            0x4EC4: [1, 0],  # 0.01 K
        }
        self.busy_reads, self.ffc_polls, self.commands = busy_reads, ffc_polls, []
        self.fail: OSError | None = None
        self.closed = False

    def write(self, address: int, data: bytes) -> None:
        assert address == ADDRESS and len(data) % 2 == 0
        words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        if words[0] == REG_COMMAND:
            self._execute(words[1])
            return
        for i, word in enumerate(words[1:]):
            self.regs[words[0] + 2 * i] = word

    def write_read(self, address: int, data: bytes, length: int) -> bytes:
        if self.fail is not None:
            raise self.fail
        reg = int.from_bytes(data, "big")
        if reg == REG_STATUS and self.busy_reads > 0:
            self.busy_reads -= 1
            return (self.regs[REG_STATUS] | BUSY).to_bytes(2, "big")
        return b"".join(
            self.regs.get(reg + 2 * i, 0).to_bytes(2, "big") for i in range(length // 2)
        )

    def _execute(self, command: int) -> None:
        base, kind = command & ~0x3, command & 0x3
        self.commands.append(command)
        self.regs[REG_STATUS] = BOOTED
        if command == 0x0242:
            self.attrs[0x0244] = [1, 0]
        elif base not in self.attrs:
            self.regs[REG_STATUS] = BOOTED | ((-3 & 0xFF) << 8)
        elif kind == 1:
            count = self.regs[REG_LENGTH]
            self.attrs[base] = [self.regs[REG_DATA0 + 2 * i] for i in range(count)]
        else:
            self._get(base)

    def _get(self, base: int) -> None:
        if base == 0x0244 and self.attrs[base][0] == 1:
            self.ffc_polls -= 1
            if self.ffc_polls < 0:
                self.attrs[base] = [0, 0]
        for i, word in enumerate(self.attrs[base]):
            self.regs[REG_DATA0 + 2 * i] = word

    def close(self) -> None:
        self.closed = True


def make_cci(bus: FakeLeptonI2c) -> tuple[LeptonCci, FakeClock]:
    clock = FakeClock()
    return LeptonCci(bus, timeout_s=1.0, sleep=clock.sleep, clock=clock), clock


def test_cci_status_and_radiometry_settings() -> None:
    bus = FakeLeptonI2c(busy_reads=3)
    cci, _ = make_cci(bus)
    assert cci.radiometry() == Radiometry(True, 0.01)
    cci.set_tlinear(True, resolution_k=0.1)
    assert bus.attrs[0x0100] == [0, 0] and bus.attrs[0x4EC4] == [0, 0]
    assert cci.radiometry() == Radiometry(True, 0.1)
    cci.set_radiometry(False)
    assert cci.radiometry() == Radiometry(False, 0.1)
    status = cci.status()
    assert status.booted and not status.busy and status.error_code == 0


def test_cci_telemetry_and_ffc() -> None:
    bus = FakeLeptonI2c(ffc_polls=2)
    cci, _ = make_cci(bus)
    assert cci.telemetry() is None
    cci.set_telemetry(True, "header")
    assert cci.telemetry() == "header" and bus.attrs[0x0218] == [1, 0]
    cci.run_ffc()
    assert 0x0242 in bus.commands
    assert [cci.ffc_busy() for _ in range(4)] == [True, True, False, False]


def test_cci_errors_are_one_sentence() -> None:
    bus = FakeLeptonI2c()
    cci, _ = make_cci(bus)
    with pytest.raises(SourceUnavailable, match=r"0x0F01 failed with error -3"):
        cci.set_u32(0x0F00, 1)
    bus.busy_reads = 10**6
    with pytest.raises(SourceUnavailable, match="stayed busy"):
        cci.get_u32(0x4EC0)
    bus.busy_reads, bus.fail = 0, OSError(errno.EREMOTEIO, "Remote I/O error")
    with pytest.raises(SourceUnavailable, match="does not answer on I2C"):
        cci.status()


def test_missing_i2c_bus() -> None:
    with pytest.raises(SourceUnavailable, match="dtparam=i2c_arm=on"):
        Smbus2Bus(bus_number=97)


# ------------------------------------------------------------------- radiometry and FFC
def replay_source(
    tmp_path: Path, data: bytes, layout: Layout, cci: LeptonCci | None = None
) -> LeptonSource:
    write_capture(tmp_path / "s.cap", [Chunk(data, 0.0)], layout)
    source = LeptonSource(ReplayTransport(tmp_path / "s.cap"), cci=cci)
    source.open()
    return source


def read_all(source: LeptonSource) -> list:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def test_radiometry_from_cci_without_telemetry(frames3: np.ndarray, tmp_path: Path) -> None:
    kelvin = centikelvin_frames(frames3[:2])
    cci, _ = make_cci(FakeLeptonI2c())
    frames = read_all(replay_source(tmp_path, vospi_stream(kelvin), Layout(3), cci))
    assert [f.radiometric for f in frames] == [True, True]
    np.testing.assert_allclose(frames[1].celsius, kelvin[1] / 100 - 273.15, atol=1e-3)


def test_unknown_radiometry_gives_flagged_raw_counts(frames3: np.ndarray, tmp_path: Path) -> None:
    frames = read_all(replay_source(tmp_path, vospi_stream(frames3[:2]), Layout(3)))
    assert [f.radiometric for f in frames] == [False, False]
    assert np.array_equal(frames[0].celsius, frames3[0].astype(np.float32))


def test_frames_during_ffc_are_skipped(frames3: np.ndarray, tmp_path: Path) -> None:
    layout = Layout(3, "header")
    spec = StreamSpec(layout, tlinear=True, ffc_frames=frozenset({1, 2}))
    source = replay_source(tmp_path, vospi_stream(centikelvin_frames(frames3[:4]), spec), layout)
    frames = read_all(source)
    assert [f.index for f in frames] == [0, 3]  # the gap shows the skipped frames
    assert source.counters.ffc_skipped == 2


def test_commanded_ffc_skips_frames_until_done(frames3: np.ndarray, tmp_path: Path) -> None:
    bus = FakeLeptonI2c(ffc_polls=1)
    cci, _ = make_cci(bus)
    source = replay_source(tmp_path, vospi_stream(frames3[:5]), Layout(3), cci)
    first = source.read()
    source.run_ffc()
    rest = read_all(source)
    assert first is not None and first.index == 0
    assert [f.index for f in rest] == [2, 3, 4] and source.counters.ffc_skipped == 1


def test_ffc_needs_cci(frames3: np.ndarray, tmp_path: Path) -> None:
    source = replay_source(tmp_path, vospi_stream(frames3[:1]), Layout(3))
    with pytest.raises(SourceUnavailable, match="I2C"):
        source.run_ffc()


def test_open_fails_cleanly_when_cci_is_silent(frames3: np.ndarray, tmp_path: Path) -> None:
    write_capture(tmp_path / "s.cap", [Chunk(vospi_stream(frames3[:1]), 0.0)], Layout(3))
    bus = FakeLeptonI2c()
    bus.fail = OSError(errno.EREMOTEIO, "Remote I/O error")
    cci, _ = make_cci(bus)
    transport = ReplayTransport(tmp_path / "s.cap")
    with pytest.raises(SourceUnavailable, match="does not answer on I2C"):
        LeptonSource(transport, cci=cci).open()
    assert transport.read() is None  # the transport was closed again
