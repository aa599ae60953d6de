"""Pure VoSPI parser: bytes read from the Lepton's SPI port in, whole unique frames out.

No I/O here (docs/platform.md §1.2-1.4). A packet is 164 bytes: a 16-bit ID (discard packets
have ``(byte0 & 0x0F) == 0x0F``; otherwise bits 11..0 are the packet number and, on a Lepton 3.x,
bits 14..12 of packet 20 are the segment number), a CRC-16/CCITT over the whole packet with the
ID's top 4 bits and the CRC field zeroed, and 80 big-endian 16-bit pixels.

The parser only ever emits a frame assembled from one unbroken run of packets 0..N-1 whose CRCs
all check, and on a Lepton 3.x from segments 1, 2, 3, 4 that follow each other directly.
Anything else (a lost or repeated packet, a bad CRC, a segment out of order, bytes lost from the
stream) drops the partial frame and waits for the next frame start; byte alignment is re-found
by CRC search.
Duplicate frames (Lepton 2.x repeats each frame 3 times at ~27 Hz; Lepton 3.x marks the repeats
as segment 0) are dropped, so about 8.7 unique frames per second come out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

PACKET_BYTES = 164
PAYLOAD_WORDS = 80
MAX_WAIT_PACKETS = 1024  # a packet run cut off by more discards than this is given up
DMA_ALIGN_BYTES = 128  # arm64 ARCH_DMA_MINALIGN: spidev reserves ALIGN(len, 128) per transfer
Model = Literal[2, 3]
TelemetryMode = Literal["off", "header", "footer"]
Bytes = npt.NDArray[np.uint8]
Words = npt.NDArray[np.uint16]

# Telemetry row A word offsets (32-bit values are sent least significant word first).
TEL_STATUS = 3
TEL_FRAME_COUNTER = 20
TEL_FPA_TEMP_CK = 24
FFC_IN_PROGRESS = 2
# Telemetry row C (third telemetry packet) word offsets.
TEL_TLINEAR_ENABLED = 48
TEL_TLINEAR_RESOLUTION = 49


@dataclass(frozen=True, slots=True)
class Layout:
    """What the camera sends: model (2 = 80x60, 3 = 160x120) and where telemetry rows are."""

    model: Model = 3
    telemetry: TelemetryMode = "off"

    @property
    def width(self) -> int:
        return 80 if self.model == 2 else 160

    @property
    def height(self) -> int:
        return 60 if self.model == 2 else 120

    @property
    def segments(self) -> int:
        return 1 if self.model == 2 else 4

    @property
    def telemetry_packets(self) -> int:
        if self.telemetry == "off":
            return 0
        return 3 if self.model == 2 else 4

    @property
    def packets_per_segment(self) -> int:
        return (60 * self.segments + self.telemetry_packets) // self.segments

    @property
    def frame_packets(self) -> int:
        return self.packets_per_segment * self.segments


@dataclass(frozen=True, slots=True)
class Radiometry:
    """How to read pixel words: TLinear (Kelvin x 100 or x 10) or relative 14-bit counts."""

    tlinear: bool
    resolution_k: float = 0.01  # 0.01 K (power-on default) or 0.1 K per count

    def to_celsius(self, pixels: Words) -> npt.NDArray[np.float32]:
        """°C for TLinear frames; raw counts as float32 otherwise (check ``tlinear``)."""
        values = pixels.astype(np.float32)
        if not self.tlinear:
            return values
        return (values * np.float32(self.resolution_k) - np.float32(273.15)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The fields of telemetry rows A and C this project uses."""

    frame_counter: int
    status: int
    fpa_temp_c: float
    tlinear: bool
    resolution_k: float

    @property
    def ffc_in_progress(self) -> bool:
        return (self.status >> 4) & 0x3 == FFC_IN_PROGRESS

    @property
    def radiometry(self) -> Radiometry:
        return Radiometry(self.tlinear, self.resolution_k)


def decode_telemetry(rows: Words) -> Telemetry:
    """Rows A, B, C (… D on a Lepton 3.x) as 80-word arrays → the fields above."""
    a, c = rows[0].astype(np.int64), rows[2].astype(np.int64)
    return Telemetry(
        frame_counter=int(a[TEL_FRAME_COUNTER] | (a[TEL_FRAME_COUNTER + 1] << 16)),
        status=int(a[TEL_STATUS] | (a[TEL_STATUS + 1] << 16)),
        fpa_temp_c=float(a[TEL_FPA_TEMP_CK]) / 100.0 - 273.15,
        tlinear=bool(c[TEL_TLINEAR_ENABLED]),
        resolution_k=0.01 if c[TEL_TLINEAR_RESOLUTION] == 1 else 0.1,
    )


@dataclass(frozen=True, slots=True)
class VospiFrame:
    """One unique frame in sensor order (row-major, as the Lepton sent it)."""

    pixels: Words  # height x width uint16
    telemetry: Words | None  # telemetry packets x 80 words, or None
    stream_offset: int  # byte offset in the stream of the frame's first packet

    @property
    def packet_index(self) -> int:
        return self.stream_offset // PACKET_BYTES

    def decoded_telemetry(self) -> Telemetry | None:
        return None if self.telemetry is None else decode_telemetry(self.telemetry)


# ---------------------------------------------------------------------------------------- CRC
def _crc_byte_table() -> npt.NDArray[np.uint32]:
    table = np.zeros(256, dtype=np.uint32)
    for value in range(256):
        crc = value << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table[value] = crc & 0xFFFF
    return table


def _crc_position_table(table: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint16]:
    """CRC with init 0 is linear: a packet's CRC is the XOR of each byte's contribution.

    ``out[p, v]`` is the CRC of a packet that is all zero except byte ``p`` = ``v``, with the
    VoSPI masking built in (byte 0 keeps its low nibble only, bytes 2-3 count as zero).
    """
    out = np.zeros((PACKET_BYTES, 256), dtype=np.uint32)
    crc = table.copy()  # contribution of byte value v at the last position
    for pos in range(PACKET_BYTES - 1, -1, -1):
        out[pos] = crc
        crc = ((crc << 8) & 0xFFFF) ^ table[crc >> 8]
    out[0] = out[0][np.arange(256) & 0x0F]
    out[2:4] = 0
    return out.astype(np.uint16)


_BYTE_TABLE = _crc_byte_table()
_POSITION_TABLE = _crc_position_table(_BYTE_TABLE)
_POSITIONS = np.arange(PACKET_BYTES)


def crc16_ccitt(data: bytes, crc: int = 0) -> int:
    """Plain CRC-16/CCITT (poly 0x1021, non-reflected, init 0: the XMODEM form)."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ int(_BYTE_TABLE[(crc >> 8) ^ byte])
    return crc


def vospi_crc(packet: bytes) -> int:
    """The CRC a Lepton puts in bytes 2-3 of this packet."""
    masked = bytearray(packet)
    masked[0] &= 0x0F
    masked[2] = masked[3] = 0
    return crc16_ccitt(bytes(masked))


def vospi_crcs(packets: Bytes) -> npt.NDArray[np.uint16]:
    """The CRC each of N x 164 packets should carry (vectorised ``vospi_crc``)."""
    crcs: npt.NDArray[np.uint16] = np.bitwise_xor.reduce(
        _POSITION_TABLE[_POSITIONS, packets], axis=1
    )
    return crcs


def crc_ok(packets: Bytes) -> npt.NDArray[np.bool_]:
    """Vectorised check of N x 164 packets against their CRC fields."""
    computed = vospi_crcs(packets)
    received = (packets[:, 2].astype(np.uint16) << 8) | packets[:, 3]
    return np.asarray(computed == received)


# ------------------------------------------------------------------------------------- parser
@dataclass
class ParserStats:
    """Counts since the parser was made.

    ``resyncs``: times the stream lost sync (a partial frame dropped, or broken packets after good
    ones); ``realignments``: times the byte alignment of packets had to be found again.
    """

    packets: int = 0
    discarded: int = 0
    crc_errors: int = 0
    resyncs: int = 0
    realignments: int = 0
    invalid_segments: int = 0
    duplicates: int = 0
    frames: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.__dataclass_fields__}


@dataclass
class _Packets:
    """One aligned block of the buffer, with the per-packet fields the state machine needs."""

    rows: Bytes  # N x 164
    offset: int  # stream byte offset of rows[0]
    live: npt.NDArray[np.intp] = field(init=False)  # indices of non-discard packets
    numbers: npt.NDArray[np.int64] = field(init=False)  # their packet numbers

    def __post_init__(self) -> None:
        discard = (self.rows[:, 0] & 0x0F) == 0x0F
        self.live = np.flatnonzero(~discard)
        ids = (self.rows[self.live, 0].astype(np.int64) << 8) | self.rows[self.live, 1]
        self.numbers = ids & 0x0FFF


@dataclass
class _Scan:
    """Where a scan of one block stopped: rows fully consumed, or a byte offset to realign to."""

    rows: int
    realign_to: int | None = None  # buffer byte offset of a re-found packet boundary


class VospiParser:
    """Incremental parser: ``feed(bytes)`` returns the unique frames completed by those bytes."""

    def __init__(self, layout: Layout | None = None) -> None:
        self.layout = layout or Layout()
        self.stats = ParserStats()
        self._buf = bytearray()
        self._offset = 0  # stream byte offset of _buf[0]
        self._chain: list[Bytes] = []  # Lepton 3.x segments 1..k of the frame being built
        self._chain_offset = 0
        self._in_sync = False  # the last thing seen was a whole, valid segment or frame
        self._last_pixels: Words | None = None
        self._last_counter: int | None = None
        self._waiting_for = 0  # whole packets kept back by the last scan
        self._realign_after = -1  # stream offset before which a failed search is not redone
        self._numbers = np.arange(self.layout.packets_per_segment)

    def feed(self, data: bytes) -> list[VospiFrame]:
        self._buf += data
        out: list[VospiFrame] = []
        while (n := len(self._buf) // PACKET_BYTES) > self._waiting_for:
            rows = np.frombuffer(bytes(self._buf[: n * PACKET_BYTES]), np.uint8).reshape(n, -1)
            scan = self._scan(_Packets(rows, self._offset), out)
            self._consume(rows, scan)
            if scan.realign_to is None:
                self._waiting_for = n - scan.rows  # rescan only once a new packet is in
                break
        return out

    def reset(self) -> None:
        """Forget buffered bytes and any partial frame (after the transport re-synced)."""
        self._lose_sync()
        self._offset += len(self._buf)
        self._buf.clear()
        self._waiting_for = 0

    def _consume(self, rows: Bytes, scan: _Scan) -> None:
        used = rows[: scan.rows]
        self.stats.packets += len(used)
        self.stats.discarded += int(np.count_nonzero((used[:, 0] & 0x0F) == 0x0F))
        cut = scan.rows * PACKET_BYTES if scan.realign_to is None else scan.realign_to
        del self._buf[:cut]
        self._offset += cut

    def _scan(self, block: _Packets, out: list[VospiFrame]) -> _Scan:
        size, numbers, live = self.layout.packets_per_segment, block.numbers, block.live
        i = 0
        while i < len(live):
            incomplete = i + (size if numbers[i] == 0 else 2) > len(live)
            if incomplete and len(block.rows) - live[i] <= MAX_WAIT_PACKETS:
                return _Scan(rows=int(live[i]))  # keep it until the next read
            if numbers[i] >= size:
                if i + 1 < len(live) and numbers[i + 1] >= size:
                    found = self._try_realign(block, int(live[i]))
                    if found is not None:
                        return found
                self._lose_sync()
                i += 1
            elif (
                numbers[i] != 0
                or incomplete
                or not np.array_equal(numbers[i : i + size], self._numbers)
            ):
                self._lose_sync()
                i = self._next_candidate(numbers, i + 1)
            else:
                index = live[i : i + size]
                self._segment(block.rows[index], block.offset + int(index[0]) * PACKET_BYTES, out)
                i += size
        return _Scan(rows=len(block.rows))

    def _next_candidate(self, numbers: npt.NDArray[np.int64], start: int) -> int:
        """Index of the next packet that could start a segment or signals misalignment."""
        rest = numbers[start:]
        hits = np.flatnonzero((rest == 0) | (rest >= self.layout.packets_per_segment))
        return start + int(hits[0]) if len(hits) else len(numbers)

    def _try_realign(self, block: _Packets, row: int) -> _Scan | None:
        """Two packets in a row with impossible IDs: look for a packet boundary by CRC."""
        start = row * PACKET_BYTES
        if block.offset + start < self._realign_after:
            return None
        span = 2 * PACKET_BYTES
        if len(self._buf) < start + span + PACKET_BYTES:
            return _Scan(rows=row)  # wait for enough bytes to search
        found = find_packet_boundary(
            bytes(self._buf[start + 1 : start + 1 + span + PACKET_BYTES]),
            self.layout.packets_per_segment,
        )
        if found is None:
            self._realign_after = block.offset + start + span
            return None
        self._lose_sync()
        if (1 + found) % PACKET_BYTES:
            self.stats.realignments += 1  # byte alignment changed, not just noise skipped
        return _Scan(rows=row, realign_to=start + 1 + found)

    def _segment(self, rows: Bytes, offset: int, out: list[VospiFrame]) -> None:
        if self.layout.model == 2:
            if self._crc_checked(rows):
                self._in_sync = True
                self._emit(rows, offset, out)
            return
        segment = (int(rows[20, 0]) >> 4) & 0x7
        if segment == 0:
            self.stats.invalid_segments += 1
            if self._chain:  # a frame cut short by an invalid segment
                self._lose_sync()
        elif not self._crc_checked(rows):
            self._lose_sync()
        elif segment != len(self._chain) + 1:
            self._lose_sync()
            if segment == 1:
                self._extend_chain(rows, offset, out)
        else:
            self._extend_chain(rows, offset, out)

    def _extend_chain(self, rows: Bytes, offset: int, out: list[VospiFrame]) -> None:
        if not self._chain:
            self._chain_offset = offset
        self._chain.append(rows)
        self._in_sync = True
        if len(self._chain) == self.layout.segments:
            chain, self._chain = self._chain, []
            self._emit(np.concatenate(chain), self._chain_offset, out)

    def _crc_checked(self, rows: Bytes) -> bool:
        bad = int(np.count_nonzero(~crc_ok(rows)))
        self.stats.crc_errors += bad
        return bad == 0

    def _lose_sync(self) -> None:
        """Drop any partial frame; count one resync per loss of a stream that was in sync."""
        if self._chain or self._in_sync:
            self.stats.resyncs += 1
        self._chain, self._in_sync = [], False

    def _emit(self, rows: Bytes, offset: int, out: list[VospiFrame]) -> None:
        pixels, telemetry = split_frame(rows, self.layout)
        if self._is_duplicate(pixels, telemetry):
            self.stats.duplicates += 1
            return
        self.stats.frames += 1
        out.append(VospiFrame(pixels=pixels, telemetry=telemetry, stream_offset=offset))

    def _is_duplicate(self, pixels: Words, telemetry: Words | None) -> bool:
        if telemetry is not None:
            counter = decode_telemetry(telemetry).frame_counter
            duplicate = counter == self._last_counter
            self._last_counter = counter
            return duplicate
        duplicate = self._last_pixels is not None and np.array_equal(pixels, self._last_pixels)
        self._last_pixels = pixels
        return duplicate


def split_frame(rows: Bytes, layout: Layout) -> tuple[Words, Words | None]:
    """All packets of one frame (frame_packets x 164) → (pixels H x W, telemetry rows or None)."""
    words = np.ascontiguousarray(rows[:, 4:]).view(">u2").astype(np.uint16)
    count = layout.telemetry_packets
    if count == 0:
        return words.reshape(layout.height, layout.width), None
    if layout.telemetry == "header":
        telemetry, video = words[:count], words[count:]
    else:
        telemetry, video = words[-count:], words[:-count]
    return video.reshape(layout.height, layout.width), telemetry


def find_packet_boundary(data: bytes, packets_per_segment: int) -> int | None:
    """First offset in ``data`` where a video packet with a valid ID and CRC starts."""
    raw = np.frombuffer(data, np.uint8)
    last = len(raw) - PACKET_BYTES
    if last < 0:
        return None
    head = raw[: last + 1]
    second = raw[1 : last + 2]
    starts = np.flatnonzero(((head & 0x0F) == 0) & (second < packets_per_segment))
    if len(starts) == 0:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(raw, PACKET_BYTES)[starts]
    # an all-zero window "passes" (CRC with init 0 of zeros is 0): idle lines, not a packet
    good = np.flatnonzero(crc_ok(windows) & windows[:, 4:].any(axis=1))
    return int(starts[good[0]]) if len(good) else None


def detect_layout(data: bytes, telemetry_default: TelemetryMode = "footer") -> Layout | None:
    """Guess model and telemetry from a capture: packet-number range and packet 20's segment."""
    start = find_packet_boundary(data[:65536], 63)
    if start is None:
        return None
    n = (len(data) - start) // PACKET_BYTES
    rows = np.frombuffer(data, np.uint8, n * PACKET_BYTES, start).reshape(n, -1)
    rows = rows[((rows[:, 0] & 0x0F) != 0x0F)]
    rows = rows[crc_ok(rows)]
    if len(rows) == 0:
        return None
    numbers = ((rows[:, 0].astype(np.int64) & 0x0F) << 8) | rows[:, 1]
    model: Model = 3 if np.any((rows[numbers == 20, 0] >> 4) & 0x7) else 2
    top = int(numbers.max())
    has_telemetry = top == (62 if model == 2 else 60)
    return Layout(model, telemetry_default if has_telemetry else "off")
