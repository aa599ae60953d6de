"""Raw SPI byte captures for field debugging: record on a Pi, replay or decode anywhere.

File format (little-endian), documented in docs/thermal.md:
    b"LEPCAP01" · uint32 header length · UTF-8 JSON header {"model", "telemetry", …}
    then records: uint8 kind (0 = bytes read, 1 = re-sync before this point) · float64 ts_s
    (seconds since capture start) · uint32 length · that many raw bytes.
A file without the magic is read as one plain run of raw VoSPI bytes.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from device.errors import SourceUnavailable
from device.sources.thermal.lepton.transport import Chunk, LeptonTransport
from device.sources.thermal.lepton.vospi import Layout, detect_layout

MAGIC = b"LEPCAP01"
RECORD = struct.Struct("<BdI")
KIND_DATA, KIND_RESYNC = 0, 1
RAW_READ_BYTES = 164 * 399


class CaptureWriter:
    """Appends chunks to a capture file; use as a context manager."""

    def __init__(self, path: Path, layout: Layout, extra: dict[str, Any] | None = None) -> None:
        header = {"model": layout.model, "telemetry": layout.telemetry, **(extra or {})}
        blob = json.dumps(header).encode()
        self.path = path
        self._file: IO[bytes] = path.open("wb")
        self._file.write(MAGIC + struct.pack("<I", len(blob)) + blob)
        self._t0: float | None = None
        self.bytes_written = 0

    def write(self, chunk: Chunk) -> None:
        if self._t0 is None:
            self._t0 = chunk.ts_s
        kind = KIND_RESYNC if chunk.resync else KIND_DATA
        self._file.write(RECORD.pack(kind, chunk.ts_s - self._t0, len(chunk.data)) + chunk.data)
        self.bytes_written += len(chunk.data)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_header(stream: IO[bytes]) -> dict[str, Any] | None:
    """The JSON header after the magic, or None for a plain raw dump (stream rewound)."""
    if stream.read(len(MAGIC)) != MAGIC:
        stream.seek(0)
        return None
    (length,) = struct.unpack("<I", stream.read(4))
    header: dict[str, Any] = json.loads(stream.read(length))
    return header


def iter_chunks(stream: IO[bytes], framed: bool) -> Iterator[Chunk]:
    if not framed:
        while data := stream.read(RAW_READ_BYTES):
            yield Chunk(data=data, ts_s=float("nan"))
        return
    while head := stream.read(RECORD.size):
        if len(head) < RECORD.size:
            return  # a capture cut short (power loss): keep what is complete
        kind, ts_s, length = RECORD.unpack(head)
        data = stream.read(length)
        yield Chunk(data=data, ts_s=ts_s, resync=kind == KIND_RESYNC)


class ReplayTransport:
    """A capture file as a transport: same chunks, same re-sync marks, optionally paced."""

    live = False

    def __init__(self, path: Path, realtime: bool = False, layout: Layout | None = None) -> None:
        self.path = path
        self.realtime = realtime
        self.layout = layout
        self._file: IO[bytes] | None = None
        self._chunks: Iterator[Chunk] = iter(())
        self._start = 0.0

    def open(self) -> None:
        self.close()
        try:
            self._file = self.path.open("rb")
            header = read_header(self._file)
        except (OSError, ValueError, struct.error) as exc:
            raise SourceUnavailable(f"cannot read Lepton capture {self.path}: {exc}") from exc
        if self.layout is None:
            self.layout = _layout_from(header, self._file)
        self._chunks = iter_chunks(self._file, framed=header is not None)
        self._start = time.monotonic()

    def read(self) -> Chunk | None:
        if self._file is None:
            return None
        chunk = next(self._chunks, None)
        if chunk is not None and self.realtime and chunk.ts_s == chunk.ts_s:
            time.sleep(max(0.0, self._start + chunk.ts_s - time.monotonic()))
        return chunk

    def resync(self) -> None:
        """Nothing to do: the capture already holds the re-syncs that happened on the device."""

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def _layout_from(header: dict[str, Any] | None, stream: IO[bytes]) -> Layout:
    if header is not None:
        return Layout(model=header.get("model", 3), telemetry=header.get("telemetry", "off"))
    position = stream.tell()
    layout = detect_layout(stream.read(1 << 20))
    stream.seek(position)
    if layout is None:
        raise SourceUnavailable(
            f"{stream.name} holds no valid VoSPI packet in its first MiB: not a Lepton capture"
        )
    return layout


def capture(
    transport: LeptonTransport,
    writer: CaptureWriter,
    seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Copy raw reads to ``writer`` for ``seconds``; returns the bytes written.

    The transport is opened (which re-syncs once, recorded as a resync mark) and closed here.
    """
    transport.open()
    try:
        start = clock()
        writer.write(Chunk(data=b"", ts_s=start, resync=True))
        while clock() - start < seconds:
            chunk = transport.read()
            if chunk is None:
                break
            writer.write(chunk)
    finally:
        transport.close()
    return writer.bytes_written
