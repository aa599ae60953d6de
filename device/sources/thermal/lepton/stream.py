"""Synthetic VoSPI byte streams that follow the protocol byte for byte (for tests and benches).

``vospi_packets`` turns unique frames into what a Lepton sends at ~27 Hz: on a Lepton 2.x each
frame three times (60 packets, 63 with telemetry), on a Lepton 3.x segments 1-4 (segment number
in packet 20's ID) followed by eight invalid segments (segment number 0), with discard packets
(ID 0x0FFF) between them. Every video packet carries the CRC a Lepton would put there.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from device.sources.thermal.lepton.vospi import (
    PACKET_BYTES,
    PAYLOAD_WORDS,
    TEL_FPA_TEMP_CK,
    TEL_FRAME_COUNTER,
    TEL_STATUS,
    TEL_TLINEAR_ENABLED,
    TEL_TLINEAR_RESOLUTION,
    Layout,
    vospi_crc,
    vospi_crcs,
)

Words = npt.NDArray[np.uint16]
DISCARD_ID = 0x0FFF
REPEATS_PER_UNIQUE_FRAME = 3  # VoSPI runs at ~27 Hz, the sensor at ~8.7 Hz
VOSPI_FRAME_RATE_HZ = 26.5


@dataclass(frozen=True)
class StreamSpec:
    layout: Layout = field(default_factory=Layout)
    discards_between: int = 4  # discard packets in the idle time after each frame/segment
    tlinear: bool = False  # what telemetry row C reports
    resolution_k: float = 0.01
    ffc_frames: frozenset[int] = frozenset()  # unique-frame indices sent with "FFC in progress"


def make_packet(number: int, payload: bytes, segment: int = 0) -> bytes:
    """One 164-byte video packet: ID (segment in bits 14..12), CRC, 160 payload bytes."""
    if len(payload) != PACKET_BYTES - 4:
        raise ValueError(f"a VoSPI payload is 160 bytes, got {len(payload)}")
    packet_id = ((segment & 0x7) << 12) | (number & 0x0FFF)
    head = packet_id.to_bytes(2, "big") + b"\x00\x00"
    crc = vospi_crc(head + payload)
    return packet_id.to_bytes(2, "big") + crc.to_bytes(2, "big") + payload


def discard_packet(fill: int = 0) -> bytes:
    """What the Lepton sends when it has no video packet ready (ID xFxx; contents unused)."""
    return DISCARD_ID.to_bytes(2, "big") + bytes([fill & 0xFF]) * (PACKET_BYTES - 2)


def telemetry_rows(layout: Layout, frame_counter: int, spec: StreamSpec, ffc: bool) -> Words:
    """Telemetry rows A, B, C (+ D on a Lepton 3.x) with the fields the parser reads."""
    rows = np.zeros((layout.telemetry_packets, PAYLOAD_WORDS), dtype=np.uint16)
    rows[0, 0] = 14  # telemetry revision
    status = (2 if ffc else 3) << 4  # FFC state: in progress / complete
    rows[0, TEL_STATUS] = status & 0xFFFF
    rows[0, TEL_FRAME_COUNTER] = frame_counter & 0xFFFF
    rows[0, TEL_FRAME_COUNTER + 1] = (frame_counter >> 16) & 0xFFFF
    rows[0, TEL_FPA_TEMP_CK] = 30_815  # 35.0 °C
    rows[2, TEL_TLINEAR_ENABLED] = int(spec.tlinear)
    rows[2, TEL_TLINEAR_RESOLUTION] = 1 if spec.resolution_k == 0.01 else 0
    return rows


def frame_words(pixels: Words, layout: Layout, telemetry: Words | None) -> Words:
    """All payload rows of one frame in send order (frame_packets x 80)."""
    if pixels.shape != (layout.height, layout.width):
        raise ValueError(f"frame shape {pixels.shape} does not fit a Lepton {layout.model}")
    video = np.asarray(pixels, dtype=np.uint16).reshape(-1, PAYLOAD_WORDS)
    if telemetry is None or layout.telemetry == "off":
        return video
    if layout.telemetry == "header":
        return np.concatenate([telemetry, video])
    return np.concatenate([video, telemetry])


def frame_segments(words: Words, layout: Layout, valid: bool = True) -> list[list[bytes]]:
    """Packetise: one list of packets per segment; packet 20 carries the segment number."""
    size = layout.packets_per_segment
    count = len(words)
    packets = np.zeros((count, PACKET_BYTES), dtype=np.uint8)
    packets[:, 4:] = np.ascontiguousarray(words.astype(">u2")).view(np.uint8).reshape(count, -1)
    numbers = np.arange(count) % size
    packets[:, 1] = numbers & 0xFF
    packets[:, 0] = numbers >> 8
    if layout.model == 3 and valid:
        packets[20::size, 0] |= (np.arange(layout.segments, dtype=np.uint8) + 1) << 4
    crcs = vospi_crcs(packets)
    packets[:, 2], packets[:, 3] = crcs >> 8, crcs & 0xFF
    flat = [bytes(row) for row in packets]
    return [flat[s * size : (s + 1) * size] for s in range(layout.segments)]


def vospi_packets(frames: Iterable[Words], spec: StreamSpec | None = None) -> Iterator[bytes]:
    """Packets of the stream a Lepton sends for these unique frames, in order."""
    spec = spec or StreamSpec()
    layout = spec.layout
    idle = [discard_packet() for _ in range(spec.discards_between)]
    for index, pixels in enumerate(frames):
        ffc = index in spec.ffc_frames
        telemetry = None
        if layout.telemetry_packets:
            telemetry = telemetry_rows(layout, index + 1, spec, ffc)
        words = frame_words(pixels, layout, telemetry)
        for repeat in range(REPEATS_PER_UNIQUE_FRAME):
            for segment in frame_segments(words, layout, valid=repeat == 0 or layout.model == 2):
                yield from segment
                yield from idle


def vospi_stream(frames: Iterable[Words], spec: StreamSpec | None = None) -> bytes:
    return b"".join(vospi_packets(frames, spec))


def lepton2_frames(frames: Words) -> Words:
    """Lepton 2.x-sized (80x60) frames from 160x120 ones, by taking every other pixel."""
    return np.ascontiguousarray(frames[:, ::2, ::2])


def centikelvin_frames(frames: Words, base_c: float = 20.0, step_c: float = 0.01) -> Words:
    """Radiometric-looking TLinear (0.01 K) frames from raw counts: base_c + (count-min)*step_c."""
    kelvin_x100 = (base_c + 273.15) * 100 + (frames.astype(np.int64) - int(frames.min())) * (
        step_c * 100
    )
    return np.round(kelvin_x100).astype(np.uint16)


def timed_chunks(
    data: bytes, chunk_packets: int, packet_rate_hz: float
) -> Iterator[tuple[float, bytes]]:
    """Split a stream into reads of ``chunk_packets`` packets, each stamped with its end time."""
    size = chunk_packets * PACKET_BYTES
    for start in range(0, len(data), size):
        chunk = data[start : start + size]
        yield (start + len(chunk)) / PACKET_BYTES / packet_rate_hz, chunk


# --------------------------------------------------------------------------------- corruption
MUTATIONS = (
    "bitflip",  # 1-3 bit errors: CRC-16 catches every one
    "smash",  # a run of random bytes inside a packet
    "drop",  # lost packets
    "duplicate",  # packets read twice
    "swap",  # neighbouring packets swapped
    "truncate",  # bytes lost from a packet: the stream goes out of byte alignment
    "insert",  # stray bytes between packets: out of alignment the other way
    "stuck_discard",  # packets replaced by discard packets
    "segment",  # packet 20's segment number rewritten (not covered by the CRC)
    "renumber",  # a packet number rewritten
    "garbage",  # packets replaced by noise
)


def mutate(packets: list[bytes], op: str, count: int, rng: random.Random) -> list[bytes]:
    """Apply one kind of corruption to ``count`` packets of a run; returns the new run."""
    out = list(packets)
    if not out:
        return out
    chosen = set(rng.sample(range(len(out)), min(count, len(out))))
    if op == "segment" and len(out) > 20:
        chosen = (chosen - {max(chosen)}) | {20}  # the one packet whose segment bits count
    for index in sorted(chosen, reverse=True):
        if len(out[index]) >= 2:  # a piece already cut to nothing is left alone
            out[index : index + 1] = _MUTATORS[op](out, index, rng)
    return out


def _bitflip(run: list[bytes], i: int, rng: random.Random) -> list[bytes]:
    packet = bytearray(run[i])
    for _ in range(rng.randint(1, 3)):
        packet[rng.randrange(len(packet))] ^= 1 << rng.randrange(8)
    return [bytes(packet)]


def _smash(run: list[bytes], i: int, rng: random.Random) -> list[bytes]:
    packet = bytearray(run[i])
    start = rng.randrange(len(packet))
    span = min(rng.randint(1, 16), len(packet) - start)
    packet[start : start + span] = rng.randbytes(span)
    return [bytes(packet)]


def _truncate(run: list[bytes], i: int, rng: random.Random) -> list[bytes]:
    cut = rng.randint(1, PACKET_BYTES - 1)
    return [run[i][:cut] if rng.random() < 0.5 else run[i][cut:]]


def _segment(run: list[bytes], i: int, rng: random.Random) -> list[bytes]:
    packet = bytearray(run[i])
    packet[0] = (packet[0] & 0x8F) | (rng.randrange(8) << 4)
    return [bytes(packet)]


def _renumber(run: list[bytes], i: int, rng: random.Random) -> list[bytes]:
    packet = bytearray(run[i])
    packet[0] = (packet[0] & 0xF0) | rng.randrange(16)
    packet[1] = rng.randrange(256)
    return [bytes(packet)]


def _swap(run: list[bytes], i: int, rng: random.Random) -> list[bytes]:
    j = min(i + 1, len(run) - 1)
    run[i], run[j] = run[j], run[i]
    return [run[i]]


Mutator = Callable[[list[bytes], int, random.Random], list[bytes]]
_MUTATORS: dict[str, Mutator] = {
    "bitflip": _bitflip,
    "smash": _smash,
    "drop": lambda run, i, rng: [],
    "duplicate": lambda run, i, rng: [run[i], run[i]],
    "swap": _swap,
    "truncate": _truncate,
    "insert": lambda run, i, rng: [rng.randbytes(rng.randint(1, 300)), run[i]],
    "stuck_discard": lambda run, i, rng: [discard_packet(rng.randrange(256))],
    "segment": _segment,
    "renumber": _renumber,
    "garbage": lambda run, i, rng: [rng.randbytes(PACKET_BYTES)],
}
