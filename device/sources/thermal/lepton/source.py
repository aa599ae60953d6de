"""``LeptonSource``: a thermal source (open/read/close) over any Lepton transport.

Reads chunks, feeds the VoSPI parser, converts unique frames to ``ThermalFrame`` and applies the
re-sync policy on live transports: no unique frame for ``frame_timeout_s`` (or a CRC error, as
the datasheet recommends) → idle /CS > 185 ms and start over; ``max_resyncs`` in a row without a
frame → ``SourceUnavailable``. Frames taken during a flat-field correction (telemetry says so, or
an FFC this source commanded is still running) are skipped.

Layout (model and telemetry rows): an explicit ``layout``, else the transport's (a capture
header), else ``LeptonOptions.model``/``telemetry`` when both are set, else detected from the
first ``detect_bytes`` of the stream (packet numbers and packet 20's segment number; the
telemetry location comes from CCI, else footer). With CCI and a configured telemetry mode, the
source commands that mode at ``open()``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from device.errors import SourceUnavailable
from device.frames import ThermalFrame
from device.sources.thermal.lepton.cci import LeptonCci
from device.sources.thermal.lepton.transport import Chunk, LeptonTransport
from device.sources.thermal.lepton.vospi import (
    Layout,
    Model,
    Radiometry,
    TelemetryMode,
    VospiFrame,
    VospiParser,
    detect_layout,
)

logger = logging.getLogger(__name__)

RAW_COUNTS = Radiometry(tlinear=False)


@dataclass(frozen=True)
class LeptonOptions:
    radiometry: Radiometry | None = None  # None = telemetry row C, else CCI, else raw counts
    frame_timeout_s: float = 1.0  # a unique frame is due every ~115 ms
    max_resyncs: int = 5
    resync_on_crc_error: bool = True
    skip_ffc_frames: bool = True
    model: Model | None = None  # None = detect from the packets
    telemetry: TelemetryMode | None = None  # None = as the camera sends it (detected)
    detect_bytes: int = 256 * 1024  # stream read before guessing an unknown layout


@dataclass
class SourceCounters:
    resyncs: int = 0
    ffc_skipped: int = 0


class LeptonSource:
    """Unique Lepton frames as ``ThermalFrame``; ``cci`` (optional) gives radiometry and FFC."""

    def __init__(
        self,
        transport: LeptonTransport,
        options: LeptonOptions | None = None,
        cci: LeptonCci | None = None,
        layout: Layout | None = None,
    ) -> None:
        self._transport = transport
        self.options = options or LeptonOptions()
        self._cci = cci
        self._layout = layout
        self._lock = threading.Lock()
        self._closed = True
        self._radiometry: Radiometry | None = None
        self._ffc_commanded = False
        self._index = -1
        self._last_frame_ts: float | None = None
        self._failed_resyncs = 0
        self._pending: list[tuple[VospiFrame, float]] = []
        self._held: list[Chunk] = []  # chunks read to detect the layout, parsed afterwards
        self.parser = VospiParser(layout or Layout())
        self.counters = SourceCounters()

    def open(self) -> None:
        self.close()
        self._transport.open()
        self._held = []
        try:
            self._command_telemetry()
            layout = self._layout or self._transport.layout or self._configured_layout()
            layout = layout or self._detect_layout()
            self.parser = VospiParser(layout)
            self._radiometry = self.options.radiometry
            if self._radiometry is None and self._cci is not None and layout.telemetry == "off":
                self._radiometry = self._cci.radiometry()
        except SourceUnavailable:
            self._transport.close()
            raise
        self._index, self._last_frame_ts, self._failed_resyncs = -1, None, 0
        self._pending = []
        self._closed = False

    def read(self) -> ThermalFrame | None:
        while True:
            with self._lock:
                if self._closed:
                    return None
                item = self._next_unique()
            if item is None:
                return None
            frame, ts_s = item
            self._index += 1
            if self.options.skip_ffc_frames and self._in_ffc(frame):
                self.counters.ffc_skipped += 1
                continue
            return self._to_thermal(frame, ts_s)

    def run_ffc(self) -> None:
        """Command a flat-field correction; frames are skipped until the Lepton reports done."""
        if self._cci is None:
            raise SourceUnavailable("running an FFC needs the Lepton's I2C (CCI) connection")
        self._cci.run_ffc()
        self._ffc_commanded = True

    def close(self) -> None:
        """Idempotent; a read in another thread returns None after its current chunk."""
        self._closed = True
        with self._lock:
            self._transport.close()

    # ------------------------------------------------------------------------- internals
    def _command_telemetry(self) -> None:
        mode = self.options.telemetry
        if mode is not None and self._cci is not None:
            self._cci.set_telemetry(mode != "off", "header" if mode == "header" else "footer")

    def _configured_layout(self) -> Layout | None:
        model, telemetry = self.options.model, self.options.telemetry
        return Layout(model, telemetry) if model is not None and telemetry is not None else None

    def _detect_layout(self) -> Layout:
        """Model/telemetry from the stream; the chunks read are kept for the parser."""
        for _ in range(self.options.max_resyncs + 1):
            self._held = self._read_bytes(self.options.detect_bytes)
            found = detect_layout(b"".join(c.data for c in self._held), self._location())
            if found is not None:
                model = self.options.model or found.model
                return Layout(model, self.options.telemetry or found.telemetry)
            if not self._transport.live:
                break
            self._transport.resync()
        raise SourceUnavailable(
            "the Lepton sent no valid VoSPI packets to tell its model from: check the wiring, "
            "or set thermal.source.model and telemetry"
        )

    def _read_bytes(self, size: int) -> list[Chunk]:
        chunks: list[Chunk] = []
        total = 0
        while total < size and (chunk := self._transport.read()) is not None:
            chunks.append(chunk)
            total += len(chunk.data)
        return chunks

    def _location(self) -> TelemetryMode:
        if self._cci is None:
            return "footer"
        return self._cci.telemetry() or "footer"

    def _next_unique(self) -> tuple[VospiFrame, float] | None:
        while not self._pending:
            if self._closed:  # close() from another thread: stop after the current chunk
                return None
            chunk = self._held.pop(0) if self._held else self._transport.read()
            if chunk is None:
                return None
            if chunk.resync:
                self.parser.reset()
            errors = self.parser.stats.crc_errors
            self._pending = [(f, chunk.ts_s) for f in self.parser.feed(chunk.data)]
            self._apply_policy(chunk.ts_s, self.parser.stats.crc_errors > errors)
        return self._pending.pop(0)

    def _apply_policy(self, ts_s: float, crc_failed: bool) -> None:
        if self._pending:
            self._last_frame_ts, self._failed_resyncs = ts_s, 0
            return
        if not self._transport.live:
            return
        if self._last_frame_ts is None:
            self._last_frame_ts = ts_s
        stale = ts_s - self._last_frame_ts > self.options.frame_timeout_s
        if stale or (crc_failed and self.options.resync_on_crc_error):
            self._resync(ts_s)

    def _resync(self, ts_s: float) -> None:
        self._failed_resyncs += 1
        if self._failed_resyncs > self.options.max_resyncs:
            raise SourceUnavailable(
                f"the Lepton sent no valid frame after {self.options.max_resyncs} re-syncs: check "
                "its wiring (MISO, SCK, /CS, GND), power, and that SPI runs in mode 3 at ≤ 20 MHz"
            )
        logger.warning("Lepton lost sync; idling /CS to re-sync (%d)", self._failed_resyncs)
        self.counters.resyncs += 1
        self._transport.resync()
        self.parser.reset()
        self._last_frame_ts = ts_s

    def _in_ffc(self, frame: VospiFrame) -> bool:
        telemetry = frame.decoded_telemetry()
        if telemetry is not None and telemetry.ffc_in_progress:
            return True
        if self._ffc_commanded and self._cci is not None:
            self._ffc_commanded = self._cci.ffc_busy()
        return self._ffc_commanded

    def _radiometry_for(self, frame: VospiFrame) -> Radiometry:
        if self._radiometry is not None:
            return self._radiometry
        telemetry = frame.decoded_telemetry()
        if telemetry is not None:
            return telemetry.radiometry
        if self._index == 0:
            logger.warning("Lepton radiometry unknown (no telemetry, no CCI): raw counts")
        return RAW_COUNTS

    def _to_thermal(self, frame: VospiFrame, ts_s: float) -> ThermalFrame:
        radiometry = self._radiometry_for(frame)
        return ThermalFrame(
            celsius=radiometry.to_celsius(frame.pixels),
            ts_s=ts_s,
            index=self._index,
            radiometric=radiometry.tlinear,
        )
