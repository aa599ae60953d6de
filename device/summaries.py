"""Well-being summaries: per period and per source (rgb, thermal, fused), the share of time each
label held, how much of it a face was there, the mean confidence and how often the label changed.

The paper's aim is monitoring well-being over time; a subscriber that was away must not lose
that. Each closed period goes into the spool (``device.spool``) and ``SummarySender`` delivers
the spool in order, one message in flight, QoS 1, retained, whenever the broker is there.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from device.spool import Spool


@dataclass
class Window:
    """One source's observations since the period began."""

    steps: int = 0
    faces: int = 0
    confidence_sum: float = 0.0
    changes: int = 0
    last: str | None = None
    counts: Counter[str] = field(default_factory=Counter)

    def observe(self, label: str, confidence: float, face: bool) -> None:
        self.steps += 1
        self.counts[label] += 1
        if face:
            self.faces += 1
            self.confidence_sum += confidence
        if self.last is not None and label != self.last:
            self.changes += 1
        self.last = label

    def body(self, source: str, start: float, end: float) -> dict[str, Any]:
        return {
            "source": source,
            "start": round(start, 3),
            "end": round(end, 3),
            "steps": self.steps,
            "shares": {k: round(v / self.steps, 4) for k, v in sorted(self.counts.items())},
            "face_present": round(self.faces / self.steps, 4),
            "mean_confidence": round(self.confidence_sum / self.faces, 4) if self.faces else 0.0,
            "changes": self.changes,
        }


class Summaries:
    """Collects every step's smoothed label per source; ``tick`` closes a period into the spool."""

    def __init__(self, period_s: float, spool: Spool) -> None:
        self.period_s = period_s
        self.spool = spool
        self._windows: dict[str, Window] = {}
        self._start = time.time()

    def observe(self, source: str, label: str, confidence: float, face: bool) -> None:
        self._windows.setdefault(source, Window()).observe(label, confidence, face)

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if now - self._start >= self.period_s:
            self.close(now)

    def close(self, now: float | None = None) -> None:
        """Spool what the period holds (also a partial one, at a pause or the end)."""
        now = time.time() if now is None else now
        for source, window in sorted(self._windows.items()):
            if window.steps:
                self.spool.put(window.body(source, self._start, now))
        self._windows = {}
        self._start = now


class Handle(Protocol):
    def is_published(self) -> bool: ...


class SummaryPublisher(Protocol):
    @property
    def connected(self) -> bool: ...

    @property
    def connections(self) -> int: ...

    def publish_summary(self, payload: bytes) -> Handle | None: ...


class SummarySender:
    """Delivers the spool oldest first, one message in flight; a summary leaves the spool only
    when the broker acknowledged it, and is sent again after a reconnect or a restart if not."""

    def __init__(self, spool: Spool, publisher: SummaryPublisher) -> None:
        self.spool = spool
        self.publisher = publisher
        self._in_flight: tuple[int, Handle, int] | None = None

    def pump(self) -> None:
        if self._in_flight is not None:
            row_id, handle, connection = self._in_flight
            if handle.is_published():
                self.spool.remove(row_id)
                self._in_flight = None
            elif connection != self.publisher.connections or not self.publisher.connected:
                self._in_flight = None  # the broker never had it: send it again when back
            else:
                return
        if not self.publisher.connected:
            return
        oldest = self.spool.oldest()
        if oldest is None:
            return
        sent = self.publisher.publish_summary(oldest[1])
        if sent is not None:
            self._in_flight = (oldest[0], sent, self.publisher.connections)

    def drain(self, timeout_s: float) -> None:
        """At the end: deliver what the broker takes within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while len(self.spool) and time.monotonic() < deadline and self.publisher.connected:
            self.pump()
            time.sleep(0.01)
